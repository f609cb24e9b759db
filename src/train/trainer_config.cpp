#include "kd/train/trainer_config.h"

namespace kd {

namespace {
template <typename T>
T checked(ConfigNode& s, const std::string& key, T fallback, T lo, T hi, const char* range) {
  const T v = s.get<T>(key, fallback);
  if (!(v >= lo && v <= hi)) throw ConfigError(located(s.where(key), "out of range", std::string("must be ") + range));
  return v;
}
}  // namespace

TrainerOptions trainer_options_from(ConfigNode s, const std::string& run_dir, const TrainerOptions& d) {
  TrainerOptions o = d;
  o.run_dir = run_dir;
  o.epochs = checked<int64_t>(s, "epochs", d.epochs, 1, 1000, "1..1000");
  o.batch_size = checked<int64_t>(s, "batch_size", d.batch_size, 1, 65536, "1..65536");
  o.eval_batch_size = checked<int64_t>(s, "eval_batch_size", d.eval_batch_size, 1, 65536, "1..65536");
  o.grad_accum = checked<int64_t>(s, "grad_accum", d.grad_accum, 1, 1024, "1..1024");
  o.eval_every = checked<int64_t>(s, "eval_every", d.eval_every, 0, INT64_MAX, ">= 0 (0 = each epoch)");
  o.checkpoint_every = checked<int64_t>(s, "checkpoint_every", d.checkpoint_every, 0, INT64_MAX, ">= 0 (0 = each epoch)");
  o.seed = static_cast<uint64_t>(checked<int64_t>(s, "seed", static_cast<int64_t>(d.seed), 0, INT64_MAX, ">= 0"));
  o.max_nonfinite_steps = checked<int64_t>(s, "max_nonfinite_steps", d.max_nonfinite_steps, 0, INT64_MAX,
                                           ">= 0 (0 = stop at the first NaN or Inf loss)");
  o.optim = optimizer_options_from(s, d.optim);
  return o;
}

OptimizerOptions optimizer_options_from(ConfigNode& s, const OptimizerOptions& d) {
  OptimizerOptions o;
  o.lr = checked<double>(s, "lr", d.lr, 1e-12, 10.0, "in (0, 10]");
  o.weight_decay = checked<double>(s, "weight_decay", d.weight_decay, 0.0, 1.0, "in [0, 1]");
  o.warmup_ratio = checked<double>(s, "warmup", d.warmup_ratio, 0.0, 0.99, "a fraction of the steps in [0, 1)");
  o.clip_norm = checked<double>(s, "clip_norm", d.clip_norm, 0.0, 1e9, ">= 0 (0 = no clipping)");
  o.beta1 = checked<double>(s, "beta1", d.beta1, 0.0, 0.999999, "in [0, 1)");
  o.beta2 = checked<double>(s, "beta2", d.beta2, 0.0, 0.999999, "in [0, 1)");
  o.eps = checked<double>(s, "eps", d.eps, 0.0, 1.0, "in [0, 1]");
  return o;
}

}  // namespace kd
