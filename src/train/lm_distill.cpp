// kd distill-lm, end to end (lm_distill.h).
#include "kd/train/lm_distill.h"

#include <chrono>
#include <filesystem>

#include "kd/data/token_stream.h"
#include "kd/error.h"
#include "kd/eval/distill_report.h"
#include "kd/eval/lm_report.h"
#include "kd/io/atomic_file.h"
#include "kd/knowledge/lm_topk_cache.h"
#include "kd/models/causal_lm.h"
#include "kd/train/data_parallel.h"
#include "kd/train/lm_trainer.h"
#include "kd/util/log.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

// The teacher, truncated to its first `layers` layers when asked (tiny test setups).
Llama first_layers(const Llama& teacher, int64_t layers) {
  if (layers <= 0 || layers >= teacher->options().num_layers) return teacher;
  LmStudentOptions o;
  o.num_layers = layers;
  for (int64_t i = 0; i < layers; ++i) o.teacher_layers.push_back(i);
  return make_lm_student(teacher, o);
}

void freeze(Llama& m) {
  m->eval();
  for (auto& p : m->parameters()) p.requires_grad_(false);
}

// Trains one student (or reads back the one a previous run finished), saves it, and returns its
// report entry without the evaluation figures.
LmReportModel train_or_resume(const std::string& name, const std::string& folder, const LmDistillOptions& o,
                              LmTrainSetup setup, const CausalLm& teacher, Llama& student) {
  const fs::path run(o.run_dir);
  const std::string dir = (run / folder).string(), log = (run / (folder + "_train.json")).string();
  LmReportModel m;
  m.name = name;
  m.path = dir;
  if (o.resume && fs::exists(log) && fs::exists(fs::path(dir) / "config.json")) {
    log_info("resume: " + name + " already trained; loading " + dir);
    student = load_causal_lm(dir).model;
    m = LmReportModel::from_json(read_json(log));
    return m;
  }
  log_info(strf("training the %s (%lld layers, %lld windows of %lld tokens, %lld epochs)", name.c_str(),
                static_cast<long long>(student->options().num_layers), static_cast<long long>(setup.windows.size(0)),
                static_cast<long long>(setup.windows.size(1)), static_cast<long long>(o.epochs)));
  setup.checkpoint_dir = (run / (folder + "_last")).string();
  const auto r = train_lm_student(student, setup);
  m.curve = r.curve;
  m.train_seconds = r.seconds;
  if (is_main_process()) {  // with ranks, rank 0 saves; the others hold the same weights
    save_causal_lm(student, teacher.tokenizer, dir);
    write_json_atomic(log, m.to_json());
    fs::remove_all(setup.checkpoint_dir);  // the saved student supersedes its resume checkpoint
  }
  if (auto* dp = data_parallel()) dp->barrier();  // the student is on disk before any rank goes on
  return m;
}

}  // namespace

LmHeldOut choose_lm_held_out(const LmDistillOptions& o, const std::vector<int64_t>& train_read,
                             const LmTokenizeFile& tokenize) {
  LmHeldOut h;
  const int64_t n = o.curve_points > 0 ? o.curve_eval_tokens : 0;
  if (n <= 0) return h;
  if (!o.valid_file.empty()) {
    h.tokens = tokenize(o.valid_file, n);
    if (static_cast<int64_t>(h.tokens.size()) < n)
      throw ConfigError(located("data.valid", strf("'%s' has %zu tokens; train.curve_eval_tokens asks for %lld",
                                                   o.valid_file.c_str(), h.tokens.size(), static_cast<long long>(n)),
                                "name a longer held-out file or lower train.curve_eval_tokens"));
    h.tokens.resize(n);
    h.slice = {"data.valid", o.valid_file, 0, n};
    return h;
  }
  const int64_t have = o.train_tokens > 0 ? static_cast<int64_t>(train_read.size()) - o.train_tokens : 0;
  if (have < n)
    throw ConfigError(located(
        "data.valid",
        strf("the training curves need %lld held-out tokens; no data.valid is named and data.train ('%s') has %lld "
             "after its first data.train_tokens (%lld)",
             static_cast<long long>(n), o.train_file.c_str(), static_cast<long long>(std::max<int64_t>(have, 0)),
             static_cast<long long>(o.train_tokens)),
        "name a held-out file as data.valid (not data.eval), lower train.curve_eval_tokens, or set "
        "train.curve_points: 0"));
  h.tokens.assign(train_read.begin() + o.train_tokens, train_read.begin() + o.train_tokens + n);
  h.slice = {"data.train (unused tail)", o.train_file, o.train_tokens, o.train_tokens + n};
  return h;
}

