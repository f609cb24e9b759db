// kd bench distill --config FILE --knowledge cached|live [--steps N --warmup W] [--out FILE]
// kd bench infer   --model DIR --data FILE [--repeats N --warmup W] [--out FILE]
// The kd side of bench/run_bench.py: one measurement per process (so peak RSS is this tool's alone),
// printed and written as JSON with the field names the Python peers use.
//
// distill times kd's real training loop (Trainer::fit with the distillation objective), step by step,
// on (warmup + steps) batches drawn from the config's training file; the first `warmup` steps are
// excluded. "cached" reads the teacher's logits from a knowledge cache built before timing starts (as
// kd distill does), "live" runs the frozen teacher inside every step.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>

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
#include "kd/models/student_registry.h"
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

class BenchCommand : public Command {
 public:
  std::string name() const override { return "bench"; }
  std::string help() const override {
    return "measure kd's distillation step loop (bench distill) or a model's inference speed (bench infer)";
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
    distill_->add_option("--steps", steps_, "timed optimizer steps")->capture_default_str()->check(CLI::PositiveNumber);
    distill_->add_option("--warmup", warmup_, "untimed steps first")->capture_default_str()->check(
        CLI::NonNegativeNumber);
    distill_->add_option("--work-dir", work_dir_, "scratch folder for the cache and run (default: a temp folder)");
    distill_->add_option("--out", out_, "also write the JSON here");
    common_.add_to(*distill_);

    infer_ = app.add_subcommand("infer", "time a model's forward pass at batch 1 and batch 64");
    infer_->add_option("-m,--model", model_, "model folder (student or teacher)")->required();
    infer_->add_option("-d,--data", data_, "file whose texts are the inputs")->required();
    flags_.label.clear();
    flags_.add_to(*infer_);
    infer_->add_option("--repeats", speed_.repeats, "timed passes of each kind")->capture_default_str()->check(
        CLI::PositiveNumber);
    infer_->add_option("--warmup", speed_.warmup, "untimed passes first (at least)")->capture_default_str()->check(
        CLI::NonNegativeNumber);
    infer_->add_option("--warmup-seconds", speed_.warmup_seconds, "least time spent in untimed passes")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    infer_->add_option("--out", out_, "also write the JSON here");
    infer_common_.add_to(*infer_);
  }

  int run() override { return distill_->parsed() ? run_distill() : run_infer(); }

