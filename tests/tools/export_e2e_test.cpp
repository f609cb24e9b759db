// End to end through the `kd` binary: `kd export --format gguf` of a tiny causal-LM folder. The F32 file
// loads through kd's GGUF loader with the folder's logits; the Q8_0 file computes exactly the folder's
// model with every block-quantized weight replaced by its Q8_0 value (within float32 rounding) and so
// stays within a first-order bound of the original logits. Bad input (another kind of model folder, an
// unknown type or format, an output folder that does not exist) is one error line with the documented
// exit code, and no output file, temporary or not, is left behind.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <iostream>

#include "kd/io/atomic_file.h"
#include "kd/io/gguf_writer.h"
#include "kd/models/causal_lm.h"
#include "../models/tiny_lm_folder.h"
#include "../tolerance.h"
#include "run_kd.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

using test::run_kd;

torch::Tensor logits(Llama& m, const std::vector<int64_t>& ids) {
  torch::NoGradGuard g;
  return m->forward(torch::tensor(ids).unsqueeze(0)).logits[0];
}

std::vector<int64_t> test_ids(const BpeTokenizer& tok) {
  auto ids = tok.encode("<|im_start|>user\nthe other there 12<|im_end|>");
  for (int64_t k = 0; k < 24; ++k) ids.push_back((k * 37 + 11) % tok.vocab_size());
  return ids;
}

// Files in `dir` whose name contains "gguf" (outputs and their temporary files).
int gguf_files(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().find("gguf") != std::string::npos;
  return n;
}

TEST(ExportE2ETest, F32FileComputesTheFoldersLogits) {
  const auto dir = test::temp_dir("e2e_export_f32");
  for (const bool tied : {true, false}) {
    const auto folder = test::save_tiny_lm_folder(dir / (tied ? "tied" : "untied"), tied);
    const std::string out = tied ? "tied.gguf" : "untied.gguf";
    const auto r = run_kd("export --model " + folder + " --format gguf --type f32 --output " + out, dir);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find(out), std::string::npos) << r.out;
    auto ref = load_causal_lm(folder), got = load_causal_lm((dir / out).string());
    EXPECT_EQ(got.model->options().tie_embeddings, tied);
    const auto ids = test_ids(ref.tokenizer);
    EXPECT_EQ(got.tokenizer.encode("the other<|im_end|>"), ref.tokenizer.encode("the other<|im_end|>"));
    // The same weights (F32, the Q/K permutation undone exactly) through the same code; only the RMSNorm
    // epsilon changes, rounded to float32 by the format (1e-5 by 2.5e-13), far below 1e-5 in the logits.
    const auto diff = (logits(got.model, ids) - logits(ref.model, ids)).abs().max().item<double>();
    EXPECT_LE(diff, 1e-5) << (tied ? "tied" : "untied");
    std::cout << (tied ? "tied" : "untied") << ": largest logit difference " << diff << "\n";
  }
}

TEST(ExportE2ETest, Q8_0FileComputesTheQuantizedModel) {
  const auto dir = test::temp_dir("e2e_export_q8_0");
  const auto folder = test::save_tiny_lm_folder(dir / "m");
  const auto r = run_kd("export --model " + folder + " --type q8_0 --output m.gguf", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  auto ref = load_causal_lm(folder), got = load_causal_lm((dir / "m.gguf").string()), fake = load_causal_lm(folder);
  // The folder's model with each weight the export quantizes (2-D, rows a multiple of 32) replaced by
  // its Q8_0 value; the largest relative (Frobenius) change of one such matrix.
  double rel_w = 0;
  int quantized = 0;
  {
    torch::NoGradGuard g;
    for (auto& p : fake.model->named_parameters()) {
      auto w = p.value();
      if (w.dim() != 2 || w.size(1) % 32 != 0) continue;
      const auto x = w.contiguous();
      std::string bytes;
      quantize_ggml(GgmlType::Q8_0, x.data_ptr<float>(), x.numel(), bytes);
      auto y = torch::empty_like(x);
      dequantize_ggml(GgmlType::Q8_0, reinterpret_cast<const uint8_t*>(bytes.data()), x.numel(), y.data_ptr<float>());
      rel_w = std::max(rel_w, ((y - x).norm() / x.norm()).item<double>());
      w.copy_(y);
      ++quantized;
    }
  }
  const auto& o = ref.model->options();
  EXPECT_EQ(quantized, 1 + 6 * o.num_layers);  // embedding (= head) and q, k, v, o, gate, up; not ffn_down (48)
  const auto ids = test_ids(ref.tokenizer);
  const auto q8 = logits(got.model, ids), want = logits(fake.model, ids), orig = logits(ref.model, ids);
  // The file holds exactly those weights: only float32 rounding separates the two (tests/tolerance.h).
  const double ratio = test::tolerance_ratio(q8, want, std::max(o.hidden_size, o.intermediate_size), o.num_layers + 1);
  EXPECT_LE(ratio, 1.0);
  // Against the original: to first order each perturbed matrix moves the logits by its relative change
  // times the size of what flows through it, and the residual stream carries every such change to the
  // output unamplified, so the relative change of the logits is at most the sum over the matrices a
  // token passes (q, k, v, o, gate, up per layer, the embedding and the tied head) of rel_w, with a
  // factor 2 for the second-order terms of the nonlinearities (softmax, SiLU, RMSNorm).
  const double rel_logits = ((q8 - orig).norm() / orig.norm()).item<double>();
  EXPECT_LE(rel_logits, 2.0 * (6 * o.num_layers + 2) * rel_w) << "weights changed by " << rel_w;
  EXPECT_GT(rel_logits, 0.0) << "Q8_0 should change something";
  std::cout << "Q8_0: " << ratio << " of the rounding bound from the quantized model; logits changed by " << rel_logits
            << " relative, weights by at most " << rel_w << "\n";
}

TEST(ExportE2ETest, BadInputIsOneErrorLineAndNoFile) {
  const auto dir = test::temp_dir("e2e_export_bad");
  const auto folder = test::save_tiny_lm_folder(dir / "lm");
  fs::create_directories(dir / "bilstm");
  write_json_atomic((dir / "bilstm" / "kd.json").string(), {{"type", "bilstm"}, {"format_version", 1}});
  struct Case {
    std::string args;
    int code;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"--model " + test::model_dir() + " --output o.gguf", 2, {test::model_dir(), "\"bert\"", "LLaMA folder"}},
      {"--model bilstm --output o.gguf", 2, {"bilstm", "text classifier", "kd distill-lm"}},
      {"--model " + folder + " --type q5_k --output o.gguf", 2, {"q5_k", "f32, f16, q8_0, q4_0"}},
      {"--model " + folder + " --format onnx --output o.gguf", 2, {"onnx", "gguf"}},
      {"--model " + folder + " --output nowhere/o.gguf", 3, {"nowhere", "does not exist"}},
      {"--model " + folder + " --output lm", 3, {"lm", "is a folder"}},
      {"--model missing --output o.gguf", 3, {"missing"}},
  };
  for (const auto& c : cases) {
    const auto r = run_kd("export " + c.args, dir);
    EXPECT_EQ(r.code, c.code) << c.args << ": " << r.err;
    EXPECT_EQ(test::error_lines(r.err), 1u) << c.args << ": " << r.err;
    for (const auto& p : c.parts) EXPECT_NE(r.err.find(p), std::string::npos) << "'" << p << "' not in: " << r.err;
    EXPECT_EQ(gguf_files(dir), 0) << c.args;
  }
}

}  // namespace
}  // namespace kd
