#include "kd/train/lm_trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <random>

#include "kd/error.h"
#include "kd/eval/perplexity.h"
#include "kd/train/optimizer.h"
#include "kd/util/log.h"
#include "kd/util/progress_bar.h"

namespace kd {

namespace {

using torch::indexing::Slice;

// Rows (B · (T − 1), H) of the next-token positions.
torch::Tensor next_token_rows(const torch::Tensor& h) { return h.slice(1, 0, -1).reshape({-1, h.size(2)}); }

// Continues each row's prompt (B, P) by `n` tokens with `model` (batch 1 with the KV cache per row);
// returns (B, P + n) and the mask of real tokens (a row that hit EOS early is padded).
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

}  // namespace

LmTrainResult train_lm_student(Llama& student, const LmTrainSetup& s) {
  const LmDistillOptions& o = *s.options;
  Llama teacher = s.teacher;  // shares the module (the setup is const)
  const int64_t N = s.windows.size(0), T = s.windows.size(1), B = o.batch_size;
  const int64_t per_epoch = (N + B - 1) / B;
  const int64_t total = per_epoch * o.epochs;
  if (o.freeze_embeddings) student->embed_tokens->weight.requires_grad_(false);
  auto opt = make_adamw(*student, o.optim);
  const LinearSchedule schedule(o.optim.lr, static_cast<int64_t>(std::llround(o.optim.warmup_ratio * total)),
                                total);
  std::vector<torch::Tensor> params;
  for (const auto& p : student->parameters())
    if (p.requires_grad()) params.push_back(p);

  torch::Generator order_gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  std::mt19937_64 coin(o.seed ^ 0x9e3779b97f4a7c15ull);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const int64_t eos = -1;
  const std::string kind = s.baseline ? "baseline" : "student";
  const int64_t curve_every = std::max<int64_t>(1, total / std::max<int64_t>(o.curve_points, 1));

  LmTrainResult r;
  ProgressBar bar("train " + kind, total, "step", o.progress);
  const auto start = std::chrono::steady_clock::now();
  double loss_sum = 0;
  int64_t loss_n = 0, step = 0;
  student->train();
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    const auto order = torch::randperm(N, order_gen, torch::kInt64);
    for (int64_t b0 = 0; b0 < N; b0 += B, ++step) {
      const auto idx = order.slice(0, b0, std::min(N, b0 + B));
      const auto ids = s.windows.index_select(0, idx);  // (B, T)
      const auto labels = ids.slice(1, 1).reshape(-1);  // (B (T − 1))
      schedule.apply(*opt, step);
      opt->zero_grad();
      torch::Tensor loss;
      if (s.baseline) {
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
        const bool on_policy = o.mode == "gkd" && uniform(coin) < o.gkd_lambda;
        torch::Tensor seq, mask;
        int64_t first = 0;  // first scored position (predicting token first + 1)
        if (o.mode == "sequence" || on_policy) {
          Llama& gen_model = o.mode == "sequence" ? teacher : student;
          std::tie(seq, mask) = continue_prompts(gen_model, prompts, o, o.seed * 1000003ull + step * 64ull, eos);
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
      const double lv = loss.item<double>();
      if (!std::isfinite(lv)) throw TrainError(strf("train %s: loss is %f at step %lld", kind.c_str(), lv,
                                                    static_cast<long long>(step)));
      loss.backward();
      if (o.optim.clip_norm > 0) torch::nn::utils::clip_grad_norm_(params, o.optim.clip_norm);
      opt->step();
      loss_sum += lv;
      ++loss_n;
      r.tokens += ids.numel();
      bar.update(1, strf("loss %.3f", lv));
      if ((step + 1) % curve_every == 0 || step + 1 == total) {
        LmCurvePoint p;
        p.step = step + 1;
        p.tokens = r.tokens;
        p.train_loss = loss_sum / static_cast<double>(loss_n);
        loss_sum = 0;
        loss_n = 0;
        if (!s.curve_stream.empty()) {
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
    }
  }
  bar.finish();
  r.steps = step;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.freeze_embeddings) student->embed_tokens->weight.requires_grad_(true);
  return r;
}

}  // namespace kd
