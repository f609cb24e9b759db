// kd bench distill --config FILE --knowledge cached|live [--steps N --warmup W --warmup-seconds S]
//                  [--rows FILE --teacher DIR --seed N] [--out FILE]
// kd bench infer   --model DIR --data FILE [--rows FILE] [--repeats N --warmup W --warmup-seconds S]
//                  [--out FILE]
// The kd side of bench/run_bench.py: one measurement per process (so peak RSS is this tool's alone),
// printed and written as JSON with the field names the Python peers use.
//
// distill times kd's real training loop (Trainer::fit with the distillation objective) on a pool of
// training rows: the rows listed in --rows (indices among all data rows of the config's training file;
// bench/run_bench.py writes one list that every tool reads), or, without it, (warmup + steps) batches of
// training rows drawn at random. The pool is repeated as often as the warm-up may need (so a batch may
// hold a row twice: same length, same cost), and the trainer batches it by length as kd always does.
// Warm-up rule, the same as the Python peers': the first k steps are untimed, k the least
// number >= --warmup whose steps took >= --warmup-seconds together; the next --steps steps are timed.
// A step is timed from the call of the loss of its batch to the call of the loss of the next batch: one
// whole period of the loop (backward, clipping, AdamW, schedule, zero_grad, collating the next batch, its
// forward pass). Once the timed steps are done the loop is ended (no evaluation, no checkpoint).
// "cached" reads the teacher's logits from a knowledge cache of the pool built before timing starts (as
// kd distill does), "live" runs the frozen teacher inside every step.
//
// infer measures a model's forward pass with kd's profiler (src/eval/model_profile.cpp): batch 1 on
// sample rows 0 .. repeats-1, batch 64 on rows (r * 64 + k) mod n of the sample; each kind first warms up
// on the same batches for at least --warmup passes and --warmup-seconds. The sample is --data's rows in
// file order, or the rows listed in --rows in that order (repeats allowed): bench/hf_infer.py reads the
// same list and applies the same rule, so both tools time the same rows.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "command.h"
#include "data_flags.h"
#include "kd/data/text_dataset.h"
#include "kd/error.h"
#include "kd/eval/distill_report.h"
#include "kd/eval/model_profile.h"
#include "kd/io/atomic_file.h"
#include "kd/knowledge/cache_key.h"
#include "kd/knowledge/knowledge_cache.h"
#include "kd/models/classifier_registry.h"
#include "kd/models/int8_kernels.h"
#include "kd/models/quantize.h"
#include "kd/models/student_registry.h"
#include "kd/serve/load_test.h"
#include "kd/train/distill_pipeline.h"
#include "kd/util/log.h"

namespace fs = std::filesystem;

namespace kd::cli {

namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux reports KiB
}

nlohmann::json machine_json(const torch::Device& device) {
  return {{"threads", torch::get_num_threads()}, {"cpu", cpu_model_name()}, {"device", device.str()},
          {"date", utc_now_iso()}, {"peak_rss_mib", peak_rss_mib()}};
}

void emit(nlohmann::json j, const torch::Device& device, const std::string& out) {
  j.update(machine_json(device));
  std::printf("%s\n", j.dump().c_str());
  if (!out.empty()) write_json_atomic(out, j);
}

// A row list: one 0-based data-row index per line; blank lines and lines starting with '#' are skipped.
std::vector<int64_t> read_row_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(located(path, "cannot be read"));
  std::vector<int64_t> rows;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto last = line.find_last_not_of(" \t\r");
    const std::string field = line.substr(first, last - first + 1);
    size_t used = 0;
    int64_t v = -1;
    try {
      v = std::stoll(field, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != field.size() || v < 0)
      throw DataError(located(path + ":" + std::to_string(n), "'" + field + "' is not a row index (an integer >= 0)"));
    rows.push_back(v);
  }
  if (rows.empty()) throw DataError(located(path, "lists no rows"));
  return rows;
}

// The rows of `all` named by `indices` (TextRow::row, the 0-based data-row index), in that order.
std::vector<TextRow> pick_rows(const std::vector<TextRow>& all, const std::vector<int64_t>& indices,
                               const std::string& list, const std::string& data) {
  std::unordered_map<int64_t, size_t> at;
  for (size_t i = 0; i < all.size(); ++i) at.emplace(all[i].row, i);
  std::vector<TextRow> out;
  out.reserve(indices.size());
  for (int64_t r : indices) {
    const auto it = at.find(r);
    if (it == at.end())
      throw DataError(located(list, "row " + std::to_string(r) + " is not among the " + std::to_string(all.size()) +
                                        " rows of " + data));
    out.push_back(all[it->second]);
  }
  return out;
}

