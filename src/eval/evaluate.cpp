#include "kd/eval/evaluate.h"

#include "kd/data/bucket_batcher.h"
#include "kd/util/device.h"
#include "kd/util/precision.h"
#include "kd/util/progress_bar.h"

namespace kd {

Evaluation evaluate(TextClassifier& model, const TextDataset& data, int64_t batch_size, bool keep_logits,
                    bool progress) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.module().is_training();
  model.module().eval();
  Evaluation result{ConfusionMatrix(model.labels().size()), 0.0, {}};
  // Sorted by length (then restored) so that little padding is computed; order is returned intact.
  BucketBatcherOptions bo;
  bo.batch_size = batch_size;
  bo.shuffle = false;
  BucketBatcher batcher(data, bo, model.tokenizer().pad_id());
  // Batches follow the model's device; the kept logits come back to the CPU.
  const torch::Device device = module_device(model.module());
  std::vector<int64_t> order(data.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return data[static_cast<size_t>(a)].encoding.size() < data[static_cast<size_t>(b)].encoding.size();
  });
  std::vector<torch::Tensor> parts;
  double loss_sum = 0;
  int64_t labelled = 0;
  ProgressBar bar("eval", static_cast<int64_t>((order.size() + batch_size - 1) / batch_size), "batch", progress);
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    std::vector<int64_t> idx(order.begin() + static_cast<long>(start),
                             order.begin() + static_cast<long>(std::min(order.size(), start + batch_size)));
    Batch batch = batcher.collate(idx);
    if (!device.is_cpu()) batch = batch.to(device);
    torch::Tensor logits;  // (B, C)
    {
      AutocastScope autocast(device);
      logits = model.forward(batch).logits.to(torch::kFloat32);
    }
    auto mask = batch.labels >= 0;
    if (mask.any().item<bool>()) {
      auto l = logits.index({mask});
      auto y = batch.labels.index({mask});
      loss_sum += torch::nn::functional::cross_entropy(
                      l, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                      .item<double>();
      labelled += y.size(0);
      result.confusion.add(l.argmax(-1), y);
    }
    if (keep_logits) parts.push_back(logits.to(torch::kCPU));
    bar.update();
  }
  bar.finish();
  result.mean_loss = labelled ? loss_sum / static_cast<double>(labelled) : 0.0;
  if (keep_logits && !parts.empty()) {
    auto sorted = torch::cat(parts);  // (N, C) in length order
    auto inverse = torch::empty({static_cast<int64_t>(order.size())}, torch::kLong);
    auto inv = inverse.accessor<int64_t, 1>();
    for (size_t i = 0; i < order.size(); ++i) inv[order[i]] = static_cast<int64_t>(i);
    result.logits = sorted.index_select(0, inverse);
  }
  if (was_training) model.module().train();
  return result;
}

nlohmann::json Score::to_json() const {
  return {{"source", source}, {"accuracy", accuracy}, {"macro_f1", macro_f1}, {"rows", rows}};
}

Score Score::from_json(const nlohmann::json& j) {
  return {j.at("source").get<std::string>(), j.at("accuracy").get<double>(), j.at("macro_f1").get<double>(),
          j.at("rows").get<int64_t>()};
}

Score score(TextClassifier& model, const TextDataset& data, int64_t batch_size, bool progress) {
  const Evaluation ev = evaluate(model, data, batch_size, false, progress);
  return {data.source(), ev.confusion.accuracy(), ev.confusion.macro_f1(), static_cast<int64_t>(data.size())};
}

}  // namespace kd
