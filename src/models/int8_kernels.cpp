#include "kd/models/int8_kernels.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include "kd/error.h"
#include "kd/io/int8_rows.h"

namespace kd::int8 {

namespace {

c10::OperatorHandle op(const char* name, const char* overload) {
  // Looked up once each: findSchemaOrThrow walks the dispatcher's table.
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
}

std::vector<c10::IValue> call(const c10::OperatorHandle& handle, std::vector<c10::IValue> stack) {
  handle.callBoxed(&stack);
  return stack;
}

void require_cpu(const torch::Tensor& x) {
  if (!x.device().is_cpu())
    throw ConfigError(located("--device", "an int8 model runs on the CPU only", "use --device cpu"));
}

c10::List<torch::Tensor> zeros_state(int64_t layers, bool bidirectional, int64_t batch, int64_t hidden,
                                     const torch::TensorOptions& options) {
  const int64_t n = layers * (bidirectional ? 2 : 1);
  c10::List<torch::Tensor> hx;
  hx.push_back(torch::zeros({n, batch, hidden}, options));
  hx.push_back(torch::zeros({n, batch, hidden}, options));
  return hx;
}

c10::List<c10::IValue> cell_list(const std::vector<c10::IValue>& cells) {
  c10::List<c10::IValue> list(cells.front().type());
  for (const auto& c : cells) list.push_back(c);
  return list;
}

}  // namespace

std::string engine() { return c10::toString(at::globalContext().qEngine()); }

c10::IValue pack_linear(const torch::Tensor& weight, const torch::Tensor& bias) {
  static const auto prepack = op("quantized::linear_prepack", "");
  torch::NoGradGuard no_grad;
  const auto q = quantize_rows(weight);  // the rule the folder's bytes follow
  const auto qweight = at::_make_per_channel_quantized_tensor(
      q.values, q.scales.to(torch::kDouble), torch::zeros({q.scales.size(0)}, torch::kLong), 0);
  c10::optional<torch::Tensor> b;
  if (bias.defined()) b = bias.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return call(prepack, {qweight, b}).at(0);
}

torch::Tensor linear(const torch::Tensor& x, const c10::IValue& packed) {
  static const auto linear_dynamic = op("quantized::linear_dynamic", "");
  require_cpu(x);
  const auto input = x.scalar_type() == torch::kFloat32 ? x.contiguous() : x.to(torch::kFloat32).contiguous();
  return call(linear_dynamic, {input, packed, /*reduce_range=*/true}).at(0).toTensor();
}

c10::IValue lstm_cell(const torch::Tensor& w_ih, const torch::Tensor& w_hh, const torch::Tensor& b_ih,
                      const torch::Tensor& b_hh) {
  static const auto make = op("quantized::make_quantized_cell_params_dynamic", "");
  torch::NoGradGuard no_grad;
  const auto f32 = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat32).contiguous(); };
  // The cell adds the biases packed with each product; the separate copies only describe it (as PyTorch's
  // own dynamic LSTM builds it).
  return call(make, {pack_linear(w_ih, b_ih), pack_linear(w_hh, b_hh), f32(b_ih), f32(b_hh), /*reduce_range=*/true}).at(0);
}

LstmResult lstm(const torch::Tensor& x, const std::vector<c10::IValue>& cells, int64_t layers, bool bidirectional,
                int64_t hidden) {
  static const auto run = op("aten::quantized_lstm", "input");
  require_cpu(x);
  auto out = call(run, {x.to(torch::kFloat32).contiguous(), zeros_state(layers, bidirectional, x.size(0), hidden, x.options()),
                        cell_list(cells), /*has_biases=*/true, layers, /*dropout=*/0.0, /*train=*/false, bidirectional,
                        /*batch_first=*/true, /*dtype=*/c10::IValue(at::kQInt8), /*use_dynamic=*/true});
  return {out.at(0).toTensor(), out.at(1).toTensor(), out.at(2).toTensor()};
}

LstmResult lstm_packed(const torch::Tensor& data, const torch::Tensor& batch_sizes, const std::vector<c10::IValue>& cells,
                       int64_t layers, bool bidirectional, int64_t hidden) {
  static const auto run = op("aten::quantized_lstm", "data");
  require_cpu(data);
  const int64_t batch = batch_sizes[0].item<int64_t>();
  auto out = call(run, {data.to(torch::kFloat32).contiguous(), batch_sizes,
                        zeros_state(layers, bidirectional, batch, hidden, data.options()), cell_list(cells),
                        /*has_biases=*/true, layers, /*dropout=*/0.0, /*train=*/false, bidirectional,
                        /*dtype=*/c10::IValue(at::kQInt8), /*use_dynamic=*/true});
  return {out.at(0).toTensor(), out.at(1).toTensor(), out.at(2).toTensor()};
}

}  // namespace kd::int8
