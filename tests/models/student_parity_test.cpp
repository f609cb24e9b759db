// StudentParityTest: kd's BiLSTM (every pooling, one and two layers, with and without a projection)
// and TextCNN against the same architectures written in PyTorch (tests/python/golden_students.py):
// the PyTorch weights load under kd's parameter names and give the same logits on real SST-2
// sentences, including rows shorter than the largest convolution kernel.
#include <gtest/gtest.h>

#include <set>

#include "kd/io/safetensors.h"
#include "kd/models/bilstm.h"
#include "kd/models/text_cnn.h"
#include "kd/train/trainer.h"
#include "../test_paths.h"  // tests/ is not on the include path

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

void check_parity(const std::string& name) {
  SCOPED_TRACE(name);
  Golden g;
  std::function<torch::Tensor(const Golden&)> run;
  auto module = load_golden_model(name, run);
  torch::NoGradGuard no_grad;
  const auto logits = run(g);
  const auto expected = g.batch.load("logits." + name);
  ASSERT_EQ(logits.sizes(), expected.sizes());
  const double diff = (logits - expected).abs().max().item<double>();
  EXPECT_LE(diff, 1e-5);
  // The comparison means something only if rows differ from each other by much more than that.
  EXPECT_GT((expected - expected.mean(0)).abs().max().item<double>(), 1e-2);
  // Padding: each row alone (trimmed to its length) gives the batched logits too.
  for (int64_t i = 0; i < g.ids.size(0); i += 5) {
    const int64_t len = g.mask[i].sum().item<int64_t>();
    Golden row = g;
    row.ids = g.ids.slice(0, i, i + 1).slice(1, 0, len);
    row.mask = g.mask.slice(0, i, i + 1).slice(1, 0, len);
    EXPECT_LE((run(row)[0] - expected[i]).abs().max().item<double>(), 1e-5) << "row " << i;
  }
}

}  // namespace

TEST(StudentParityTest, BiLstmMaxPooling) { check_parity("bilstm_max"); }
TEST(StudentParityTest, BiLstmMeanPoolingTwoLayers) { check_parity("bilstm_mean"); }
TEST(StudentParityTest, BiLstmLastStatesTwoLayersWithProjection) { check_parity("bilstm_last"); }
TEST(StudentParityTest, TextCnn) { check_parity("textcnn"); }
TEST(StudentParityTest, TextCnnWithProjectionAndRowsShorterThanAKernel) { check_parity("textcnn_proj"); }
