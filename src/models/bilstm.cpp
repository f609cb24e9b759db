#include "kd/models/bilstm.h"

#include <limits>

#include "kd/error.h"
#include "kd/models/options_json.h"

namespace kd {

namespace rnn = torch::nn::utils::rnn;

nlohmann::json BiLstmOptions::to_json() const { return options_to_json(*this); }

BiLstmOptions BiLstmOptions::from_json(const nlohmann::json& j, const std::string& where) {
  const auto o = options_from_json<BiLstmOptions>(j, where, "bilstm");
  if (o.vocab_size < 1 || o.embedding_dim < 1 || o.hidden < 1 || o.layers < 1 || o.num_classes < 1 ||
      o.projection < 0 || (o.pooling != "max" && o.pooling != "mean" && o.pooling != "last"))
    throw FormatError(located(where, "bilstm options out of range: " + o.to_json().dump()));
  return o;
}

BiLstmImpl::BiLstmImpl(const BiLstmOptions& o) : options_(o) {
  embedding = register_module(
      "embedding", torch::nn::Embedding(torch::nn::EmbeddingOptions(o.vocab_size, o.table_dim()).padding_idx(o.padding_idx)));
  if (o.projection > 0)
    projection = register_module("projection",
                                 DynamicLinear(torch::nn::LinearOptions(o.projection, o.embedding_dim).bias(false)));
  lstm = register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(o.embedding_dim, o.hidden)
                                                     .num_layers(o.layers)
                                                     .bidirectional(true)
                                                     .batch_first(true)
                                                     .dropout(o.layers > 1 ? o.dropout : 0.0)));
  dropout = register_module("dropout", torch::nn::Dropout(o.dropout));
  hidden = register_module("hidden", DynamicLinear(2 * o.hidden, o.hidden));
  classifier = register_module("classifier", DynamicLinear(o.hidden, o.num_classes));
}

torch::Tensor BiLstmImpl::embed(const torch::Tensor& input_ids) {
  auto x = embedding(input_ids);  // (B, T, table_dim)
  if (projection) x = projection(x);  // (B, T, E)
  return x;
}

torch::Tensor BiLstmImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                  torch::Tensor* pooled_out) {
  const int64_t T = input_ids.size(1);
  const auto mask = attention_mask.defined() ? attention_mask.to(torch::kBool)
                                             : torch::ones_like(input_ids, torch::kBool);  // (B, T)
  // Packing wants the lengths on the CPU; a row without tokens is read as one token long.
  const auto lengths = mask.sum(1).clamp_min(1).to(torch::kCPU, torch::kInt64);  // (B)
  const auto x = embed(input_ids);                                                // (B, T, E)
  torch::Tensor pooled;  // (B, 2H)
  const std::string& pooling = options_.pooling;
  const int64_t L = options_.layers;
  if (lengths.min().item<int64_t>() == T) {
    // No padding (always so at batch 1): the plain LSTM gives exactly what the packed one gives, about
    // 3x faster on a CPU at batch 1, where packing's bookkeeping costs more than the recurrence.
    auto [out, h_n] = run_lstm(x);  // out (B, T, 2H)
    if (pooling == "last") {
      pooled = torch::cat({h_n[2 * L - 2], h_n[2 * L - 1]}, 1);
    } else {
      pooled = pooling == "max" ? out.amax(1) : out.mean(1);
    }
  } else {
    const auto packed = rnn::pack_padded_sequence(x, lengths, /*batch_first=*/true, /*enforce_sorted=*/false);
    auto [packed_out, h_n] = run_lstm_packed(packed);
    if (pooling == "last") {
      // h_n (layers * 2, B, H), already back in batch order: the top layer's forward state ends at the
      // row's last token, its backward state at its first.
      pooled = torch::cat({h_n[2 * L - 2], h_n[2 * L - 1]}, 1);
    } else {
      auto out = std::get<0>(rnn::pad_packed_sequence(packed_out, /*batch_first=*/true, 0.0, T));  // (B, T, 2H)
      const auto valid = (torch::arange(T, lengths.options()).unsqueeze(0) < lengths.unsqueeze(1))
                             .to(out.device())
                             .unsqueeze(2);  // (B, T, 1)
      if (pooling == "max") {
        pooled = out.masked_fill(valid.logical_not(), -std::numeric_limits<float>::infinity()).amax(1);
      } else {  // "mean"
        pooled = (out * valid.to(out.dtype())).sum(1) / lengths.to(out.device(), out.scalar_type()).unsqueeze(1);
      }
    }
  }
  if (pooled_out) *pooled_out = pooled;
  auto h = torch::relu(hidden(dropout(pooled)));  // (B, H)
  return classifier(dropout(h));                  // (B, C)
}

std::pair<torch::Tensor, torch::Tensor> BiLstmImpl::run_lstm(const torch::Tensor& x) {
  if (int8_cells_.empty()) {
    auto [out, state] = lstm->forward(x);
    return {out, std::get<0>(state)};
  }
  require_inference(*this);
  auto r = int8::lstm(x, int8_cells_, options_.layers, /*bidirectional=*/true, options_.hidden);
  return {r.output, r.h};
}

std::pair<rnn::PackedSequence, torch::Tensor> BiLstmImpl::run_lstm_packed(const rnn::PackedSequence& x) {
  if (int8_cells_.empty()) {
    auto [out, state] = lstm->forward_with_packed_input(x);
    return {out, std::get<0>(state)};
  }
  require_inference(*this);
  auto r = int8::lstm_packed(x.data(), x.batch_sizes(), int8_cells_, options_.layers, /*bidirectional=*/true,
                             options_.hidden);
  // The kernel's final states follow the packed (length-sorted) order; nn::LSTM puts them back.
  auto h = x.unsorted_indices().defined() ? r.h.index_select(1, x.unsorted_indices()) : r.h;
  return {rnn::PackedSequence(r.output, x.batch_sizes(), x.sorted_indices(), x.unsorted_indices()), h};
}

void BiLstmImpl::quantize_int8() {
  int8_cells_.clear();
  const auto params = lstm->named_parameters(/*recurse=*/false);
  for (int64_t l = 0; l < options_.layers; ++l) {
    for (const char* dir : {"", "_reverse"}) {
      const auto sfx = "_l" + std::to_string(l) + dir;
      int8_cells_.push_back(int8::lstm_cell(params["weight_ih" + sfx], params["weight_hh" + sfx],
                                            params["bias_ih" + sfx], params["bias_hh" + sfx]));
    }
  }
}

double bilstm_flops(const BiLstmOptions& o, double tokens) {
  const double T = tokens, E = static_cast<double>(o.embedding_dim), H = static_cast<double>(o.hidden);
  double macs = 0;
  if (o.projection > 0) macs += T * static_cast<double>(o.projection) * E;
  for (int64_t l = 0; l < o.layers; ++l) {
    const double in = l == 0 ? E : 2 * H;
    macs += 2 /*directions*/ * T * 4 * H * (in + H);  // i, f, g, o gates from x_t and h_{t-1}
  }
  macs += 2 * H * H + H * static_cast<double>(o.num_classes);  // head
  return 2 * macs;
}

double BiLstmImpl::flops_per_example(double tokens) const { return bilstm_flops(options_, tokens); }

}  // namespace kd
