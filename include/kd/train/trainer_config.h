// The `train:` section of an experiment config.
#pragma once

#include "kd/io/config.h"
#include "kd/train/trainer.h"

namespace kd {

// Reads and validates every training setting (ConfigError naming the key for out-of-range values).
// run_dir comes from the caller (the config's top-level `run_dir`); a key that is absent keeps its value
// in `defaults` (a stage's `train:` overrides the experiment's).
TrainerOptions trainer_options_from(ConfigNode section, const std::string& run_dir, const TrainerOptions& defaults = {});

// The optimizer's keys of a `train:` section (lr, weight_decay, warmup, clip_norm, beta1, beta2, eps),
// each range-checked; a key that is absent keeps its value in `defaults`. Shared by kd distill-lm.
OptimizerOptions optimizer_options_from(ConfigNode& section, const OptimizerOptions& defaults);

}  // namespace kd
