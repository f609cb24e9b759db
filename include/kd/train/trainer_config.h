// The `train:` section of an experiment config.
#pragma once

#include "kd/io/config.h"
#include "kd/train/trainer.h"

namespace kd {

// Reads and validates every training setting (ConfigError naming the key for out-of-range values).
// run_dir comes from the caller (the config's top-level `run_dir`).
TrainerOptions trainer_options_from(ConfigNode section, const std::string& run_dir);

}  // namespace kd
