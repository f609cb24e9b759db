#include "kd/train/distill_pipeline.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>

#include "kd/error.h"
#include "kd/eval/distill_report.h"
#include "kd/eval/evaluate.h"
#include "kd/io/atomic_file.h"
#include "kd/knowledge/cache_key.h"
#include "kd/knowledge/feature_cache.h"
#include "kd/knowledge/knowledge_cache.h"
#include "kd/models/classifier_registry.h"
#include "kd/models/student_registry.h"
#include "kd/train/data_parallel.h"
#include "kd/train/distill_student.h"
#include "kd/train/trainer_config.h"
#include "kd/util/fault.h"
#include "kd/util/log.h"
#include "kd/util/strings.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

// Rows of the unlabelled file, and augmented copies of the training rows, are numbered from here, so
// the cached knowledge of all three can share one row space without colliding with the training rows.
constexpr int64_t kUnlabelledRowBase = int64_t{1} << 40;
constexpr int64_t kAugmentedRowBase = int64_t{1} << 50;

struct PartResult {
  EvalRecord best;  // the checkpoint chosen on the validation rows
  std::vector<EvalRecord> history;
  double train_seconds = 0;
  std::optional<Score> test;  // that checkpoint on the reported rows
};

nlohmann::json to_json(const PartResult& r) {
  nlohmann::json h = nlohmann::json::array();
  for (const auto& e : r.history) h.push_back(e.to_json());
  nlohmann::json j = {{"best", r.best.to_json()}, {"history", h}, {"train_seconds", r.train_seconds}};
  if (r.test) j["test"] = r.test->to_json();
  return j;
}

PartResult part_from_json(const nlohmann::json& j) {
  PartResult r;
  r.best = EvalRecord::from_json(j.at("best"));
  for (const auto& e : j.at("history")) r.history.push_back(EvalRecord::from_json(e));
  r.train_seconds = j.at("train_seconds").get<double>();
  if (j.contains("test")) r.test = Score::from_json(j.at("test"));
  return r;
}

// Knowledge for rows held by several caches (training file, unlabelled file, augmented copies), each
// owning the row ids from its base up to the next one's.
class RoutedKnowledge : public KnowledgeSource {
 public:
  void add(int64_t row_base, std::unique_ptr<KnowledgeSource> source) {
    routes_.push_back({row_base, std::move(source)});
    std::sort(routes_.begin(), routes_.end(), [](const Route& a, const Route& b) { return a.base < b.base; });
  }
  torch::Tensor logits(const Batch& batch) override {
    std::vector<std::vector<int64_t>> parts(routes_.size());
    for (size_t i = 0; i < batch.row_ids.size(); ++i) parts[route_of(batch.row_ids[i])].push_back(static_cast<int64_t>(i));
    for (size_t r = 0; r < routes_.size(); ++r)
      if (parts[r].size() == batch.row_ids.size()) return routes_[r].source->logits(batch);
    // On the batch's device, as every source's logits are.
    const torch::Device device = batch.input_ids.device();
    auto out = torch::empty({batch.size(), num_classes()}, torch::dtype(torch::kFloat32).device(device));  // (B, C)
    for (size_t r = 0; r < routes_.size(); ++r) {
      if (parts[r].empty()) continue;
      Batch sub;
      auto index = torch::tensor(parts[r], torch::kInt64).to(device);
      sub.input_ids = batch.input_ids.index_select(0, index);
      sub.token_type_ids = batch.token_type_ids.index_select(0, index);
      sub.attention_mask = batch.attention_mask.index_select(0, index);
      sub.labels = batch.labels.index_select(0, index);
      for (int64_t i : parts[r]) sub.row_ids.push_back(batch.row_ids[static_cast<size_t>(i)]);
      out.index_copy_(0, index, routes_[r].source->logits(sub));
    }
    return out;
  }
  int64_t num_classes() const override { return routes_.front().source->num_classes(); }

 private:
  struct Route {
    int64_t base;
    std::unique_ptr<KnowledgeSource> source;
  };
  size_t route_of(int64_t row) const {
    size_t r = 0;
    while (r + 1 < routes_.size() && row >= routes_[r + 1].base) ++r;
    return r;
  }
  std::vector<Route> routes_;
};

