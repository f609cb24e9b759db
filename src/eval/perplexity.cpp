#include "kd/eval/perplexity.h"

#include <chrono>
#include <cmath>

#include "kd/data/token_stream.h"
#include "kd/error.h"
#include "kd/losses/chunked_lm_loss.h"
#include "kd/util/log.h"
#include "kd/util/progress_bar.h"

namespace kd {

nlohmann::json PerplexityResult::to_json() const {
  return {{"perplexity", perplexity},       {"mean_nll", mean_nll},
          {"scored_tokens", scored_tokens}, {"input_tokens", input_tokens},
          {"seconds", seconds},             {"tokens_per_second", tokens_per_second}};
}

PerplexityResult evaluate_perplexity(Llama& model, const std::vector<int64_t>& stream, const PerplexityOptions& o) {
  if (o.batch_size <= 0) throw ConfigError(located("eval.batch_size", "must be positive"));
  const auto windows = make_windows(stream, o.seq_len, /*keep_partial=*/true);
  const bool was_training = model->is_training();
  model->eval();
  torch::InferenceMode inference;
  const int64_t rows = windows.ids.size(0);
  ProgressBar bar(o.label, static_cast<int64_t>(stream.size()), "tok", o.progress);
  const auto start = std::chrono::steady_clock::now();
  double nll = 0;
  int64_t scored = 0, seen = 0;
  for (int64_t r = 0; r < rows; r += o.batch_size) {
    const auto ids = windows.ids.slice(0, r, std::min(rows, r + o.batch_size));   // (B, T)
    const auto mask = windows.mask.slice(0, r, std::min(rows, r + o.batch_size));  // (B, T)
    const auto h = model->forward_hidden(ids, mask);                               // (B, T, H)
    const int64_t H = h.size(2);
    // Position t predicts token t + 1 of the same window.
    auto labels = ids.slice(1, 1).masked_fill(mask.slice(1, 1) == 0, -1);  // (B, T - 1)
    const auto s = chunked_nll_sum(h.slice(1, 0, -1).reshape({-1, H}), model->head_weight(), labels.reshape(-1),
                                   o.chunk);
    nll += s.nll;
    scored += s.tokens;
    seen += mask.sum().item<int64_t>();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    bar.update(mask.sum().item<int64_t>(), strf("ppl %.2f, %.0f tok/s", std::exp(nll / std::max<int64_t>(scored, 1)),
                                                static_cast<double>(seen) / std::max(secs, 1e-9)));
  }
  bar.finish();
  model->train(was_training);
  PerplexityResult res;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  res.scored_tokens = scored;
  res.input_tokens = static_cast<int64_t>(stream.size());
  res.mean_nll = nll / std::max<int64_t>(scored, 1);
  res.perplexity = std::exp(res.mean_nll);
  res.tokens_per_second = res.input_tokens / res.seconds;
  return res;
}

}  // namespace kd
