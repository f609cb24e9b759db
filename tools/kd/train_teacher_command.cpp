// kd train-teacher --config FILE [--set key=value ...] [--resume | --overwrite]
// Fine-tunes a pretrained encoder with a classification head; the best model lands in <run_dir>/best.
#include <algorithm>
#include <filesystem>

#include "command.h"
#include "run_folder_flags.h"
#include "kd/data/data_config.h"
#include "kd/data/text_dataset.h"
#include "kd/eval/distill_report.h"
#include "kd/eval/evaluate.h"
#include "kd/io/atomic_file.h"
#include "kd/models/classifier_registry.h"
#include "kd/train/data_parallel.h"
#include "kd/train/trainer_config.h"
#include "kd/util/fault.h"
#include "kd/util/log.h"

namespace fs = std::filesystem;

namespace kd::cli {

namespace {

class TrainTeacherCommand : public Command {
 public:
  std::string name() const override { return "train-teacher"; }
  std::string help() const override {
    return "fine-tune a pretrained encoder as a text-classification teacher (best model in <run_dir>/best)";
  }

  void add_options(CLI::App& app) override {
    run_.add_to(app, "train.lr=3e-5", "continue an interrupted run from <run_dir>/last");
    app.add_option("--stop-after", stop_after_, "stop after N optimizer steps with a resume checkpoint (0 = run to the end)")
        ->capture_default_str()
        ->check(kNonNegative);
    common_.add_to(app);
    precision_.add_to(app);
    dist_.add_to(app);
  }

  bool data_parallel() const override { return true; }

  int run() override {
    common_.apply();
    const torch::Device device = dist_.join(common_.resolve_device());  // before anything is read or written
    precision_.apply(device);
    const bool main_rank = is_main_process();  // with torchrun, rank 0 alone writes the run folder
    Config config = run_.load();
    auto root = config.root();
    const std::string run_dir = root.get_nonempty("run_dir", "runs/teacher");
    auto model_section = root.child("model");
    const DataConfig data = DataConfig::from(root.child("data"));
    TrainerOptions options = trainer_options_from(root.child("train"), run_dir);
    options.resume = run_.resume;
    options.progress = !common_.no_progress;
    options.stop_after_steps = stop_after_;
    options.device = device;
    // The model section is read by the registry after the labels are known; read the type now so
    // that a typo fails before any data is read.
    (void)teacher_registry().get(model_section.get<std::string>("type", "bert"), model_section.where("type"));

    const fs::path run(run_dir);
    if (main_rank) run_.prepare(run, fs::exists(run / "last"), {"last", "best", "metrics.json", "summary.json"});
    DistributedOptions::check_same_start(name(), config.resolved_yaml(),
                                         strf("resume=%d overwrite=%d stop_after=%lld", run_.resume, run_.overwrite,
                                              static_cast<long long>(stop_after_)));

    log_info("reading " + data.train);
    DataSplits splits = read_splits(data);
    // A row without a label teaches a classifier nothing; left in, a batch of such rows alone would have
    // no cross-entropy to average (NaN) and its step would be skipped as if the learning rate were to blame.
    const auto unlabelled = std::remove_if(splits.train.begin(), splits.train.end(),
                                           [](const TextRow& r) { return r.label.empty(); });
    if (const auto dropped = static_cast<size_t>(splits.train.end() - unlabelled); dropped > 0) {
      splits.train.erase(unlabelled, splits.train.end());
      log_warn(strf("%zu training rows of %s have no label and are left out of fine-tuning (%zu remain)", dropped,
                    splits.train_source.c_str(), splits.train.size()));
    }
    const LabelVocab labels = LabelVocab::build(splits.train);
    if (labels.size() < 2)
      throw DataError(located(splits.train_source, "found " + std::to_string(labels.size()) + " label(s)",
                              "a classifier needs at least two classes; check data.label"));

    auto teacher = make_teacher(model_section, labels);
    config.check_all_used();
    if (main_rank) {
      if (run_.resume && fs::exists(run / "config.yaml"))
        check_resume_config((run / "config.yaml").string(), config, {"run_dir", "train.eval_batch_size"});
      fs::create_directories(run);
      write_file_atomic((run / "config.yaml").string(), config.resolved_yaml());
    }

    log_info(strf("tokenizing %zu train and %zu valid rows (max_length %lld)", splits.train.size(),
                  splits.valid.size(), static_cast<long long>(teacher->max_length())));
    TextDataset train(splits.train, teacher->tokenizer(), labels, teacher->max_length(), splits.train_source);
    TextDataset valid(splits.valid, teacher->tokenizer(), labels, teacher->max_length(), splits.valid_source);
    for (const auto& w : splits.warnings) log_warn(w);

    Trainer trainer(*teacher, options, classification_loss);
    const TrainResult result = trainer.fit(train, valid);
    if (!main_rank) return 0;  // rank 0 scores the chosen checkpoint and writes the summary
    if (result.stopped_early) {
      log_info(strf("stopped after %lld steps as asked; continue with --resume", static_cast<long long>(result.steps)));
      return 0;
    }

    // The checkpoint chosen on the validation rows, scored once on the reported rows.
    const TextDataset reported(splits.reported(), teacher->tokenizer(), labels, teacher->max_length(),
                               splits.reported_source());
    auto chosen = load_classifier((run / "best").string());
    chosen->module().to(device);
    const Score test = score(*chosen, reported, options.eval_batch_size, options.progress);

    nlohmann::json summary = {
        {"command", "train-teacher"},
        {"finished_utc", utc_now_iso()},
        {"cpu", cpu_model_name()},
        {"threads", torch::get_num_threads()},
        {"device", device.str()},
        {"ranks", kd::data_parallel() ? kd::data_parallel()->world_size() : 1},
        {"labels", labels.labels()},
        {"train_rows", train.size()},
        {"valid_rows", valid.size()},
        {"data", splits.to_json()},
        {"warnings", splits.warnings},
        {"test", test.to_json()},
        {"steps", result.steps},
        {"train_seconds", result.train_seconds},
        {"wall_seconds_this_process", result.wall_seconds},
        {"best", result.best.to_json()},
        {"best_model", (run / "best").string()}};
    fault_point("summary");
    write_json_atomic((run / "summary.json").string(), summary);
    log_info(strf("done: test accuracy %.4f (macro-F1 %.4f) on %s, with the checkpoint of step %lld chosen on the "
                  "validation rows (accuracy %.4f there); training took %.1f min (%d threads, %s, device %s); model in %s",
                  test.accuracy, test.macro_f1, reported.source().c_str(),
                  static_cast<long long>(result.best.step), result.best.accuracy,
                  result.train_seconds / 60.0, torch::get_num_threads(), cpu_model_name().c_str(), device.str().c_str(),
                  (run / "best").string().c_str()));
    return 0;
  }

 private:
  RunFolderFlags run_;
  int64_t stop_after_ = 0;
  CommonOptions common_;
  PrecisionOptions precision_;
  DistributedOptions dist_;
};

}  // namespace

std::unique_ptr<Command> make_train_teacher_command() { return std::make_unique<TrainTeacherCommand>(); }

}  // namespace kd::cli
