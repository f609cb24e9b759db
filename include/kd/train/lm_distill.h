// Distilling a causal LM into a smaller one (kd distill-lm): the whole run from one config — teacher,
// data, student, distillation, training, the no-teacher baseline, evaluation and the report.
//
// Modes (distill.mode):
//   token     every training window is scored by the teacher (inline, or read from a top-k cache) and
//             the student minimizes α · D(teacher ‖ student) + (1 − α) · CE(data) over all positions
//   sequence  the teacher continues prompts taken from the training windows (greedy or sampled,
//             distill.generate) and the student minimizes CE on those continuations
//   gkd       on-policy (Agarwal et al. 2024): with probability λ a batch's continuations are sampled
//             from the student, otherwise the data windows are used; either way the teacher scores the
//             tokens and the student minimizes D on the scored positions
// The baseline is the same student (same initialization and seed) trained on the same windows in the
// same order for the same steps with cross-entropy only. All losses are chunked (chunked_lm_loss.h).
//
// Selection apart from reporting: the curves' held-out perplexity (the only figure a reader may use to
// pick a step or a setting) is measured on data.valid when given, else on the tokens of data.train after
// the training prefix — never on data.eval, which is scored once, after training, for the report. The
// report names the slice (file, token range) and warns when it lies in the evaluation file.
//
// Run folder: config.yaml (resolved), student/ and baseline/ (causal_lm.h folders), *_train.json
// (curves, so a finished student is not trained again on restart), student_last/ and baseline_last/ (the
// resume checkpoint of a student in training), teacher_cache/ (top-k cache), report.json, report.md,
// curves.svg (lm_distill_outputs()).
//
// Data-parallel under torchrun (train/data_parallel.h): train.batch_size windows is the global batch, each
// rank trains on its slice of it; rank 0 alone builds the top-k cache (the others wait), evaluates, writes
// checkpoints, students and the report.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kd/eval/lm_report.h"
#include "kd/eval/targets.h"
#include "kd/io/config.h"
#include "kd/losses/token_divergence.h"
#include "kd/models/lm_student.h"
#include "kd/train/optimizer.h"

namespace kd {

// A small student learns from scratch-like layers: a higher peak and no weight decay.
inline OptimizerOptions lm_optimizer_defaults() {
  OptimizerOptions o;
  o.lr = 1e-3;
  o.weight_decay = 0.0;
  o.warmup_ratio = 0.05;
  return o;
}

struct LmDistillOptions {
  std::string run_dir = "runs/distill_lm";
  std::string teacher;          // GGUF file or model folder
  int64_t teacher_layers = 0;   // > 0: keep only the teacher's first layers (tiny test setups)
  std::string train_file, eval_file;
  std::string valid_file;       // data.valid (optional): the curves' held-out slice is its first curve_eval_tokens
  int64_t train_tokens = 0;     // tokens of train_file used (0: all)
  int64_t eval_tokens = 0;      // prefix of eval_file scored (0: all)
  int64_t seq_len = 256;

  LmStudentOptions student;

  std::string mode = "token";   // token | sequence | gkd
  DivergenceOptions divergence;
  double alpha = 1.0;           // weight of the divergence; 1 − α on the data's cross-entropy (token mode)
  int64_t chunk = 256;          // tokens per chunk of logits
  std::string teacher_source = "cache";  // cache (top-k on disk) | inline
  int64_t top_k = 64;
  double gkd_lambda = 0.5;      // fraction of on-policy batches (gkd)
  int64_t prompt_tokens = 32;   // sequence / gkd: prompt length taken from a window
  int64_t new_tokens = 32;      // sequence / gkd: continuation length
  double gen_temperature = 1.0;
  int64_t gen_top_k = 0;
  double gen_top_p = 1.0;

  int64_t epochs = 1;
  int64_t batch_size = 4;
  // lr, weight_decay, warmup (a fraction of the steps), clip_norm, beta1, beta2, eps: the same train:
  // keys, ranges and checks as kd train-teacher / kd distill (trainer_config.h), with LM defaults.
  OptimizerOptions optim = lm_optimizer_defaults();
  bool freeze_embeddings = false;  // keep the token embedding (and the tied head) at its initial value
  uint64_t seed = 0;
  int64_t curve_points = 10;     // curve points per student (held-out perplexity at each)
  int64_t curve_eval_tokens = 4096;  // held-out slice for the curve (0: none): the start of valid_file,
                                     // else the tokens of train_file after its first train_tokens

  // Optimizer steps between resume checkpoints (<run>/<student>_last/, removed once the student is saved), so
  // that a killed run continues where it was with --resume; 0: none (a killed run starts that student over).
  int64_t checkpoint_every = 100;
  bool baseline = true;
  int64_t eval_batch_size = 4;
  int64_t speed_prompt_tokens = 128, speed_new_tokens = 64, speed_warmup = 1, speed_repeats = 5;

  std::vector<DeclaredTarget> targets;  // report.targets (lm_report.h lists the keys)

  bool resume = false;
  bool progress = true;

  // Reads every key (ConfigError naming the key for a bad value: unknown mode or divergence,
  // chunk ≤ 0, λ outside [0, 1], ...). Defaults are recorded in the resolved config.
  static LmDistillOptions from(ConfigNode root);
  void validate() const;
};

struct LmDistillSummary {
  double student_perplexity = 0, baseline_perplexity = 0, teacher_perplexity = 0;
  double generate_speedup = 0;
  double wall_seconds = 0;
  std::vector<std::string> verdicts;  // "key: verdict" per declared target, as in the report
  std::vector<std::string> warnings;  // the report's warnings
};

// Reads up to `max_tokens` token ids of a text file (0: all of it).
using LmTokenizeFile = std::function<std::vector<int64_t>(const std::string& path, int64_t max_tokens)>;

struct LmHeldOut {
  LmHeldOutSlice slice;         // source empty: no held-out perplexity on the curves
  std::vector<int64_t> tokens;  // the slice's ids
};

// The curves' held-out slice: the first curve_eval_tokens of data.valid when named; else the
// curve_eval_tokens of `train_read` (what was read of data.train: train_tokens + curve_eval_tokens at
// most) after its first train_tokens. ConfigError naming data.valid when the chosen source has fewer
// tokens than asked — there is no fall-back to the evaluation file.
LmHeldOut choose_lm_held_out(const LmDistillOptions& o, const std::vector<int64_t>& train_read,
                             const LmTokenizeFile& tokenize);

// Warnings for the report: "selection on the reported set: ..." when data.valid, or the held-out part of
// data.train the curves use, is the data.eval file; "trained on the reported set: ..." when data.train is.
std::vector<std::string> lm_selection_warnings(const LmDistillOptions& o, const LmHeldOutSlice& slice);

// What kd distill-lm writes directly in its run folder, as file-name patterns: what --overwrite may remove.
const std::vector<std::string>& lm_distill_outputs();

LmDistillSummary run_lm_distill(const LmDistillOptions& options);

}  // namespace kd