// The cached knowledge of one data file: reused when its key matches, built when absent; a file built
// from another teacher, tokenizer, data or settings is an error (never silently wrong soft labels).
std::unique_ptr<KnowledgeSource> cached_knowledge(const DistillOptions& o, const std::string& path,
                                                  const std::string& data_file, const TableOptions& table,
                                                  TextClassifier& teacher, const TextDataset& rows,
                                                  const std::string& augment = "") {
  CacheKey key = make_cache_key(o.teacher_dir, teacher, data_file, table, o.cache_top_k, o.cache_fp16);
  key.augment = augment;
  if (!fs::exists(path)) {
    log_info(strf("caching the teacher's logits over %zu rows%s of %s into %s", rows.size(),
                  augment.empty() ? "" : " (augmented copies)", data_file.c_str(), path.c_str()));
    fs::create_directories(fs::path(path).parent_path());
    write_knowledge_cache(path, teacher, rows, key, o.train.eval_batch_size, o.progress);
  } else {
    log_info("using the cached teacher knowledge in " + path);
  }
  return CachedKnowledge::open(path, key);
}

// The `stages:` list (StageOptions); `o` holds the experiment's other settings already.
std::vector<StageOptions> read_stages(ConfigNode& root, const DistillOptions& o) {
  const std::string types = join(stage_types());
  if (!root.is_list("stages"))
    throw ConfigError(located(root.where("stages"), "must be a list of stages", "e.g. [{type: general, ...}, {type: task}]"));
  auto list = root.child_list("stages");
  if (list.empty())
    throw ConfigError(located(root.where("stages"), "is empty", "list at least one stage (" + types + ") or leave stages out"));
  std::vector<StageOptions> stages;
  for (auto& st : list) {
    StageOptions so;
    so.type = st.require<std::string>("type");
    const auto& known = stage_types();
    if (std::find(known.begin(), known.end(), so.type) == known.end())
      throw ConfigError(located(st.where("type"), "unknown stage '" + so.type + "'", "one of: " + types));
    so.name = st.get<std::string>("name", so.type);
    if (so.name.empty() || so.name == "baseline" || so.name == "distilled" ||
        so.name.find_first_of("/\\. ") != std::string::npos)
      throw ConfigError(located(st.where("name"), "'" + so.name + "' cannot name a stage's folder",
                                "a plain word other than baseline and distilled"));
    for (const auto& other : stages)
      if (other.name == so.name)
        throw ConfigError(located(st.where("name"), "a second stage named '" + so.name + "'", "give each stage its own name"));
    so.train = trainer_options_from(st.child("train"), o.run_dir, o.train);
    if (so.type == "general") {
      if (!st.has("teacher"))
        throw ConfigError(located(st.where("teacher"), "general distillation needs the pre-trained teacher",
                                  "e.g. teacher: {type: bert, path: models/all-MiniLM-L6-v2, max_length: 66}"));
      so.teacher.push_back(st.child("teacher"));
      so.features = st.child_list("features");
      if (so.features.empty())
        throw ConfigError(located(st.where("features"), "general distillation needs feature terms",
                                  "e.g. [{type: hidden_mse, layers: uniform}, {type: attention_mse, layers: uniform}]"));
      auto d = st.child("data");
      so.data = d.get<std::string>("train", "");
      so.table.format = parse_table_format(d.get<std::string>("format", "auto"));
      so.table.header = d.get<bool>("header", true);
      so.table.text_columns = d.get_list("text", o.data.table.text_columns);
      so.table.label_column.clear();
      so.task_texts = st.get<bool>("task_texts", false);
      if (so.data.empty() && !so.task_texts)
        throw ConfigError(located(st.where("data"), "general distillation has no text",
                                  "give data: {train: FILE, text: COLUMN} and/or task_texts: true"));
      so.train.keep_latest = true;  // its validation accuracy (head untrained) chooses nothing
    } else {
      for (const char* key : {"teacher", "features", "data", "task_texts"})
        if (st.has(key))
          throw ConfigError(located(st.where(key), "a " + so.type + " stage takes no '" + key + "'",
                                    so.type == "task" ? "the task stage uses the experiment's teacher and distill: section"
                                                      : "fine-tuning uses the labels alone"));
    }
    stages.push_back(std::move(so));
  }
  return stages;
}

}  // namespace

const std::vector<std::string>& stage_types() {
  static const std::vector<std::string> types = {"finetune", "general", "task"};
  return types;
}