// Removes the scratch folder when it goes out of scope, also when the benchmark fails.
struct ScratchDir {
  fs::path path;
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

class BenchCommand : public Command {
 public:
  std::string name() const override { return "bench"; }
  std::string help() const override {
    return "measure kd's distillation step loop (bench distill), a model's inference speed (bench infer) or a "
           "server under load (bench serve)";
  }

  void add_options(CLI::App& app) override {
    app.require_subcommand(1);
    distill_ = app.add_subcommand("distill", "time the distillation training loop of an experiment config");
    distill_->add_option("-c,--config", config_, "experiment YAML file (as for kd distill)")
        ->required()
        ->check(CLI::ExistingFile);
    distill_->add_option("--set", overrides_, "override a config value (repeatable)");
    distill_->add_option("--knowledge", knowledge_, "cached: teacher logits read from a cache; live: teacher inline")
        ->capture_default_str()
        ->check(CLI::IsMember({"cached", "live"}));
    distill_->add_option("--steps", steps_, "timed optimizer steps")->capture_default_str()->check(kPositive);
    distill_->add_option("--warmup", warmup_, "untimed steps first (at least)")->capture_default_str()->check(
        kNonNegative);
    distill_->add_option("--warmup-seconds", distill_warmup_seconds_, "least time spent in untimed steps")
        ->capture_default_str()
        ->check(kNonNegative);
    distill_->add_option("--max-warmup-steps", max_warmup_steps_,
                         "most untimed steps the repeated pool holds (0: warmup + 200 per warm-up second)")
        ->capture_default_str()
        ->check(kNonNegative);
    distill_->add_option("--rows", distill_rows_,
                         "file of training-row indices (one a line): the pool of rows every step draws from "
                         "(default: (warmup + steps) batches of random rows)")
        ->check(CLI::ExistingFile);
    distill_->add_option("--teacher", teacher_dir_, "teacher folder (default: the config's teacher)");
    distill_->add_option("--seed", seed_, "student initialisation and batch order (default: the config's first seed)");
    distill_->add_option("--work-dir", work_dir_, "scratch folder for the cache and run (default: a temp folder)");
    distill_->add_option("--out", out_, "also write the JSON here");
    common_.add_to(*distill_);
    precision_.add_to(*distill_);

    infer_ = app.add_subcommand("infer", "time a model's forward pass at batch 1 and batch 64");
    infer_->add_option("-m,--model", model_, "model folder (student or teacher)")->required();
    infer_->add_option("-d,--data", data_, "file whose texts are the inputs")->required();
    infer_->add_option("--rows", infer_rows_,
                       "file of row indices of --data (one a line, in order, repeats allowed): the sample "
                       "(default: every row in file order)")
        ->check(CLI::ExistingFile);
    flags_.label.clear();
    flags_.add_to(*infer_);
    infer_->add_option("--repeats", speed_.repeats, "timed passes of each kind")->capture_default_str()->check(
        kPositive);
    infer_->add_option("--warmup", speed_.warmup, "untimed passes first (at least)")->capture_default_str()->check(
        kNonNegative);
    infer_->add_option("--warmup-seconds", speed_.warmup_seconds, "least time spent in untimed passes")
        ->capture_default_str()
        ->check(kNonNegative);
    infer_->add_option("--out", out_, "also write the JSON here");
    infer_common_.add_to(*infer_);
    infer_precision_.add_to(*infer_);

    serve_ = app.add_subcommand("serve", "load a running kd serve (or a server with its JSON) from concurrent clients");
    serve_->add_option("--host", load_.host, "server address")->capture_default_str();
    serve_->add_option("--port", load_.port, "server port")->required();
    serve_->add_option("--route", load_.path, "/v1/classify, or /v1/completions for a causal LM")
        ->capture_default_str()
        ->check(CLI::IsMember({"/v1/classify", "/v1/completions"}));
    serve_->add_option("-d,--data", data_, "file whose texts are sent, one row a request, in turn")->required();
    serve_flags_.label.clear();
    serve_flags_.add_to(*serve_);
    serve_->add_option("--concurrency", load_.concurrency, "clients, each waiting for its answer before the next")
        ->capture_default_str()
        ->check(kPositive);
    serve_->add_option("--requests", load_.requests, "measured requests")->capture_default_str()->check(
        kPositive);
    serve_->add_option("--warmup", load_.warmup, "unmeasured requests first")->capture_default_str()->check(
        kNonNegative);
    serve_->add_option("--max-seconds", load_.max_seconds, "the measured phase stops here")
        ->capture_default_str()
        ->check(kPositive);
    serve_->add_option("--max-tokens", load_max_tokens_, "with /v1/completions: max_tokens of each request (greedy)")
        ->capture_default_str()
        ->check(kPositive);
    serve_->add_option("--out", out_, "also write the JSON here");
  }