 private:
  int run_distill() {
    common_.apply();
    const torch::Device device = common_.resolve_device();
    Config config = Config::load(config_, overrides_);
    auto root = config.root();
    DistillOptions o = DistillOptions::from(root);
    auto student_section = root.child("student");
    auto teacher = load_classifier(o.teacher_dir);
    teacher->module().to(device);
    const fs::path work = work_dir_.empty() ? fs::temp_directory_path() / ("kd-bench-" + std::to_string(::getpid()))
                                            : fs::path(work_dir_);
    fs::remove_all(work);
    fs::create_directories(work);

    // (warmup + steps) batches of rows drawn at random from the training file.
    DataSplits splits = read_splits(o.data);
    std::mt19937_64 rng(1);
    seeded_shuffle(splits.train, rng);
    const auto rows = static_cast<size_t>((warmup_ + steps_) * o.train.batch_size);
    if (splits.train.size() < rows)
      throw DataError(located(o.data.train, "has " + std::to_string(splits.train.size()) + " rows; the benchmark needs " +
                                                std::to_string(rows), "lower --steps"));
    splits.train.resize(rows);
    // The rows keep their row numbers in the file, so a cache keyed by the whole file serves them.
    const TextDataset train(splits.train, teacher->tokenizer(), teacher->labels(), teacher->max_length(),
                            o.data.train);
    std::vector<TextRow> valid_rows(splits.valid.begin(), splits.valid.begin() + std::min<size_t>(64, splits.valid.size()));
    const TextDataset valid(valid_rows, teacher->tokenizer(), teacher->labels(), teacher->max_length(), "valid");

    std::unique_ptr<KnowledgeSource> knowledge;
    if (knowledge_ == "cached") {
      const std::string path = (work / "knowledge.safetensors").string();
      const CacheKey key = make_cache_key(o.teacher_dir, *teacher, o.data.train, o.data.table, 0, false);
      write_knowledge_cache(path, *teacher, train, key, o.train.eval_batch_size, false);
      knowledge = CachedKnowledge::open(path, key);
    } else {
      knowledge = std::make_unique<LiveTeacher>(*teacher);
    }
    torch::manual_seed(1);
    auto student = make_student(student_section, *teacher);
    TrainerOptions t = o.train;
    t.run_dir = (work / "run").string();
    t.epochs = 1;
    t.eval_every = 0;
    t.checkpoint_every = 0;
    t.progress = false;
    t.record_step_times = true;
    t.device = device;
    Trainer trainer(*student, t, distill_loss_fn(o.loss, knowledge.get()));
    const TrainResult r = trainer.fit(train, valid);
    std::vector<double> timed(r.step_seconds.begin() + std::min<size_t>(warmup_, r.step_seconds.size()),
                              r.step_seconds.end());
    if (timed.empty()) throw Error("bench: no timed steps");
    const double total = std::accumulate(timed.begin(), timed.end(), 0.0);
    emit({{"tool", "kd"},
          {"mode", knowledge_},
          {"config", config_},
          {"steps", timed.size()},
          {"warmup", warmup_},
          {"batch_size", o.train.batch_size},
          {"ms_per_step_median", 1e3 * median(timed)},
          {"ms_per_step_p90", 1e3 * percentile(timed, 0.9)},
          {"examples_per_s", static_cast<double>(timed.size() * o.train.batch_size) / total},
          {"torch", TORCH_VERSION}},
         device, out_);
    fs::remove_all(work);
    return 0;
  }

  int run_infer() {
    infer_common_.apply();
    const torch::Device device = infer_common_.resolve_device();
    auto model = load_classifier(model_);
    model->module().to(device);
    auto rows = read_table(data_, flags_.table());
    const TextDataset sample(rows, model->tokenizer(), model->labels(), model->max_length(), data_);
    const ModelProfile p = profile_model(*model, model_, sample, speed_);
    emit({{"tool", "kd"},
          {"model", model_},
          {"type", model->type()},
          {"parameters", p.parameters},
          {"batch1_ms_median", p.latency_ms_b1},
          {"batch1_ms_p90", p.latency_ms_b1_p90},
          {"batch64_examples_per_s", p.throughput_b64},
          {"flops_per_example", p.flops_per_example},
          {"gflops_per_s_batch1", json_number(p.flops_per_example / (p.latency_ms_b1 * 1e-3) / 1e9)},
          {"gflops_per_s_batch64", json_number(p.flops_per_example * p.throughput_b64 / 1e9)},
          {"mean_tokens", p.mean_tokens},
          {"repeats", p.repeats},
          {"warmup", p.warmup},
          {"warmup_seconds", p.warmup_seconds},
          {"torch", TORCH_VERSION}},
         device, out_);
    return 0;
  }

  CLI::App* distill_ = nullptr;
  CLI::App* infer_ = nullptr;
  std::string config_, knowledge_ = "cached", work_dir_, out_, model_, data_;
  std::vector<std::string> overrides_;
  int64_t steps_ = 40, warmup_ = 5;
  SpeedOptions speed_ = [] { SpeedOptions s; s.repeats = 50; return s; }();  // as kd distill's report
  DataFlags flags_;
  CommonOptions common_, infer_common_;
};

}  // namespace

std::unique_ptr<Command> make_bench_command() { return std::make_unique<BenchCommand>(); }

}  // namespace kd::cli