LossFn distill_loss_fn(const DistillLossOptions& options, KnowledgeSource* knowledge, FeatureObjective features,
                       std::shared_ptr<const TrainingProgress> progress) {
  auto loss = std::make_shared<DistillLoss>(options);
  const bool with_features = features && !features->empty();
  if ((loss->needs_teacher() || with_features) && knowledge == nullptr)
    throw Error("distill_loss_fn: a teacher term needs a knowledge source");
  if (!progress) progress = std::make_shared<TrainingProgress>();  // schedules stay at their start
  if (!with_features) {
    return [loss, knowledge, progress](const ModelOutput& out, const Batch& batch) {
      torch::Tensor teacher_logits;
      if (loss->needs_teacher()) teacher_logits = knowledge->logits(batch);  // (B, C)
      return (*loss)(out.logits, teacher_logits, batch.labels, progress->fraction).total;
    };
  }
  auto terms = features.ptr();
  return [loss, knowledge, terms, progress](const ModelOutput& out, const Batch& batch) {
    const ModelOutput teacher = knowledge->teach(batch, terms->needs());
    const double p = progress->fraction;
    return (*loss)(out.logits, teacher.logits, batch.labels, p).total +
           terms->forward(out, teacher, batch.attention_mask, p);
  };
}

DistillOptions DistillOptions::from(ConfigNode root) {
  DistillOptions o;
  o.run_dir = root.get_nonempty("run_dir", "runs/distill");
  o.teacher_dir = root.require<std::string>("teacher");
  auto data = root.child("data");
  o.unlabelled = data.get<std::string>("unlabelled", "");
  o.data = DataConfig::from(data);
  auto d = root.child("distill");
  o.loss = DistillLossOptions::from(d);
  o.features = d.child_list("features");
  o.augment = AugmentOptions::from(d.child("augment"));
  o.cache = d.get<bool>("cache", true);
  o.cache_path = d.get<std::string>("cache_path", "");
  o.cache_top_k = d.get<int64_t>("top_k", 0);
  if (o.cache_top_k < 0) throw ConfigError(located(d.where("top_k"), "must be >= 0 (0 = every class)"));
  o.cache_fp16 = d.get<bool>("fp16", false);
  o.features_fp16 = d.get<bool>("features_fp16", true);
  o.train = trainer_options_from(root.child("train"), o.run_dir);
  auto r = root.child("report");
  o.seeds.clear();
  for (const auto& s : r.get_list("seeds", {"1", "2", "3"})) {
    try {
      o.seeds.push_back(std::stoll(s));
    } catch (const std::exception&) {
      throw ConfigError(located(r.where("seeds"), "seed '" + s + "' is not an integer"));
    }
  }
  if (o.seeds.empty()) throw ConfigError(located(r.where("seeds"), "needs at least one seed"));
  o.baseline = r.get<bool>("baseline", true);
  o.baseline_epochs = r.get<int64_t>("baseline_epochs", 0);
  if (o.baseline_epochs < 0)
    throw ConfigError(located(r.where("baseline_epochs"), "must be >= 0 (0 = train.epochs)"));
  o.speed.repeats = r.get<int64_t>("latency_repeats", o.speed.repeats);
  o.speed.warmup = r.get<int64_t>("latency_warmup", o.speed.warmup);
  o.speed.warmup_seconds = r.get<double>("latency_warmup_seconds", o.speed.warmup_seconds);
  o.speed.check(r.where("latency_warmup_seconds") + " (with latency_repeats and latency_warmup)");
  o.targets = read_targets(r.child("targets"), distill_target_specs());
  if (root.has("stages")) o.stages = read_stages(root, o);
  return o;
}

const std::vector<std::string>& distill_resumable_keys() {
  static const std::vector<std::string> keys = {"run_dir",
                                                "report.seeds",
                                                "report.baseline",
                                                "report.latency_repeats",
                                                "report.latency_warmup",
                                                "report.latency_warmup_seconds",
                                                "report.targets",
                                                "train.eval_batch_size"};
  return keys;
}

const std::vector<std::string>& distill_outputs() {
  static const std::vector<std::string> names = {"config.yaml", "knowledge",   "teacher_eval.json",       "seed-*",
                                                 "student",     "report.json", "report.md",               "curves.svg",
                                                 "curves.png",  "accuracy_vs_latency.svg", "accuracy_vs_latency.png"};
  return names;
}

