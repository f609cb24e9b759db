#include "kd/models/text_cnn.h"

#include <algorithm>
#include <limits>

#include "kd/error.h"
#include "kd/models/options_json.h"

namespace kd {

int64_t TextCnnOptions::max_kernel() const {
  return kernel_sizes.empty() ? 1 : *std::max_element(kernel_sizes.begin(), kernel_sizes.end());
}

nlohmann::json TextCnnOptions::to_json() const { return options_to_json(*this); }

TextCnnOptions TextCnnOptions::from_json(const nlohmann::json& j, const std::string& where) {
  const auto o = options_from_json<TextCnnOptions>(j, where, "textcnn");
  bool ok = o.vocab_size >= 1 && o.embedding_dim >= 1 && o.filters >= 1 && o.num_classes >= 1 &&
            o.projection >= 0 && !o.kernel_sizes.empty();
  for (auto k : o.kernel_sizes) ok = ok && k >= 1;
  if (!ok) throw FormatError(located(where, "textcnn options out of range: " + o.to_json().dump()));
  return o;
}

TextCnnImpl::TextCnnImpl(const TextCnnOptions& o) : options_(o) {
  embedding = register_module(
      "embedding", torch::nn::Embedding(torch::nn::EmbeddingOptions(o.vocab_size, o.table_dim()).padding_idx(o.padding_idx)));
  if (o.projection > 0)
    projection = register_module("projection",
                                 DynamicLinear(torch::nn::LinearOptions(o.projection, o.embedding_dim).bias(false)));
  convs = register_module("convs", torch::nn::ModuleList());
  for (auto k : o.kernel_sizes) {
    torch::nn::Conv1d conv(torch::nn::Conv1dOptions(o.embedding_dim, o.filters, k));
    convs->push_back(conv);
    conv_list_.push_back(conv);
  }
  dropout = register_module("dropout", torch::nn::Dropout(o.dropout));
  classifier = register_module(
      "classifier", DynamicLinear(static_cast<int64_t>(o.kernel_sizes.size()) * o.filters, o.num_classes));
}

torch::Tensor TextCnnImpl::embed(const torch::Tensor& input_ids) {
  auto x = embedding(input_ids);      // (B, T, table_dim)
  if (projection) x = projection(x);  // (B, T, E)
  return x;
}

torch::Tensor TextCnnImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                   torch::Tensor* pooled_out) {
  const int64_t T = input_ids.size(1);
  auto x = embed(input_ids);  // (B, T, E)
  torch::Tensor lengths;      // (B) int64
  if (attention_mask.defined()) {
    const auto mask = attention_mask.to(x.device(), x.scalar_type());  // (B, T)
    x = x * mask.unsqueeze(2);                                         // padding reads as zeros
    lengths = attention_mask.to(x.device(), torch::kInt64).sum(1);
  } else {
    lengths = torch::full({input_ids.size(0)}, T, torch::TensorOptions().dtype(torch::kInt64).device(x.device()));
  }
  const int64_t width = std::max(T, options_.max_kernel());
  x = x.transpose(1, 2);  // (B, E, T)
  if (width > T) x = torch::constant_pad_nd(x, {0, width - T});  // (B, E, width), zeros on the right
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < conv_list_.size(); ++i) {
    const int64_t k = options_.kernel_sizes[i];
    auto h = torch::relu(conv(i, x));  // (B, F, width - k + 1)
    // Window t covers tokens t..t+k-1; it is valid when inside the row, and the first window always is.
    const auto windows = (lengths - k + 1).clamp_min(1);                                      // (B)
    const auto valid = torch::arange(h.size(2), lengths.options()).unsqueeze(0) < windows.unsqueeze(1);  // (B, W)
    h = h.masked_fill(valid.logical_not().unsqueeze(1), -std::numeric_limits<float>::infinity());
    parts.push_back(h.amax(2));  // (B, F)
  }
  auto pooled = torch::cat(parts, 1);  // (B, K*F)
  if (pooled_out) *pooled_out = pooled;
  return classifier(dropout(pooled));  // (B, C)
}

torch::Tensor TextCnnImpl::conv(size_t i, const torch::Tensor& x) {
  if (int8_convs_.empty()) return conv_list_[i](x);
  require_inference(*this);
  const int64_t k = options_.kernel_sizes[i];
  // Window t of x is x[:, :, t:t+k]; flattened (E, k) in the order of the kernel's (F, E, k) layout.
  const auto windows = x.unfold(2, k, 1).permute({0, 2, 1, 3}).reshape({x.size(0), x.size(2) - k + 1, -1});  // (B, L, E*k)
  return int8::linear(windows, int8_convs_[i]).transpose(1, 2);  // (B, F, L)
}

void TextCnnImpl::quantize_int8() {
  int8_convs_.clear();
  for (auto& c : conv_list_) int8_convs_.push_back(int8::pack_linear(c->weight.reshape({c->weight.size(0), -1}), c->bias));
}

double text_cnn_flops(const TextCnnOptions& o, double tokens) {
  const double E = static_cast<double>(o.embedding_dim), F = static_cast<double>(o.filters);
  const double width = std::max(tokens, static_cast<double>(o.max_kernel()));
  double macs = 0;
  if (o.projection > 0) macs += tokens * static_cast<double>(o.projection) * E;
  for (auto k : o.kernel_sizes) macs += (width - static_cast<double>(k) + 1) * F * static_cast<double>(k) * E;
  macs += static_cast<double>(o.kernel_sizes.size()) * F * static_cast<double>(o.num_classes);
  return 2 * macs;
}

double TextCnnImpl::flops_per_example(double tokens) const { return text_cnn_flops(options_, tokens); }

}  // namespace kd