  int run() override { return distill_->parsed() ? run_distill() : infer_->parsed() ? run_infer() : run_serve(); }

 private:
  int run_distill() {
    using clock = std::chrono::steady_clock;
    common_.apply();
    const torch::Device device = common_.resolve_device();
    precision_.apply(device);
    Config config = Config::load(config_, overrides_);
    auto root = config.root();
    DistillOptions o = DistillOptions::from(root);
    if (!teacher_dir_.empty()) o.teacher_dir = teacher_dir_;
    const int64_t seed = seed_ >= 0 ? seed_ : o.seeds.front();
    const int64_t batch_size = o.train.batch_size;
    auto student_section = root.child("student");
    auto teacher = load_classifier(o.teacher_dir);
    teacher->module().to(device);
    const fs::path work = work_dir_.empty() ? fs::temp_directory_path() / ("kd-bench-" + std::to_string(::getpid()))
                                            : fs::path(work_dir_);
    fs::remove_all(work);
    fs::create_directories(work);
    const ScratchDir scratch{work};

    // The pool: the listed rows (indices among all data rows of the training file, as the Python peers
    // count them: a validation slice the config holds out of it is not skipped, the benchmark trains no
    // model to keep), or (warmup + steps) batches of random training rows.
    DataSplits splits = read_splits(o.data);
    size_t data_rows = splits.train.size();
    std::vector<TextRow> pool;
    if (!distill_rows_.empty()) {
      const std::vector<TextRow> all = read_table(o.data.train, o.data.table);
      data_rows = all.size();
      pool = pick_rows(all, read_row_list(distill_rows_), distill_rows_, o.data.train);
    } else {
      pool = splits.train;
      std::mt19937_64 rng(static_cast<uint64_t>(seed));
      seeded_shuffle(pool, rng);
      const auto rows = static_cast<size_t>((warmup_ + steps_) * batch_size);
      if (pool.size() < rows)
        throw DataError(located(o.data.train, "has " + std::to_string(pool.size()) + " rows; the benchmark needs " +
                                                  std::to_string(rows), "lower --steps"));
      pool.resize(rows);
    }
    // Enough copies of the pool for the longest warm-up allowed, the timed steps and the batch whose loss
    // call ends the last timed step. Every copy keeps its row numbers, so one cache of the pool serves all.
    const int64_t warmup_cap =
        max_warmup_steps_ > 0 ? std::max(max_warmup_steps_, warmup_)
                              : warmup_ + static_cast<int64_t>(std::ceil(200.0 * distill_warmup_seconds_));
    const int64_t batches_needed = warmup_cap + steps_ + 1;
    const auto copies = static_cast<size_t>(
        (batches_needed * batch_size + static_cast<int64_t>(pool.size()) - 1) / static_cast<int64_t>(pool.size()));
    std::vector<TextRow> train_rows;
    train_rows.reserve(pool.size() * copies);
    for (size_t c = 0; c < copies; ++c) train_rows.insert(train_rows.end(), pool.begin(), pool.end());
    const TextDataset train(train_rows, teacher->tokenizer(), teacher->labels(), teacher->max_length(),
                            o.data.train);
    std::vector<TextRow> valid_rows(splits.valid.begin(), splits.valid.begin() + std::min<size_t>(64, splits.valid.size()));
    const TextDataset valid(valid_rows, teacher->tokenizer(), teacher->labels(), teacher->max_length(), "valid");

    std::unique_ptr<KnowledgeSource> knowledge;
    double cache_seconds = 0;
    if (knowledge_ == "cached") {
      std::vector<TextRow> unique;
      std::unordered_set<int64_t> seen;
      for (const auto& r : pool)
        if (seen.insert(r.row).second) unique.push_back(r);
      const TextDataset cached_rows(unique, teacher->tokenizer(), teacher->labels(), teacher->max_length(),
                                    o.data.train);
      const std::string path = (work / "knowledge.safetensors").string();
      const CacheKey key = make_cache_key(o.teacher_dir, *teacher, o.data.train, o.data.table, 0, false);
      cache_seconds = write_knowledge_cache(path, *teacher, cached_rows, key, o.train.eval_batch_size, false).seconds;
      knowledge = CachedKnowledge::open(path, key);
    } else {
      knowledge = std::make_unique<LiveTeacher>(*teacher);
    }
    torch::manual_seed(static_cast<uint64_t>(seed));
    auto student = make_student(student_section, *teacher);
    TrainerOptions t = o.train;
    t.run_dir = (work / "run").string();
    t.epochs = 1;
    t.grad_accum = 1;  // one optimizer step per batch, as in the Python peers
    t.seed = static_cast<uint64_t>(seed);
    t.eval_every = 0;
    t.checkpoint_every = 0;
    t.progress = false;
    t.device = device;

    // The timing loss: stamps every loss call and applies the warm-up rule; the trainer stops once the
    // stamp that closes the last timed step is taken. Step j's period is stamps[j + 1] - stamps[j].
    const LossFn loss = distill_loss_fn(o.loss, knowledge.get());
    std::vector<clock::time_point> stamps;
    std::vector<int64_t> examples, tokens_real, tokens_padded;
    int64_t first_timed = -1;
    const LossFn timed_loss = [&](const ModelOutput& output, const Batch& batch) {
      const auto now = clock::now();
      const auto j = static_cast<int64_t>(stamps.size());
      stamps.push_back(now);
      if (first_timed < 0 && j >= warmup_ &&
          std::chrono::duration<double>(now - stamps.front()).count() >= distill_warmup_seconds_)
        first_timed = j;
      examples.push_back(batch.size());
      tokens_padded.push_back(batch.attention_mask.numel());
      tokens_real.push_back(batch.attention_mask.sum().item<int64_t>());
      return loss(output, batch);
    };
    t.stop_when = [&](int64_t) {
      return first_timed >= 0 && static_cast<int64_t>(stamps.size()) > first_timed + steps_;
    };
    Trainer trainer(*student, t, timed_loss);
    if (!trainer.fit(train, valid).stopped_early)
      throw Error("bench: the warm-up rule (at least " + std::to_string(warmup_) + " steps and " +
                  std::to_string(distill_warmup_seconds_) + " s) was not met within the " +
                  std::to_string(warmup_cap) + " warm-up steps the repeated pool holds (hint: raise "
                  "--max-warmup-steps or lower --warmup-seconds)");
    std::vector<double> timed;
    int64_t timed_examples = 0, real = 0, padded = 0;
    for (int64_t j = first_timed; j < first_timed + steps_; ++j) {
      const auto i = static_cast<size_t>(j);
      timed.push_back(std::chrono::duration<double>(stamps[i + 1] - stamps[i]).count());
      timed_examples += examples[i];
      real += tokens_real[i];
      padded += tokens_padded[i];
    }
    const double total = std::accumulate(timed.begin(), timed.end(), 0.0);
    const double warmup_done_s =
        std::chrono::duration<double>(stamps[static_cast<size_t>(first_timed)] - stamps.front()).count();
    emit({{"tool", "kd"},
          {"mode", knowledge_},
          {"config", config_},
          {"teacher", o.teacher_dir},
          {"seed", seed},
          {"steps", timed.size()},
          {"warmup", warmup_},
          {"warmup_seconds", distill_warmup_seconds_},
          {"warmup_steps_done", first_timed},
          {"warmup_seconds_done", warmup_done_s},
          {"batch_size", batch_size},
          {"ms_per_step_median", 1e3 * median(timed)},
          {"ms_per_step_p90", 1e3 * percentile(timed, 0.9)},
          {"examples_per_s", static_cast<double>(timed_examples) / total},
          {"timed_examples", timed_examples},
          {"timed_seconds", total},
          {"tokens_real", real},
          {"tokens_padded", padded},
          {"padding_fraction", padded > 0 ? 1.0 - static_cast<double>(real) / static_cast<double>(padded) : 0.0},
          {"tokenization_in_step", false},
          {"length_bucketing", true},
          {"step_timing", "loss call to loss call: one whole period of Trainer::fit's loop"},
          {"cache_seconds_untimed", cache_seconds},
          {"data", o.data.train},
          {"data_rows", data_rows},
          {"rows_file", distill_rows_},
          {"pool_rows", pool.size()},
          {"settings",
           {{"batch_size", batch_size},
            {"temperature", o.loss.temperature.to_json()},
            {"alpha", o.loss.alpha.to_json()},
            {"lr", t.optim.lr},
            {"weight_decay", t.optim.weight_decay},
            {"clip_norm", t.optim.clip_norm},
            {"seed", seed}}},
          {"torch", TORCH_VERSION}},
         device, out_);
    return 0;
  }