std::unique_ptr<DistillPipeline> DistillPipeline::from_config(Config& config, torch::Device device, bool resume,
                                                              bool progress) {
  auto root = config.root();
  DistillOptions options = DistillOptions::from(root);
  options.train.device = device;
  options.resume = resume;
  options.progress = progress;
  auto student = root.child("student");
  // A typo in the student type fails before any data is read; the sizes are read (and checked) when
  // the first student is built, after which every key must have been used.
  (void)student_registry().get(student.get<std::string>("type", "bilstm"), student.where("type"));
  auto pipeline = std::make_unique<DistillPipeline>(std::move(options), student);
  config.check_all_used();
  return pipeline;
}

DistillPipeline::DistillPipeline(DistillOptions options, ConfigNode student)
    : options_(std::move(options)), student_(std::move(student)) {
  teacher_ = load_classifier(options_.teacher_dir);
  teacher_->module().to(options_.train.device);
  auto built = make_student(student_, *teacher_);
  // Settings the two models cannot meet fail now, not after the cache.
  features_ = options_.features.empty()
                  ? "none"
                  : FeatureObjective(options_.features, FeatureTermContext{built->encoder_shape(), teacher_->encoder_shape()})
                        ->describe();
  // A general stage's pre-trained teacher: the student starts from it and learns its features, over
  // text the fine-tuned teacher's tokenizer reads, so both must read text alike.
  for (auto& st : options_.stages) {
    if (st.type != "general") {
      stage_teachers_.push_back(nullptr);
      continue;
    }
    ConfigNode& section = st.teacher.front();
    auto pretrained = make_teacher(section, teacher_->labels());
    if (fingerprint_tokenizer(pretrained->tokenizer()) != fingerprint_tokenizer(teacher_->tokenizer()))
      throw ConfigError(located(section.where("path"), "the pre-trained teacher's tokenizer differs from the fine-tuned teacher's",
                                "general distillation needs the encoder the teacher was fine-tuned from"));
    if (pretrained->max_length() != teacher_->max_length())
      throw ConfigError(located(section.where("max_length"),
                                std::to_string(pretrained->max_length()) + " tokens, the fine-tuned teacher reads " +
                                    std::to_string(teacher_->max_length()),
                                "set max_length: " + std::to_string(teacher_->max_length())));
    pretrained->module().to(options_.train.device);
    auto from_pretrained = make_student(student_, *pretrained);
    (void)FeatureObjective(st.features, FeatureTermContext{from_pretrained->encoder_shape(), pretrained->encoder_shape()});
    stage_teachers_.push_back(std::move(pretrained));
  }
}

