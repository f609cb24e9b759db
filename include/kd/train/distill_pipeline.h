// The whole classic distillation flow behind `kd distill`, as one resumable pipeline:
//
//   frozen teacher ──► its knowledge over the training rows (cached once with `kd cache`'s format, or live)
//        │                          │
//        ▼                          ▼
//   teacher accuracy      for each seed: distilled student (α from the config) and, for comparison,
//                         the baseline student (α = 0, same epochs over the labelled rows: the teacher is
//                         never consulted, so unlabelled and augmented rows, which only it can label, are left out)
//                                   │
//                                   ▼
//               report: accuracy, retention, size, FLOPs, latency/throughput, curves (eval/distill_report.h)
//
// Run folder layout (run_dir):
//   config.yaml                    resolved config
//   knowledge/train.safetensors    cached teacher logits (when distill.cache is on); unlabelled.safetensors
//                                  and augmented.safetensors for the extra rows, when there are any;
//                                  features.safetensors: the teacher's features for distill.features terms
//   teacher_eval.json              the teacher on the reported (test) rows and the validation rows
//   seed-<s>/distilled/, seed-<s>/baseline/   Trainer run folders (best/, last/, metrics.json, result.json:
//                                  the checkpoint chosen on the validation rows, and its test figures);
//                                  with `stages:`, seed-<s>/<stage name>/ for each stage instead of distilled/
//   student/                       the deployable student: the distilled seed best on the validation rows
//   report.json, report.md, curves.svg, accuracy_vs_latency.svg
// A part whose result.json exists is done and is not re-run; an interrupted part resumes from its last/.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kd/data/augment.h"
#include "kd/data/data_config.h"
#include "kd/eval/model_profile.h"
#include "kd/eval/targets.h"
#include "kd/io/config.h"
#include "kd/knowledge/knowledge_source.h"
#include "kd/losses/distill_loss.h"
#include "kd/losses/feature_terms.h"
#include "kd/models/text_classifier.h"
#include "kd/train/trainer.h"

namespace kd {

// One step of a staged recipe (`stages:`: TinyBERT's general then task-specific distillation, and the
// flow's last step, fine-tuning the student), each trained in seed-<s>/<name>/ from the model the
// previous stage chose (the first from the student section's start):
//   general   feature terms only (`features:`, required), from a pre-trained teacher (`teacher:`, a
//             model section as train-teacher's `model:`), over text without labels (`data:` {train, text,
//             format, header} and/or `task_texts: true`, the training rows' texts); keeps its last weights
//   task      the distillation of `distill:` (soft labels and its feature terms) with the fine-tuned teacher
//   finetune  the labels alone
// A stage's `train:` keys override the experiment's `train:`.
struct StageOptions {
  std::string name;  // its folder; default: the type
  std::string type;  // stage_types()
  std::vector<ConfigNode> teacher;   // general: one model section (held in a list: ConfigNode has no empty state)
  std::string data;                  // general: a text file read without labels; "" for none
  TableOptions table;
  bool task_texts = false;           // general: also the training rows' texts, without their labels
  std::vector<ConfigNode> features;  // general: its terms
  TrainerOptions train;
};

// "finetune", "general", "task".
const std::vector<std::string>& stage_types();

// The config keys a resumed kd distill run may change (check_resume_config): they decide which parts run
// and how the report is measured, never what a finished part learned. run_dir, report.seeds (more seeds
// add parts), report.baseline, report.latency_*, report.targets, train.eval_batch_size.
const std::vector<std::string>& distill_resumable_keys();

// What kd distill writes directly in its run folder (the layout above), as file-name patterns: what
// --overwrite may remove.
const std::vector<std::string>& distill_outputs();

struct DistillOptions {
  std::string run_dir;
  std::string teacher_dir;         // a classifier folder (kd train-teacher's best/, or a transformers folder)
  DataConfig data;
  std::string unlabelled;          // optional file of extra rows without labels (same text columns)
  AugmentOptions augment;          // teacher-labelled augmented copies of the training rows (distill.augment)
  DistillLossOptions loss;
  // distill.features: terms on the teacher's hidden states, attention and relations
  // (losses/feature_terms.h); with any, the features they read come from a feature cache
  // (knowledge/feature_cache.h) when `cache` is on, else from the teacher run live on every batch.
  std::vector<ConfigNode> features;
  bool cache = true;               // false: run the teacher inline on every batch
  std::string cache_path;          // empty: <run_dir>/knowledge/train.safetensors
  int64_t cache_top_k = 0;         // 0: all classes
  bool cache_fp16 = false;
  bool features_fp16 = true;       // the feature cache in half precision (false: float32)
  TrainerOptions train;            // run_dir and seed are set per part
  std::vector<int64_t> seeds = {1, 2, 3};
  bool baseline = true;            // also train the α = 0 student
  int64_t baseline_epochs = 0;     // its epochs over the labelled rows; 0: train.epochs. The distilled student's
                                   // epochs also cover augmented/unlabelled rows, so its epochs are often fewer
  SpeedOptions speed;
  std::vector<DeclaredTarget> targets;  // report.targets (distill_target_specs())
  // stages: the distilled student's recipe; empty: one task stage, trained in seed-<s>/distilled/.
  std::vector<StageOptions> stages;
  bool resume = false;             // continue an interrupted run
  bool progress = true;

  // From the experiment config (teacher, data, student is read separately, distill, train, report).
  static DistillOptions from(ConfigNode root);
};

// The trainer's objective for one student: DistillLoss on the model's logits, with the teacher's logits
// from `knowledge` fetched only when the loss needs them (never for α = 0), plus the feature terms of
// `features` when given (the teacher's features then come from knowledge->teach). `knowledge` must
// outlive it.
// `progress` (the trainer's TrainingProgress) drives scheduled T, α and weights; null: their start values.
LossFn distill_loss_fn(const DistillLossOptions& options, KnowledgeSource* knowledge,
                       FeatureObjective features = nullptr, std::shared_ptr<const TrainingProgress> progress = nullptr);

struct DistillSummary {
  double teacher_accuracy = 0;                                // on the reported (test) rows
  std::vector<double> distilled_accuracy, baseline_accuracy;  // per seed, on the reported rows
  std::string student_dir;        // run_dir/student
  double wall_seconds = 0;
};

class DistillPipeline {
 public:
  // Loads the teacher and builds one student from `student` (the config's student section) so that bad
  // sizes fail before any long work; the caller may then check that every config key was used.
  DistillPipeline(DistillOptions options, ConfigNode student);
  // The pipeline of a whole experiment config (kd distill's, and each kd ablate variant's): the options
  // read, the student type checked before any data is read, the teacher loaded, the student's sizes
  // checked, and then every key of `config` must have been used (ConfigError naming the first that was not).
  static std::unique_ptr<DistillPipeline> from_config(Config& config, torch::Device device, bool resume, bool progress);
  const DistillOptions& options() const { return options_; }
  // Runs (or resumes) the flow.
  DistillSummary run();

 private:
  DistillOptions options_;
  ConfigNode student_;
  std::unique_ptr<TextClassifier> teacher_;
  std::string features_;  // the feature terms as the report names them ("none" without)
  std::vector<std::unique_ptr<TextClassifier>> stage_teachers_;  // per stage: its own teacher (general), else null
};

}  // namespace kd
