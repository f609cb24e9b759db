// Int8ParityTest: kd's int8 Linear and LSTM (kd/models/dynamic_linear.h, int8_kernels.h) against PyTorch's
// dynamic int8 kernels called as torch.ao.nn.quantized.dynamic calls them, on weights quantized by kd's rule
// (tests/python/golden_int8.py). Both sides run the same quantized engine on the same machine, so the
// only freedom is how kd packs the weights, biases and states: the results agree to float rounding.
#include <gtest/gtest.h>

#include "kd/io/safetensors.h"
#include "kd/models/dynamic_linear.h"
#include "kd/models/int8_kernels.h"
#include "kd/models/quantize.h"
#include "../test_paths.h"

namespace kd {
namespace {

// The int32 products are exact and the rescale is the same float arithmetic: a few ulps of the output.
void expect_same(const torch::Tensor& got, const torch::Tensor& ref, const char* what) {
  ASSERT_EQ(got.sizes(), ref.sizes()) << what;
  const double scale = ref.abs().max().item<double>();
  EXPECT_LE((got - ref).abs().max().item<double>(), 1e-6 * scale + 1e-7) << what;
}

TEST(Int8ParityTest, LinearEqualsPyTorchsDynamicLinear) {
  const SafeTensorsFile g(test::golden("int8/linear.safetensors"));
  const auto w = g.load("weight");
  DynamicLinear lin(w.size(1), w.size(0));
  {
    torch::NoGradGuard no_grad;
    lin->weight.copy_(w);
    lin->bias.copy_(g.load("bias"));
  }
  quantize_int8(*lin);
  torch::NoGradGuard no_grad;
  expect_same(lin(g.load("x")), g.load("y"), "y");
}

TEST(Int8ParityTest, LstmEqualsPyTorchsQuantizedLstmPackedOrNot) {
  const SafeTensorsFile g(test::golden("int8/lstm.safetensors"));
  std::vector<c10::IValue> cells;
  for (int layer = 0; layer < 2; ++layer) {
    for (const std::string d : {"", "_reverse"}) {
      const auto s = "_l" + std::to_string(layer) + d;
      cells.push_back(int8::lstm_cell(g.load("lstm.weight_ih" + s), g.load("lstm.weight_hh" + s),
                                      g.load("lstm.bias_ih" + s), g.load("lstm.bias_hh" + s)));
    }
  }
  const auto x = g.load("x");  // (B, T, E)
  const int64_t H = g.info("h").shape[2];
  torch::NoGradGuard no_grad;
  const auto r = int8::lstm(x, cells, 2, true, H);
  expect_same(r.output, g.load("y"), "y");
  expect_same(r.h, g.load("h"), "h");
  expect_same(r.c, g.load("c"), "c");
  const auto packed = torch::nn::utils::rnn::pack_padded_sequence(x, g.load("lengths"), /*batch_first=*/true,
                                                                   /*enforce_sorted=*/false);
  const auto p = int8::lstm_packed(packed.data(), packed.batch_sizes(), cells, 2, true, H);
  expect_same(p.output, g.load("y_packed"), "y_packed");
  expect_same(p.h, g.load("h_packed"), "h_packed");
}

}  // namespace
}  // namespace kd
