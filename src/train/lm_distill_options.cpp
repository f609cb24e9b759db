// Reading and checking the kd distill-lm config.
#include <cmath>

#include "kd/error.h"
#include "kd/train/lm_distill.h"
#include "kd/train/trainer_config.h"

namespace kd {

LmDistillOptions LmDistillOptions::from(ConfigNode root) {
  LmDistillOptions o;
  o.run_dir = root.get_nonempty("run_dir", o.run_dir);
  o.teacher = root.require<std::string>("teacher");
  o.teacher_layers = root.get<int64_t>("teacher_layers", 0);

  auto data = root.child("data");
  o.train_file = data.require<std::string>("train");
  o.eval_file = data.require<std::string>("eval");
  o.valid_file = data.get<std::string>("valid", o.valid_file);
  o.train_tokens = data.get<int64_t>("train_tokens", o.train_tokens);
  o.eval_tokens = data.get<int64_t>("eval_tokens", o.eval_tokens);
  o.seq_len = data.get<int64_t>("seq_len", o.seq_len);

  auto s = root.child("student");
  o.student.num_layers = s.get<int64_t>("num_layers", o.student.num_layers);
  o.student.init = s.get<std::string>("init", o.student.init);
  for (const auto& l : s.get_list("teacher_layers", {})) {
    try {
      o.student.teacher_layers.push_back(std::stoll(l));
    } catch (const std::exception&) {
      throw ConfigError(located(s.where("teacher_layers"), "'" + l + "' is not a layer number"));
    }
  }
  o.student.seed = s.get<uint64_t>("seed", o.student.seed);

  auto d = root.child("distill");
  o.mode = d.get<std::string>("mode", o.mode);
  o.divergence.kind = parse_divergence(d.get<std::string>("divergence", "fkl"), d.where("divergence"));
  o.divergence.temperature = d.get<double>("temperature", 1.0);
  o.divergence.mix = d.get<double>("mix", 0.5);
  o.alpha = d.get<double>("alpha", o.alpha);
  o.chunk = d.get<int64_t>("chunk", o.chunk);
  o.teacher_source = d.get<std::string>("teacher_source", o.teacher_source);
  o.top_k = d.get<int64_t>("top_k", o.top_k);
  o.gkd_lambda = d.get<double>("gkd_lambda", o.gkd_lambda);
  auto g = d.child("generate");
  o.prompt_tokens = g.get<int64_t>("prompt_tokens", o.prompt_tokens);
  o.new_tokens = g.get<int64_t>("new_tokens", o.new_tokens);
  o.gen_temperature = g.get<double>("temperature", o.gen_temperature);
  o.gen_top_k = g.get<int64_t>("top_k", o.gen_top_k);
  o.gen_top_p = g.get<double>("top_p", o.gen_top_p);

  auto t = root.child("train");
  o.epochs = t.get<int64_t>("epochs", o.epochs);
  o.batch_size = t.get<int64_t>("batch_size", o.batch_size);
  o.optim = optimizer_options_from(t, o.optim);
  o.seed = t.get<uint64_t>("seed", o.seed);
  o.freeze_embeddings = t.get<bool>("freeze_embeddings", o.freeze_embeddings);
  o.curve_points = t.get<int64_t>("curve_points", o.curve_points);
  o.curve_eval_tokens = t.get<int64_t>("curve_eval_tokens", o.curve_eval_tokens);
  o.checkpoint_every = t.get<int64_t>("checkpoint_every", o.checkpoint_every);
  o.baseline = root.get<bool>("baseline", o.baseline);

  auto e = root.child("eval");
  o.eval_batch_size = e.get<int64_t>("batch_size", o.eval_batch_size);
  o.speed_prompt_tokens = e.get<int64_t>("speed_prompt_tokens", o.speed_prompt_tokens);
  o.speed_new_tokens = e.get<int64_t>("speed_new_tokens", o.speed_new_tokens);
  o.speed_warmup = e.get<int64_t>("speed_warmup", o.speed_warmup);
  o.speed_repeats = e.get<int64_t>("speed_repeats", o.speed_repeats);

  // report.targets: what the run must reach; the report judges each against the measured figure.
  o.targets = read_lm_targets(root.child("report").child("targets"));
  o.validate();
  return o;
}

void LmDistillOptions::validate() const {
  auto positive = [](int64_t v, const char* key) {
    if (v <= 0) throw ConfigError(located(key, "must be positive, got " + std::to_string(v)));
  };
  if (mode != "token" && mode != "sequence" && mode != "gkd")
    throw ConfigError(located("distill.mode", "unknown mode '" + mode + "'", "known modes: token, sequence, gkd"));
  if (teacher_source != "cache" && teacher_source != "inline")
    throw ConfigError(located("distill.teacher_source", "unknown teacher source '" + teacher_source + "'",
                              "known: cache, inline"));
  if (chunk <= 0)
    throw ConfigError(located("distill.chunk", "must be a positive number of tokens, got " + std::to_string(chunk)));
  divergence.validate();
  if (!(alpha >= 0 && alpha <= 1)) throw ConfigError(located("distill.alpha", "must be in [0, 1]"));
  if (!(gkd_lambda >= 0 && gkd_lambda <= 1))
    throw ConfigError(located("distill.gkd_lambda", "λ must be in [0, 1], got " + std::to_string(gkd_lambda)));
  if (teacher_source == "cache") positive(top_k, "distill.top_k");
  if (seq_len < 2) throw ConfigError(located("data.seq_len", "must be at least 2"));
  positive(batch_size, "train.batch_size");
  positive(epochs, "train.epochs");
  if (checkpoint_every < 0)
    throw ConfigError(located("train.checkpoint_every", "must be >= 0 (0 = no resume checkpoints), got " +
                                                             std::to_string(checkpoint_every)));
  positive(eval_batch_size, "eval.batch_size");
  if (!(optim.lr > 0)) throw ConfigError(located("train.lr", "must be > 0"));
  if (train_tokens < 0 || eval_tokens < 0) throw ConfigError(located("data.train_tokens", "must not be negative"));
  if (curve_eval_tokens < 0) throw ConfigError(located("train.curve_eval_tokens", "must not be negative"));
  // The curves' held-out slice is never taken from the evaluation file: with all of data.train used for
  // training, it has to come from data.valid.
  if (curve_points > 0 && curve_eval_tokens > 0 && valid_file.empty() && train_tokens == 0)
    throw ConfigError(located("data.valid", "the training curves need held-out text and data.train has no unused part "
                                            "(data.train_tokens: 0 uses all of it)",
                              "name a held-out file as data.valid (not data.eval), set data.train_tokens to leave "
                              "train.curve_eval_tokens after it, or set train.curve_points: 0"));
  if (mode != "token") {
    positive(prompt_tokens, "distill.generate.prompt_tokens");
    positive(new_tokens, "distill.generate.new_tokens");
    if (prompt_tokens >= seq_len)
      throw ConfigError(located("distill.generate.prompt_tokens", "must be shorter than data.seq_len"));
    if (gen_temperature < 0 || !(gen_top_p > 0 && gen_top_p <= 1) || gen_top_k < 0)
      throw ConfigError(located("distill.generate", "temperature ≥ 0, top_p in (0, 1], top_k ≥ 0"));
  }
}

}  // namespace kd