DistillSummary DistillPipeline::run() {
  const auto start = std::chrono::steady_clock::now();
  const DistillOptions& o = options_;
  ConfigNode& student_section = student_;
  auto& teacher = teacher_;
  const fs::path run(o.run_dir);
  fs::create_directories(run);
  // Data-parallel (train/data_parallel.h): every rank trains every part on its slices and helps build the
  // logits cache; rank 0 alone scores, writes results and reports.
  DataParallel* const dp = data_parallel();
  const bool main_rank = is_main_process();

  const LabelVocab& labels = teacher->labels();
  log_info("reading " + o.data.train);
  DataSplits splits = read_splits(o.data);
  // Labels the teacher does not know fail here, naming file:line (TextDataset maps them through its list).
  TextDataset train_rows(splits.train, teacher->tokenizer(), labels, teacher->max_length(), splits.train_source);
  TextDataset valid(splits.valid, teacher->tokenizer(), labels, teacher->max_length(), splits.valid_source);
  // The rows the figures are reported on: the test file, scored once per model with its chosen checkpoint.
  const TextDataset reported(splits.reported(), teacher->tokenizer(), labels, teacher->max_length(),
                             splits.reported_source());
  for (const auto& w : splits.warnings) log_warn(w);
  std::vector<TextExample> all = train_rows.examples();
  std::unique_ptr<TextDataset> extra;
  if (!o.unlabelled.empty()) {
    TableOptions t = o.data.table;
    t.label_column.clear();
    auto rows = read_table(o.unlabelled, t);
    for (auto& r : rows) r.row += kUnlabelledRowBase;
    extra = std::make_unique<TextDataset>(rows, teacher->tokenizer(), labels, teacher->max_length(), o.unlabelled);
    all.insert(all.end(), extra->examples().begin(), extra->examples().end());
    log_info(strf("%zu unlabelled rows added from %s", extra->size(), o.unlabelled.c_str()));
  }
  std::unique_ptr<TextDataset> augmented;
  std::string augment_key = o.augment.describe();  // the augmented cache's key: how its copies were made
  if (o.augment.enabled() && o.loss.alpha.max() > 0) {
    std::optional<WordNeighbours> neighbours;
    if (o.augment.swaps()) {
      const torch::Tensor table = teacher->word_embeddings();  // (V, H)
      if (!table.defined())
        throw ConfigError("distill.augment.swap_prob: the teacher in " + o.teacher_dir +
                          " has no word embedding table to find neighbours in; set swap_prob: 0");
      neighbours = nearest_words(table, teacher->tokenizer(), train_rows, o.augment.neighbours);
      augment_key += " table=" + neighbours->fingerprint();
      log_info(strf("%zu words of the training rows have swap candidates", neighbours->of.size()));
    }
    augmented = std::make_unique<TextDataset>(
        augment_examples(train_rows, teacher->tokenizer(), o.augment, kAugmentedRowBase,
                         neighbours ? &*neighbours : nullptr),
        o.data.train + " (augmented)");
    all.insert(all.end(), augmented->examples().begin(), augmented->examples().end());
    log_info(strf("%zu augmented copies of the training rows added (%s)", augmented->size(),
                  o.augment.describe().c_str()));
  }
  const TextDataset train(std::move(all), splits.train_source);

  // The teacher on the reported rows and on the validation rows (the curves' reference line), once.
  const fs::path teacher_eval = run / "teacher_eval.json";
  Score teacher_test, teacher_valid;
  nlohmann::json cached_eval = fs::exists(teacher_eval) ? read_json(teacher_eval.string()) : nlohmann::json();
  if (!main_rank) {
    // the teacher's figures are rank 0's to measure and report
  } else if (cached_eval.contains("test") && cached_eval.contains("valid") &&
      cached_eval["test"].value("source", "") == reported.source() &&
      cached_eval["valid"].value("source", "") == valid.source()) {
    teacher_test = Score::from_json(cached_eval["test"]);
    teacher_valid = Score::from_json(cached_eval["valid"]);
  } else {
    log_info("evaluating the teacher on " + reported.source() + " and " + valid.source());
    teacher_test = score(*teacher, reported, o.train.eval_batch_size, o.progress);
    teacher_valid = score(*teacher, valid, o.train.eval_batch_size, o.progress);
    write_json_atomic(teacher_eval.string(), {{"test", teacher_test.to_json()}, {"valid", teacher_valid.to_json()}});
  }
  const double teacher_acc = teacher_test.accuracy, teacher_f1 = teacher_test.macro_f1;
  log_info(strf("teacher: test accuracy %.4f, macro-F1 %.4f (%s); validation accuracy %.4f", teacher_acc, teacher_f1,
                reported.source().c_str(), teacher_valid.accuracy));

  // Knowledge.
  std::unique_ptr<KnowledgeSource> knowledge;
  if (!o.features.empty() && !o.cache) {
    log_info("feature terms: the teacher runs live on every batch (distill.cache: false)");
    knowledge = std::make_unique<LiveTeacher>(*teacher);
  } else if (!o.features.empty()) {
    // The features the terms read, cached once over the training file's rows (held-out ones included,
    // as for the logits); other rows would need the teacher live beside the cache.
    if (extra || augmented)
      throw ConfigError(located("distill.cache",
                                "the teacher's features are cached for the training file only, "
                                "not for data.unlabelled or distill.augment rows",
                                "set distill.cache: false to run the teacher live on every row"));
    std::vector<TextExample> file_rows = train_rows.examples();
    if (!splits.holdout_rows.empty())
      file_rows.insert(file_rows.end(), valid.examples().begin(), valid.examples().end());
    const FeatureObjective terms(
        o.features,
        FeatureTermContext{make_student(student_section, *teacher)->encoder_shape(), teacher->encoder_shape()});
    const fs::path folder = o.cache_path.empty() ? run / "knowledge" : fs::path(o.cache_path).parent_path();
    if (dp && !main_rank) dp->barrier();  // rank 0 builds the feature cache alone (bounded by --dist-timeout)
    knowledge = cached_features((folder / "features.safetensors").string(), *teacher,
                                TextDataset(std::move(file_rows), splits.train_source),
                                FeatureCacheKey::make(o.teacher_dir, *teacher, o.data.train, o.data.table,
                                                      terms->teacher_features(), o.features_fp16),
                                {o.train.eval_batch_size, o.progress});
    if (dp && main_rank) dp->barrier();
  } else if (o.loss.alpha.max() > 0) {
    if (o.cache) {
      const std::string path = o.cache_path.empty() ? (run / "knowledge" / "train.safetensors").string() : o.cache_path;
      auto routed = std::make_unique<RoutedKnowledge>();
      // Every row of the training file, the held-out validation slice included (the student never trains
      // on it, and its few logits cost little): the cache is then the one `kd cache` makes of the file,
      // whatever slice a run holds out.
      std::vector<TextExample> file_rows = train_rows.examples();
      if (!splits.holdout_rows.empty())
        file_rows.insert(file_rows.end(), valid.examples().begin(), valid.examples().end());
      const TextDataset whole_file(std::move(file_rows), splits.train_source);
      routed->add(0, cached_knowledge(o, path, o.data.train, o.data.table, *teacher, whole_file));
      const fs::path folder = fs::path(path).parent_path();
      if (extra) {
        TableOptions t = o.data.table;
        t.label_column.clear();
        routed->add(kUnlabelledRowBase, cached_knowledge(o, (folder / "unlabelled.safetensors").string(),
                                                         o.unlabelled, t, *teacher, *extra));
      }
      if (augmented)
        routed->add(kAugmentedRowBase, cached_knowledge(o, (folder / "augmented.safetensors").string(), o.data.train,
                                                        o.data.table, *teacher, *augmented,
                                                        // and from which rows: a held-out slice is not copied
                                                        augment_key + " rows=train minus " + o.data.selection()));
      knowledge = std::move(routed);
    } else {
      knowledge = std::make_unique<LiveTeacher>(*teacher);
    }
  }

  // Students. Each part is a Trainer run folder under seed-<s>/: the distilled student (one folder, or one
  // per stage) and the baseline.
  struct Part {
    std::string folder;                     // under seed-<s>/
    std::string what;                       // for the log
    std::string start_from;                 // a model folder to continue from; "": make_student
    TextClassifier* start_teacher;          // make_student's teacher (its layers, tables, head)
    DistillLossOptions loss;
    const std::vector<ConfigNode>* features;  // feature terms, or null
    TextClassifier* feature_teacher;        // whose features they read
    KnowledgeSource* knowledge;             // the teacher's logits and features
    const TextDataset* data;
    TrainerOptions train;
  };
  auto train_part = [&](int64_t seed, const Part& part) -> PartResult {
    const fs::path dir = run / ("seed-" + std::to_string(seed)) / part.folder;
    // The chosen checkpoint on the reported rows: measured once, after training, and kept in result.json.
    auto with_test = [&](PartResult p) {
      if (p.test && p.test->source == reported.source()) return p;
      if (!main_rank) {  // rank 0 scores and records; the other ranks only train
        p.test = Score{};
        return p;
      }
      auto chosen = load_classifier((dir / "best").string());
      chosen->module().to(o.train.device);
      p.test = score(*chosen, reported, o.train.eval_batch_size, false);
      write_json_atomic((dir / "result.json").string(), to_json(p));
      return p;
    };
    if (fs::exists(dir / "result.json")) {
      log_info("done before: " + dir.string());
      return with_test(part_from_json(read_json((dir / "result.json").string())));
    }
    log_info(strf("training the %s, seed %lld", part.what.c_str(), static_cast<long long>(seed)));
    torch::manual_seed(static_cast<uint64_t>(seed));
    auto student = part.start_from.empty() ? make_student(student_section, *part.start_teacher)
                                           : load_classifier(part.start_from);
    TrainerOptions t = part.train;
    t.run_dir = dir.string();
    t.seed = static_cast<uint64_t>(seed);
    t.resume = fs::exists(dir / "last" / "trainer_state.json");
    t.device = o.train.device;
    t.progress = o.progress;
    FeatureObjective features{nullptr};
    std::unique_ptr<TextClassifier> trained;  // the student, wrapped with the objective's parameters if any
    if (part.features && !part.features->empty()) {
      features = FeatureObjective(*part.features,
                                  FeatureTermContext{student->encoder_shape(), part.feature_teacher->encoder_shape()});
      trained = std::make_unique<DistillStudent>(*student, features);
      log_info("feature terms: " + features->describe());
    }
    t.training_progress = std::make_shared<TrainingProgress>();
    Trainer trainer(trained ? *trained : *student, t,
                    distill_loss_fn(part.loss, part.knowledge, features, t.training_progress));
    const TrainResult r = trainer.fit(*part.data, valid);
    if (r.stopped_early) throw TrainError("stopped early");  // stop_after is not offered by kd distill
    const PartResult p = with_test(PartResult{r.best, r.history, r.train_seconds, std::nullopt});
    log_info(strf("%s, seed %lld: %s validation accuracy %.4f (step %lld); test accuracy %.4f", part.what.c_str(),
                  static_cast<long long>(seed), t.keep_latest ? "last" : "best", r.best.accuracy,
                  static_cast<long long>(r.best.step), p.test->accuracy));
    return p;
  };

  DistillLossOptions labels_only = o.loss;
  labels_only.alpha = 0;
  TrainerOptions baseline_train = o.train;
  if (o.baseline_epochs > 0) baseline_train.epochs = o.baseline_epochs;
  const Part baseline_part{"baseline", "baseline student", "", teacher.get(), labels_only, nullptr, nullptr,
                           nullptr, &train_rows, baseline_train};
  // The distilled student's recipe: one task part, or the stages in order, each from the one before.
  std::vector<Part> recipe;
  std::vector<std::unique_ptr<TextDataset>> stage_data;
  std::vector<std::unique_ptr<KnowledgeSource>> stage_knowledge;
  if (o.stages.empty()) {
    recipe.push_back({"distilled", "distilled student", "", teacher.get(), o.loss, &o.features, teacher.get(),
                      knowledge.get(), &train, o.train});
  }
  for (size_t i = 0; i < o.stages.size(); ++i) {
    const StageOptions& st = o.stages[i];
    Part part{st.name, "stage '" + st.name + "' (" + st.type + ")", "", teacher.get(), o.loss, &o.features,
              teacher.get(), knowledge.get(), &train, st.train};
    if (st.type == "general") {
      TextClassifier& pretrained = *stage_teachers_[i];
      std::vector<TextExample> texts;
      if (!st.data.empty()) {
        auto rows = read_table(st.data, st.table);
        for (auto& row : rows) row.row += kUnlabelledRowBase;
        TextDataset read(rows, teacher->tokenizer(), labels, teacher->max_length(), st.data);
        texts = read.examples();
      }
      if (st.task_texts)
        for (TextExample e : train_rows.examples()) {
          e.label = -1;  // the text only: general distillation learns no task
          texts.push_back(std::move(e));
        }
      log_info(strf("stage '%s': %zu texts without labels", st.name.c_str(), texts.size()));
      stage_data.push_back(std::make_unique<TextDataset>(std::move(texts), st.data.empty() ? o.data.train : st.data));
      stage_knowledge.push_back(std::make_unique<LiveTeacher>(pretrained));
      part.start_teacher = &pretrained;
      part.loss = labels_only;  // no logits: the pre-trained teacher's head knows no task
      part.features = &st.features;
      part.feature_teacher = &pretrained;
      part.knowledge = stage_knowledge.back().get();
      part.data = stage_data.back().get();
    } else if (st.type == "finetune") {
      part.loss = labels_only;
      part.features = nullptr;
      part.knowledge = nullptr;
      part.data = &train_rows;
    }
    recipe.push_back(std::move(part));
  }

  DistillReport report;
  report.dataset = o.data.train;
  report.valid_file = splits.valid_source;
  report.test_file = splits.reported_source();
  report.data = splits.to_json();
  report.warnings = splits.warnings;
  report.targets = o.targets;
  report.teacher.name = "teacher";
  report.teacher.type = teacher->type();
  report.teacher.accuracy = {teacher_acc};
  report.teacher.macro_f1 = {teacher_f1};
  report.teacher.valid_accuracy = {teacher_valid.accuracy};
  report.distilled.name = "distilled student";
  report.baseline.name = "baseline student";
  DistillSummary summary;
  summary.teacher_accuracy = teacher_acc;
  int64_t best_seed = o.seeds.front();
  double best_acc = -1;
  if (!o.stages.empty()) {
    report.stages.resize(o.stages.size());
    for (size_t i = 0; i < o.stages.size(); ++i) report.stages[i].name = o.stages[i].name + " (" + o.stages[i].type + ")";
  }
  auto record = [](ReportModel& m, const PartResult& p, int64_t seed) {
    m.seeds.push_back(seed);
    m.accuracy.push_back(p.test->accuracy);
    m.macro_f1.push_back(p.test->macro_f1);
    m.valid_accuracy.push_back(p.best.accuracy);
    m.histories.push_back(p.history);
  };
  for (int64_t seed : o.seeds) {
    PartResult p;
    std::string previous;
    for (size_t i = 0; i < recipe.size(); ++i) {
      Part part = recipe[i];
      if (!previous.empty()) part.start_from = previous;
      p = train_part(seed, part);
      previous = (run / ("seed-" + std::to_string(seed)) / part.folder / "best").string();
      if (!o.stages.empty()) record(report.stages[i], p, seed);
    }
    record(report.distilled, p, seed);
    summary.distilled_accuracy.push_back(p.test->accuracy);
    // The deployable student is chosen on the validation rows too, never on the test figures.
    if (p.best.accuracy > best_acc) {
      best_acc = p.best.accuracy;
      best_seed = seed;
    }
    if (o.baseline) {
      const PartResult b = train_part(seed, baseline_part);
      record(report.baseline, b, seed);
      summary.baseline_accuracy.push_back(b.test->accuracy);
    }
  }

  if (!main_rank) {
    summary.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary;
  }

  // The deployable student: the best distilled seed's model folder (of the last stage).
  const fs::path best_dir = run / ("seed-" + std::to_string(best_seed)) / recipe.back().folder / "best";
  {
    StagedDir dir(run / "student");
    for (const auto& entry : fs::directory_iterator(best_dir))
      fs::copy_file(entry.path(), dir.path() / entry.path().filename());
    dir.commit();
  }
  summary.student_dir = (run / "student").string();

  // Speed and size, all measured here, now, on this machine.
  log_info(strf("measuring latency and throughput (%d threads, device %s)", torch::get_num_threads(),
                o.train.device.str().c_str()));
  auto distilled = load_classifier((run / "student").string());
  distilled->module().to(o.train.device);
  report.distilled.type = distilled->type();
  std::vector<ProfileTarget> targets = {{teacher.get(), o.teacher_dir}, {distilled.get(), (run / "student").string()}};
  std::unique_ptr<TextClassifier> baseline;
  if (o.baseline) {
    const fs::path base_dir = run / ("seed-" + std::to_string(o.seeds.front())) / "baseline" / "best";
    baseline = load_classifier(base_dir.string());
    baseline->module().to(o.train.device);
    report.baseline.type = baseline->type();
    targets.push_back({baseline.get(), base_dir.string()});
  }
  // In turns, pass by pass: see profile_models.
  const auto profiles = profile_models(targets, reported, o.speed);
  report.teacher.profile = profiles[0];
  report.distilled.profile = profiles[1];
  if (o.baseline) report.baseline.profile = profiles[2];
  report.cpu = cpu_model_name();
  report.date = utc_now_iso();
  report.threads = torch::get_num_threads();
  report.settings = {{"teacher", o.teacher_dir},
                     {"soft_loss", o.loss.soft},
                     {"temperature", o.loss.temperature.to_json()},
                     {"alpha", o.loss.alpha.to_json()},
                     {"knowledge", o.cache ? "cached" : "live"},
                     {"features", features_},
                     {"device", o.train.device.str()},
                     {"ranks", dp ? dp->world_size() : 1},
                     {"seeds", o.seeds},
                     {"epochs", o.train.epochs},
                     {"baseline_epochs", o.baseline_epochs > 0 ? o.baseline_epochs : o.train.epochs},
                     {"batch_size", o.train.batch_size},
                     {"lr", o.train.optim.lr},
                     {"train_rows", train_rows.size()},
                     {"unlabelled_rows", extra ? extra->size() : 0},
                     {"augmented_rows", augmented ? augmented->size() : 0},
                     {"augment", o.augment.enabled() ? o.augment.describe() : "none"},
                     {"valid_rows", valid.size()},
                     {"selection", o.data.selection()},
                     {"test_rows", reported.size()}};
  fault_point("report");
  write_report(o.run_dir, report);
  std::printf("%s\n", report.to_table().c_str());
  summary.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace kd