  int run_infer() {
    infer_common_.apply();
    const torch::Device device = infer_common_.resolve_device();
    const auto precision = infer_precision_.apply(device);
    auto model = load_classifier(model_);
    model->module().to(device);
    auto rows = read_table(data_, flags_.table());
    const size_t data_rows = rows.size();
    if (!infer_rows_.empty()) rows = pick_rows(rows, read_row_list(infer_rows_), infer_rows_, data_);
    const TextDataset sample(rows, model->tokenizer(), model->labels(), model->max_length(), data_);
    const ModelProfile p = profile_model(*model, model_, sample, speed_);
    // Which arithmetic ran: an int8 folder (kd quantize) says its method; its engine is this process's.
    const nlohmann::json quantization = read_folder_quantization(model_);
    const bool is_int8 = !quantization.is_null();
    // The parts of a mixed int8 folder that multiply in float (kd quantize --float-modules), or null.
    const nlohmann::json float_modules =
        is_int8 ? quantization.value("float_modules", nlohmann::json(nullptr)) : nlohmann::json(nullptr);
    emit({{"tool", "kd"},
          {"model", model_},
          {"type", model->type()},
          {"precision", is_int8 ? std::string("int8_dynamic") : precision_name(precision.precision)},
          {"precision_reason", is_int8 ? std::string("kd quantize folder") : precision.reason},
          {"int8_engine", is_int8 ? nlohmann::json(int8::engine()) : nlohmann::json(nullptr)},
          {"int8_float_modules", float_modules},
          {"parameters", p.parameters},
          {"batch1_ms_median", p.latency_ms_b1},
          {"batch1_ms_p90", p.latency_ms_b1_p90},
          {"batch64_examples_per_s", p.throughput_b64},
          {"flops_per_example", p.flops_per_example},
          {"gflops_per_s_batch1", json_number(p.flops_per_example / (p.latency_ms_b1 * 1e-3) / 1e9)},
          {"gflops_per_s_batch64", json_number(p.flops_per_example * p.throughput_b64 / 1e9)},
          {"mean_tokens", p.mean_tokens},
          {"large_batch", p.large_batch},
          {"repeats", p.repeats},
          {"warmup", p.warmup},
          {"warmup_seconds", p.warmup_seconds},
          {"data", data_},
          {"data_rows", data_rows},
          {"rows_file", infer_rows_},
          {"sample_rows", sample.size()},
          {"tokenization_timed", false},
          {"torch", TORCH_VERSION}},
         device, out_);
    return 0;
  }

