#include "kd/train/lm_trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <sstream>

#include "kd/error.h"
#include "kd/eval/perplexity.h"
#include "kd/io/atomic_file.h"
#include "kd/train/data_parallel.h"
#include "kd/train/optimizer.h"
#include "kd/train/train_step.h"
#include "kd/train/trainer.h"
#include "kd/util/fault.h"
#include "kd/util/log.h"
#include "kd/util/progress_bar.h"

namespace kd {

namespace {

using torch::indexing::Slice;

// Rows (B · (T − 1), H) of the next-token positions.
torch::Tensor next_token_rows(const torch::Tensor& h) { return h.slice(1, 0, -1).reshape({-1, h.size(2)}); }

// Continues each row's prompt (B, P) by `n` tokens with `model` (batch 1 with the KV cache per row);
// returns (B, P + n) and the mask of real tokens (a row that hit EOS early is padded).
// Row b is sampled with seed + b: `seed` already counts the rows of the global batch before this rank's.
std::pair<torch::Tensor, torch::Tensor> continue_prompts(Llama& model, const torch::Tensor& prompts,
                                                         const LmDistillOptions& o, uint64_t seed, int64_t eos) {
  const int64_t B = prompts.size(0), P = prompts.size(1);
  auto out = torch::zeros({B, P + o.new_tokens}, torch::kInt64);
  auto mask = torch::zeros({B, P + o.new_tokens}, torch::kInt64);
  const bool was_training = model->is_training();
  model->eval();
  for (int64_t b = 0; b < B; ++b) {
    GenerateOptions g;
    g.max_new_tokens = o.new_tokens;
    g.temperature = o.gen_temperature;
    g.top_k = o.gen_top_k;
    g.top_p = o.gen_top_p;
    g.seed = seed + static_cast<uint64_t>(b);
    g.eos_id = eos;
    std::vector<int64_t> prompt(prompts[b].data_ptr<int64_t>(), prompts[b].data_ptr<int64_t>() + P);
    auto cont = model->generate(prompt, g);
    prompt.insert(prompt.end(), cont.begin(), cont.end());
    const auto n = static_cast<int64_t>(prompt.size());
    out[b].slice(0, 0, n).copy_(torch::tensor(prompt));
    mask[b].slice(0, 0, n).fill_(1);
  }
  model->train(was_training);
  return {out, mask};
}

// Where a student's training stands: written with each resume checkpoint beside the weights and optimizer.
struct LmLoopState {
  int64_t epoch = 0, step = 0;   // the epoch in progress; optimizer steps done
  torch::Tensor epoch_order_rng;  // the order generator's state when the epoch drew its permutation
  std::string coin;               // the gkd coin (std::mt19937_64, streamed)
  double loss_sum = 0;
  int64_t loss_n = 0;
  LmTrainResult result;           // curve and tokens so far; seconds of training so far
};

void save_lm_checkpoint(const std::string& dir, Llama& student, const torch::optim::Optimizer& opt,
                        const LmLoopState& st) {
  StagedDir staged{std::filesystem::path(dir)};
  save_module_state(*student, staged.file("model.safetensors"));
  fault_point("checkpoint");
  save_optimizer_file(opt, staged.file("optimizer.pt"));
  save_tensor_file(st.epoch_order_rng, staged.file("order_rng.pt"));
  LmReportModel curve;  // its JSON form of the curve
  curve.curve = st.result.curve;
  write_json_atomic(staged.file("state.json"),
                    {{"epoch", st.epoch}, {"step", st.step}, {"coin", st.coin}, {"loss_sum", st.loss_sum},
                     {"loss_n", st.loss_n}, {"tokens", st.result.tokens}, {"seconds", st.result.seconds},
                     {"curve", curve.to_json()}});
  staged.commit();
}

LmLoopState load_lm_checkpoint(const std::string& dir, Llama& student, torch::optim::Optimizer& opt) {
  const std::filesystem::path d(dir);
  const auto j = read_json((d / "state.json").string());
  LmLoopState st;
  st.epoch = j.at("epoch").get<int64_t>();
  st.step = j.at("step").get<int64_t>();
  st.coin = j.at("coin").get<std::string>();
  st.loss_sum = j.at("loss_sum").get<double>();
  st.loss_n = j.at("loss_n").get<int64_t>();
  st.result.tokens = j.at("tokens").get<int64_t>();
  st.result.seconds = j.at("seconds").get<double>();
  st.result.curve = LmReportModel::from_json(j.at("curve")).curve;
  load_module_state(*student, (d / "model.safetensors").string());
  torch::load(opt, (d / "optimizer.pt").string());
  torch::load(st.epoch_order_rng, (d / "order_rng.pt").string());
  return st;
}

}  // namespace

LmTrainResult train_lm_student(Llama& student, const LmTrainSetup& s) {
  const LmDistillOptions& o = *s.options;
  Llama teacher = s.teacher;  // shares the module (the setup is const)
  const int64_t N = s.windows.size(0), T = s.windows.size(1), B = o.batch_size;
  const int64_t per_epoch = (N + B - 1) / B;
  const int64_t total = per_epoch * o.epochs;
  if (o.freeze_embeddings) student->embed_tokens->weight.requires_grad_(false);
  DataParallel* const dp = data_parallel();
  const bool main_rank = is_main_process();
  if (dp) dp->broadcast_parameters(*student);  // one starting point
  auto opt = make_adamw(*student, o.optim);
  const LinearSchedule schedule(o.optim.lr, static_cast<int64_t>(std::llround(o.optim.warmup_ratio * total)),
                                total);
  TrainStep step_core(*student);

  torch::Generator order_gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  std::mt19937_64 coin(o.seed ^ 0x9e3779b97f4a7c15ull);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const int64_t eos = -1;
  const std::string kind = s.baseline ? "baseline" : "student";
  const int64_t curve_every = std::max<int64_t>(1, total / std::max<int64_t>(o.curve_points, 1));

  LmLoopState st;
  const bool checkpoints = !s.checkpoint_dir.empty() && o.checkpoint_every > 0;
  if (checkpoints && o.resume && std::filesystem::exists(std::filesystem::path(s.checkpoint_dir) / "state.json")) {
    st = load_lm_checkpoint(s.checkpoint_dir, student, *opt);
    order_gen.set_state(st.epoch_order_rng);
    std::istringstream(st.coin) >> coin;
    log_info(strf("resuming the %s from %s at step %lld of %lld", kind.c_str(), s.checkpoint_dir.c_str(),
                  static_cast<long long>(st.step), static_cast<long long>(total)));
  }
  const int64_t resume_step = st.step;
  LmTrainResult& r = st.result;
  ProgressBar bar("train " + kind, total, "step", o.progress && main_rank);
  bar.set_position(st.step);
  const double seconds_before = r.seconds;
  const auto start = std::chrono::steady_clock::now();
  int64_t step = st.epoch * per_epoch;
  student->train();
  for (; st.epoch < o.epochs; ++st.epoch) {
    st.epoch_order_rng = order_gen.get_state();
    const auto order = torch::randperm(N, order_gen, torch::kInt64);
    for (int64_t b0 = 0; b0 < N; b0 += B, ++step) {
      if (step < resume_step) continue;  // done before the checkpoint this run resumed from
      // This rank's slice of the global batch of windows (all of it in one process).
      const auto global_idx = order.slice(0, b0, std::min(N, b0 + B));
      const RowSlice part = step_core.slice(global_idx.size(0));
      const auto idx = global_idx.slice(0, part.first, part.end);
      const auto ids = s.windows.index_select(0, idx);  // (b, T): this rank's windows
      const auto labels = ids.slice(1, 1).reshape(-1);  // (B (T − 1))
      schedule.apply(*opt, step);
      opt->zero_grad();
      // gkd's coin is tossed for the global batch, on every rank alike, even by a rank with no rows.
      const bool on_policy = o.mode == "gkd" && !s.baseline && uniform(coin) < o.gkd_lambda;
      torch::Tensor loss;  // this rank's mean; undefined when its slice is empty
      if (part.empty()) {
      } else if (s.baseline) {
        loss = chunked_cross_entropy(next_token_rows(student->forward_hidden(ids)), student->head_weight(), labels,
                                     o.chunk);
      } else if (o.mode == "token") {
        const auto h = next_token_rows(student->forward_hidden(ids));  // (B (T − 1), H)
        TokenTargets targets;
        if (s.cached) {
          targets = s.cached(idx);
        } else {
          torch::InferenceMode im;
          targets = TokenTargets::from_hidden(next_token_rows(teacher->forward_hidden(ids)), teacher->head_weight());
        }
        const auto ones = torch::ones({h.size(0)}, h.options());
        loss = chunked_token_divergence(h, student->head_weight(), targets, ones, o.divergence, o.chunk) * o.alpha;
        if (o.alpha < 1) loss = loss + (1 - o.alpha) * chunked_cross_entropy(h, student->head_weight(), labels, o.chunk);
      } else {
        // sequence: the teacher's continuations, cross-entropy; gkd: the student's (with probability λ)
        // or the data window, scored by the teacher with the divergence.
        const auto prompts = ids.slice(1, 0, o.prompt_tokens);
        torch::Tensor seq, mask;
        int64_t first = 0;  // first scored position (predicting token first + 1)
        if (o.mode == "sequence" || on_policy) {
          Llama& gen_model = o.mode == "sequence" ? teacher : student;
          std::tie(seq, mask) = continue_prompts(gen_model, prompts, o,
                                                 o.seed * 1000003ull + step * 64ull + static_cast<uint64_t>(part.first), eos);
          first = o.prompt_tokens - 1;
        } else {
          seq = ids;
          mask = torch::ones_like(ids);
        }
        auto weight = mask.slice(1, 1).clone();  // (B, L − 1): position t predicts token t + 1
        weight.slice(1, 0, first).zero_();
        const auto h = next_token_rows(student->forward_hidden(seq, mask));
        if (o.mode == "sequence") {
          const auto y = seq.slice(1, 1).masked_fill(weight == 0, -1).reshape(-1);
          loss = chunked_cross_entropy(h, student->head_weight(), y, o.chunk);
        } else {
          TokenTargets targets;
          {
            torch::InferenceMode im;
            targets = TokenTargets::from_hidden(next_token_rows(teacher->forward_hidden(seq, mask)),
                                                teacher->head_weight());
          }
          loss = chunked_token_divergence(h, student->head_weight(), targets,
                                          weight.reshape(-1).to(h.scalar_type()), o.divergence, o.chunk);
        }
      }
      // The global batch's loss, the same on every rank (train_step.h); backpropagated when finite.
      const double lv = step_core.backward(loss, part);
      if (!std::isfinite(lv)) throw TrainError(strf("train %s: loss is %f at step %lld", kind.c_str(), lv,
                                                    static_cast<long long>(step)));
      step_core.reduce_and_clip(o.optim.clip_norm);
      opt->step();
      fault_point("step");
      st.loss_sum += lv;
      ++st.loss_n;
      r.tokens += global_idx.size(0) * T;
      bar.update(1, strf("loss %.3f", lv));
      if ((step + 1) % curve_every == 0 || step + 1 == total) {
        LmCurvePoint p;
        p.step = step + 1;
        p.tokens = r.tokens;
        p.train_loss = st.loss_sum / static_cast<double>(st.loss_n);
        st.loss_sum = 0;
        st.loss_n = 0;
        if (!s.curve_stream.empty() && main_rank) {  // rank 0 measures the curve; it is rank 0's to report
          PerplexityOptions po;
          po.seq_len = T;
          po.batch_size = o.eval_batch_size;
          po.chunk = o.chunk;
          po.progress = false;
          p.eval_perplexity = evaluate_perplexity(student, s.curve_stream, po).perplexity;
          student->train();
        }
        r.curve.push_back(p);
      }
      if (checkpoints && (step + 1) % o.checkpoint_every == 0 && step + 1 < total) {
        st.step = step + 1;
        std::ostringstream c;
        c << coin;
        st.coin = c.str();
        r.seconds = seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (main_rank) save_lm_checkpoint(s.checkpoint_dir, student, *opt, st);
      }
    }
  }
  bar.finish();
  r.steps = step;
  r.seconds = seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.freeze_embeddings) student->embed_tokens->weight.requires_grad_(true);
  return r;
}

}  // namespace kd