std::vector<std::string> lm_selection_warnings(const LmDistillOptions& o, const LmHeldOutSlice& slice) {
  std::vector<std::string> w;
  if (same_file(o.valid_file, o.eval_file))
    w.push_back("selection on the reported set: data.valid and data.eval are the same file ('" + o.eval_file +
                "'); the held-out perplexity of the curves is measured on the text the report scores");
  else if (slice.source == "data.train (unused tail)" && same_file(slice.file, o.eval_file))
    w.push_back(strf("selection on the reported set: the curves' held-out tokens %lld–%lld are taken from data.train, "
                     "which is the data.eval file ('%s')",
                     static_cast<long long>(slice.begin), static_cast<long long>(slice.end), o.eval_file.c_str()));
  if (same_file(o.train_file, o.eval_file))
    w.push_back("trained on the reported set: data.train and data.eval are the same file ('" + o.eval_file +
                "'), both read from its start");
  return w;
}

const std::vector<std::string>& lm_distill_outputs() {
  static const std::vector<std::string> names = {"config.yaml", "student",   "baseline",    "*_train.json", "*_last", "teacher_cache",
                                                 "report.json", "report.md", "curves.svg", "curves.png"};
  return names;
}

LmDistillSummary run_lm_distill(const LmDistillOptions& o) {
  o.validate();
  const auto start = std::chrono::steady_clock::now();
  const fs::path run(o.run_dir);
  fs::create_directories(run);

  CausalLm teacher = load_causal_lm(o.teacher);
  teacher.model = first_layers(teacher.model, o.teacher_layers);
  freeze(teacher.model);
  // Checks the student's settings (smaller than the teacher, layer list) before any data is read.
  Llama student = make_lm_student(teacher.model, o.student);
  const int64_t t_ne = count_non_embedding_parameters(teacher.model);
  const int64_t s_ne = count_non_embedding_parameters(student);
  log_info(strf("teacher %lld layers, %.2f M non-embedding parameters; student %lld layers, %.2f M (%.3f)",
                static_cast<long long>(teacher.model->options().num_layers), t_ne / 1e6,
                static_cast<long long>(student->options().num_layers), s_ne / 1e6,
                static_cast<double>(s_ne) / static_cast<double>(t_ne)));

  // Training windows, then the held-out slice for the curves (data.valid, else the rest of the training
  // file; never the evaluation file, which is read here and scored once, after training).
  const int64_t curve_n = o.curve_points > 0 ? o.curve_eval_tokens : 0;
  auto train_stream = tokenize_text_file(o.train_file, teacher.tokenizer,
                                         o.train_tokens > 0 ? o.train_tokens + (o.valid_file.empty() ? curve_n : 0) : 0,
                                         o.progress);
  const LmHeldOut held_out = choose_lm_held_out(o, train_stream, [&](const std::string& path, int64_t max_tokens) {
    return tokenize_text_file(path, teacher.tokenizer, max_tokens, o.progress);
  });
  if (o.train_tokens > 0 && static_cast<int64_t>(train_stream.size()) > o.train_tokens)
    train_stream.resize(o.train_tokens);
  if (!held_out.slice.source.empty())
    log_info(strf("curves: held-out perplexity on tokens %lld-%lld of %s (%s)",
                  static_cast<long long>(held_out.slice.begin), static_cast<long long>(held_out.slice.end),
                  held_out.slice.file.c_str(), held_out.slice.source.c_str()));
  const auto selection_warnings = lm_selection_warnings(o, held_out.slice);
  for (const auto& w : selection_warnings) log_warn(w);
  const auto eval_stream = tokenize_text_file(o.eval_file, teacher.tokenizer, o.eval_tokens, o.progress);
  const auto windows = make_windows(train_stream, o.seq_len).ids;
  log_info(strf("train: %lld windows of %lld tokens from %s; eval: %zu tokens of %s", static_cast<long long>(windows.size(0)),
                static_cast<long long>(o.seq_len), o.train_file.c_str(), eval_stream.size(), o.eval_file.c_str()));

  LmTrainSetup setup;
  setup.options = &o;
  setup.teacher = teacher.model;
  setup.windows = windows;
  setup.curve_stream = held_out.tokens;
  std::shared_ptr<LmTopkCache> cache;
  if (o.mode == "token" && o.teacher_source == "cache" && o.alpha > 0) {
    const std::string path = (run / "teacher_cache" / "topk.kdlm").string();
    const auto key = make_lm_cache_key(o.teacher, teacher.model, teacher.tokenizer, windows, o.top_k,
                                       o.divergence.temperature);
    // With ranks, rank 0 builds it while the others wait (bounded by --dist-timeout).
    DataParallel* const dp = data_parallel();
    const bool build = !fs::exists(path);
    if (dp && dp->sum(build ? 1.0 : 0.0) != 0.0 && !build)
      throw IoError(located(path, "some ranks see the top-k cache and some do not", "give every rank the same run folder"));
    if (build && is_main_process())
      LmTopkCache::write(path, teacher.model, windows, key, o.eval_batch_size, o.chunk, o.progress);
    if (dp && build) dp->barrier();
    cache = std::make_shared<LmTopkCache>(LmTopkCache::open(path, key));
    setup.cached = [cache](const torch::Tensor& idx) { return cache->targets(idx); };
  }

  LmReport report;
  report.student = train_or_resume("distilled student", "student", o, setup, teacher, student);
  Llama baseline{nullptr};
  if (o.baseline) {
    baseline = make_lm_student(teacher.model, o.student);  // same initialization
    LmTrainSetup b = setup;
    b.baseline = true;
    b.cached = nullptr;
    report.baseline = train_or_resume("baseline student", "baseline", o, b, teacher, baseline);
  }

  if (!is_main_process()) {  // the students are trained and saved: evaluation and the report are rank 0's
    LmDistillSummary s;
    s.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return s;
  }

  // Evaluation: perplexity on the evaluation text and batch-1 speed, the same way for all three.
  PerplexityOptions po;
  po.seq_len = o.seq_len;
  po.batch_size = o.eval_batch_size;
  po.chunk = o.chunk;
  po.progress = o.progress;
  LmSpeedOptions so;
  so.prompt_tokens = o.speed_prompt_tokens;
  so.new_tokens = o.speed_new_tokens;
  so.warmup = o.speed_warmup;
  so.repeats = o.speed_repeats;
  auto evaluate = [&](LmReportModel& m, Llama& model, const std::string& saved) {
    po.label = "perplexity " + m.name;
    m.perplexity = evaluate_perplexity(model, eval_stream, po);
    log_info(strf("%s: perplexity %.2f on %lld tokens (%.0f tok/s)", m.name.c_str(), m.perplexity.perplexity,
                  static_cast<long long>(m.perplexity.input_tokens), m.perplexity.tokens_per_second));
  };
  report.teacher.name = "teacher";
  report.teacher.path = o.teacher;
  evaluate(report.teacher, teacher.model, o.teacher);
  evaluate(report.student, student, report.student.path);
  report.has_baseline = o.baseline;
  if (o.baseline) evaluate(report.baseline, baseline, report.baseline.path);
  // Speed in turns, round by round, so that the speed-up is a median of per-round ratios.
  std::vector<LmReportModel*> timed = {&report.teacher, &report.student};
  std::vector<LmProfileTarget> targets = {{&teacher.model, o.teacher}, {&student, report.student.path}};
  if (o.baseline) {
    timed.push_back(&report.baseline);
    targets.push_back({&baseline, report.baseline.path});
  }
  const auto profiles = profile_lms(targets, eval_stream, so);
  for (size_t i = 0; i < timed.size(); ++i) {
    timed[i]->profile = profiles[i];
    log_info(strf("%s: prefill %.0f tok/s, generation %.1f tok/s at batch 1 (%d threads)", timed[i]->name.c_str(),
                  profiles[i].prefill_tokens_per_s, profiles[i].generate_tokens_per_s, profiles[i].threads));
  }

  report.cpu = cpu_model_name();
  report.date = utc_now_iso();
  report.threads = torch::get_num_threads();
  report.train_file = o.train_file;
  report.eval_file = o.eval_file;
  report.train_tokens = windows.numel();
  report.epochs = o.epochs;
  report.held_out = held_out.slice;
  report.targets = o.targets;
  report.warnings = selection_warnings;
  report.settings = {{"mode", o.mode},
                     {"ranks", data_parallel() ? data_parallel()->world_size() : 1},
                     {"divergence", divergence_name(o.divergence.kind)},
                     {"temperature", o.divergence.temperature},
                     {"mix", o.divergence.mix},
                     {"alpha", o.alpha},
                     {"chunk", o.chunk},
                     {"teacher_source", o.mode == "token" ? o.teacher_source : "inline"},
                     {"top_k", o.top_k},
                     {"gkd_lambda", o.gkd_lambda},
                     {"seq_len", o.seq_len},
                     {"batch_size", o.batch_size},
                     {"epochs", o.epochs},
                     {"lr", o.optim.lr},
                     {"freeze_embeddings", o.freeze_embeddings},
                     {"student_layers", o.student.resolved_layers(teacher.model->options().num_layers)},
                     {"student_init", o.student.init},
                     {"eval_tokens", eval_stream.size()}};
  write_lm_report(o.run_dir, report);
  LmDistillSummary s;
  s.teacher_perplexity = report.teacher.perplexity.perplexity;
  s.student_perplexity = report.student.perplexity.perplexity;
  s.baseline_perplexity = o.baseline ? report.baseline.perplexity.perplexity : NAN;
  s.generate_speedup = report.generate_speedup();
  s.warnings = report.warnings;
  for (const auto& r : report.target_results())
    s.verdicts.push_back(r.spec.key + ": " + verdict_name(r.verdict));
  s.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

}  // namespace kd
