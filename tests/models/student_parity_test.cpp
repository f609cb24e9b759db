// StudentParityTest: kd's BiLSTM (every pooling, one and two layers, with and without a projection)
// and TextCNN against the same architectures written in PyTorch (tests/python/golden_students.py):
// the PyTorch weights load under kd's parameter names and give the same logits on real SST-2
// sentences, including rows shorter than the largest convolution kernel.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "kd/io/safetensors.h"
#include "kd/models/bilstm.h"
#include "kd/models/text_cnn.h"
#include "kd/train/trainer.h"
#include "../test_paths.h"  // tests/ is not on the include path
#include "../tolerance.h"

namespace {

struct Golden {
  torch::Tensor ids, mask;
  kd::SafeTensorsFile batch;
  Golden() : batch(kd::test::golden("students/batch.safetensors")) {
    ids = batch.load("input_ids");
    mask = batch.load("attention_mask");
  }
};

// Builds the module the golden weights file describes and loads the weights into it.
std::shared_ptr<torch::nn::Module> load_golden_model(const std::string& name,
                                                     std::function<torch::Tensor(const Golden&)>& run) {
  const std::string path = kd::test::golden("students/" + name + ".safetensors");
  kd::SafeTensorsFile file(path);
  const auto type = file.metadata().at("type");
  const auto options = nlohmann::json::parse(file.metadata().at("options"));
  std::shared_ptr<torch::nn::Module> module;
  if (type == "bilstm") {
    kd::BiLstm m(kd::BiLstmOptions::from_json(options, path));
    run = [m](const Golden& g) mutable { return m->forward(g.ids, g.mask); };
    module = m.ptr();
  } else {
    kd::TextCnn m(kd::TextCnnOptions::from_json(options, path));
    run = [m](const Golden& g) mutable { return m->forward(g.ids, g.mask); };
    module = m.ptr();
  }
  // Same names both ways: nothing in the file is left unused, nothing in the module is missing.
  std::set<std::string> in_file, in_module;
  for (const auto& n : file.names()) in_file.insert(n);
  for (const auto& p : module->named_parameters()) in_module.insert(p.key());
  EXPECT_EQ(in_file, in_module) << name;
  kd::load_module_state(*module, path);
  module->eval();
  return module;
}

// The float32 rounding bound of tests/tolerance.h for the logits: how much of it the worst element of `got`
// uses (at most 1 passes). The longest reduction is the largest fan-in of any weight (a convolution window
// k·E, an LSTM gate's inputs, the head's features) or the number of time steps, whichever is longer: an
// LSTM's cell state is a running sum over the steps, and mean pooling sums over them too (max pooling
// rounds nothing). Depth: the layers from the embeddings to the logits.
struct Bound {
  int64_t n = 0, depth = 0;
  double used(const torch::Tensor& got, const torch::Tensor& ref) const {
    return kd::test::tolerance_ratio(got, ref, n, depth);
  }
};
Bound bound_for(torch::nn::Module& module, const nlohmann::json& options, const std::string& type, int64_t steps) {
  Bound b;
  b.n = steps;
  for (const auto& p : module.parameters())
    if (p.dim() >= 2) b.n = std::max(b.n, p.numel() / p.size(0));
  const int64_t projection = options.value("projection", int64_t{0}) > 0 ? 1 : 0;
  b.depth = (type == "bilstm" ? options.at("layers").get<int64_t>() : 1) + 1 + projection;
  return b;
}

void check_parity(const std::string& name) {
  SCOPED_TRACE(name);
  Golden g;
  std::function<torch::Tensor(const Golden&)> run;
  auto module = load_golden_model(name, run);
  torch::NoGradGuard no_grad;
  const auto logits = run(g);
  const auto expected = g.batch.load("logits." + name);
  ASSERT_EQ(logits.sizes(), expected.sizes());
  kd::SafeTensorsFile file(kd::test::golden("students/" + name + ".safetensors"));
  const auto bound = bound_for(*module, nlohmann::json::parse(file.metadata().at("options")), file.metadata().at("type"),
                               g.ids.size(1));
  const double diff = (logits - expected).abs().max().item<double>(), used = bound.used(logits, expected);
  std::printf("[ parity ] student %s: logits max abs diff %.3g, %.3g of the rounding bound\n", name.c_str(), diff, used);
  EXPECT_LE(used, 1.0);
  // The comparison means something only if rows differ from each other by much more than that: a model
  // that ignored its input would be 100 bounds away.
  EXPECT_GT(bound.used(expected.mean(0).expand_as(expected), expected), 100.0);
  // Padding: each row alone (trimmed to its length) gives the batched logits too.
  for (int64_t i = 0; i < g.ids.size(0); i += 5) {
    const int64_t len = g.mask[i].sum().item<int64_t>();
    Golden row = g;
    row.ids = g.ids.slice(0, i, i + 1).slice(1, 0, len);
    row.mask = g.mask.slice(0, i, i + 1).slice(1, 0, len);
    EXPECT_LE(bound.used(run(row)[0], expected[i]), 1.0) << "row " << i;
  }
}

}  // namespace

TEST(StudentParityTest, BiLstmMaxPooling) { check_parity("bilstm_max"); }
TEST(StudentParityTest, BiLstmMeanPoolingTwoLayers) { check_parity("bilstm_mean"); }
TEST(StudentParityTest, BiLstmLastStatesTwoLayersWithProjection) { check_parity("bilstm_last"); }
TEST(StudentParityTest, TextCnn) { check_parity("textcnn"); }
TEST(StudentParityTest, TextCnnWithProjectionAndRowsShorterThanAKernel) { check_parity("textcnn_proj"); }