  // Requests from the rows' texts: {"texts": [text]} to classify, {"prompt": text, ...} to complete.
  int run_serve() {
    const auto rows = read_table(data_, serve_flags_.table());
    std::vector<std::string> bodies;
    for (const auto& row : rows) {
      const nlohmann::json text = row.texts.size() == 1 ? nlohmann::json(row.texts[0]) : nlohmann::json(row.texts);
      bodies.push_back(load_.path == "/v1/classify"
                           ? nlohmann::json{{"texts", {text}}}.dump()
                           : nlohmann::json{{"prompt", row.texts[0]}, {"max_tokens", load_max_tokens_},
                                            {"temperature", 0}}.dump());
    }
    const auto r = serve::run_load(load_, bodies);
    nlohmann::json j = r.to_json();
    j["tool"] = "kd bench serve";
    j["route"] = load_.path;
    j["concurrency"] = load_.concurrency;
    j["requests"] = load_.requests;
    j["warmup"] = load_.warmup;
    j["data"] = data_;
    std::printf("%s\n", j.dump().c_str());
    if (!out_.empty()) write_json_atomic(out_, j);
    return 0;
  }

  CLI::App* distill_ = nullptr;
  CLI::App* infer_ = nullptr;
  CLI::App* serve_ = nullptr;
  serve::LoadOptions load_;
  int64_t load_max_tokens_ = 16;
  DataFlags serve_flags_;
  std::string config_, knowledge_ = "cached", work_dir_, out_, model_, data_, distill_rows_, infer_rows_, teacher_dir_;
  std::vector<std::string> overrides_;
  int64_t steps_ = 40, warmup_ = 5, max_warmup_steps_ = 0, seed_ = -1;
  double distill_warmup_seconds_ = 0;
  SpeedOptions speed_ = [] { SpeedOptions s; s.repeats = 50; return s; }();  // as kd distill's report
  DataFlags flags_;
  CommonOptions common_, infer_common_;
  PrecisionOptions precision_, infer_precision_;
};

}  // namespace

std::unique_ptr<Command> make_bench_command() { return std::make_unique<BenchCommand>(); }

}  // namespace kd::cli
