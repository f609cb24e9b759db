// Dynamic int8 quantization (kd/models/quantize.h, kd/io/int8_rows.h): the per-row rule and its error
// bound, its storage in safetensors, the int8 Linear against a bound derived from the two rounding
// steps, the BiLSTM's and TextCNN's int8 paths against their float paths (and the packed, padded batch
// against rows alone), and int8 folders: written staged, read back by load_classifier as int8 models
// whose weights are exactly the stored int8 values, and refused with one-line errors where they cannot be.
#include <gtest/gtest.h>

#include <algorithm>

#include <filesystem>
#include <regex>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/int8_rows.h"
#include "kd/io/safetensors.h"
#include "kd/models/bilstm.h"
#include "kd/models/classifier_registry.h"
#include "kd/models/dynamic_linear.h"
#include "kd/models/quantize.h"
#include "kd/models/student_classifier.h"
#include "kd/models/text_cnn.h"
#include "../expect_error.h"
#include "test_paths.h"
#include "tiny_bert.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

WordPieceTokenizer tokenizer40() {
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  while (vocab.size() < 40) vocab.push_back("w" + std::to_string(vocab.size()));
  return WordPieceTokenizer(vocab, {});
}

std::unique_ptr<StudentClassifier> bilstm(const std::string& pooling, int64_t layers) {
  BiLstmOptions o;
  o.vocab_size = 40;
  o.embedding_dim = 24;
  o.hidden = 16;
  o.layers = layers;
  o.pooling = pooling;
  o.num_classes = 3;
  o.projection = 32;
  torch::manual_seed(11);
  auto m = std::make_unique<StudentClassifier>(std::make_shared<BiLstmImpl>(o), "bilstm", tokenizer40(),
                                               LabelVocab({"a", "b", "c"}), 16);
  m->module().eval();
  return m;
}

std::unique_ptr<StudentClassifier> textcnn() {
  TextCnnOptions o;
  o.vocab_size = 40;
  o.embedding_dim = 24;
  o.kernel_sizes = {2, 3, 5};
  o.filters = 16;
  o.num_classes = 3;
  torch::manual_seed(12);
  auto m = std::make_unique<StudentClassifier>(std::make_shared<TextCnnImpl>(o), "textcnn", tokenizer40(),
                                               LabelVocab({"a", "b", "c"}), 16);
  m->module().eval();
  return m;
}

// Four rows of different lengths, right-padded: (4, 9).
Batch padded_batch() {
  Batch b;
  b.input_ids = torch::tensor({{2, 7, 9, 11, 13, 17, 19, 23, 3},
                               {2, 8, 10, 3, 0, 0, 0, 0, 0},
                               {2, 30, 31, 32, 33, 34, 3, 0, 0},
                               {2, 5, 3, 0, 0, 0, 0, 0, 0}},
                              torch::kInt64);
  b.attention_mask = (b.input_ids != 0).to(torch::kInt64);
  b.token_type_ids = torch::zeros_like(b.input_ids);
  return b;
}

Batch row(const Batch& b, int64_t i) {
  const int64_t n = b.attention_mask[i].sum().item<int64_t>();
  Batch r;
  r.input_ids = b.input_ids[i].slice(0, 0, n).unsqueeze(0);
  r.attention_mask = torch::ones_like(r.input_ids);
  r.token_type_ids = torch::zeros_like(r.input_ids);
  return r;
}

torch::Tensor logits(TextClassifier& m, const Batch& b) {
  torch::NoGradGuard g;
  m.module().eval();
  return m.forward(b).logits;
}

// How far an int8 model's logits may stray from the float model's. Weights and activations each carry
// a relative rounding error of at most 1/254 of their row's or tensor's range; a few layers of
// products add these up to a few percent of the logits' size (their range, or their largest magnitude
// where the rows barely differ, as in a tiny random BERT whose logits all sit near one value), while a
// wrong gate order, direction or row order moves the logits by their whole range.
void expect_int8_close(const torch::Tensor& got, const torch::Tensor& ref) {
  const double range = (ref.max() - ref.min()).item<double>() + 1e-3;
  const double size = std::max(range, ref.abs().max().item<double>());
  const double diff = (got - ref).abs().max().item<double>();
  EXPECT_LE(diff, 0.05 * size) << "int8 " << got << "\nfloat " << ref;
  EXPECT_GT(diff, 0.0) << "the int8 path did not run";
}

TEST(Int8RowsTest, EachElementIsWithinHalfItsRowsScale) {
  torch::manual_seed(1);
  auto w = torch::randn({16, 3, 5}) * torch::logspace(-3, 2, 16).view({16, 1, 1});
  w[4].zero_();
  const auto q = quantize_rows(w);
  ASSERT_EQ(q.values.scalar_type(), torch::kInt8);
  ASSERT_EQ(q.values.sizes(), w.sizes());
  ASSERT_EQ(q.scales.sizes(), torch::IntArrayRef({16}));
  const auto back = dequantize_rows(q);
  for (int64_t r = 0; r < 16; ++r) {
    const float s = q.scales[r].item<float>();
    // Half a step, plus the float rounding of w / s and q * s.
    EXPECT_LE((back[r] - w[r]).abs().max().item<float>(), s * (0.5f + 1e-5f)) << "row " << r;
    if (r == 4) {
      EXPECT_EQ(s, 1.0f);
      EXPECT_EQ(q.values[r].abs().max().item<int>(), 0);
    } else {
      EXPECT_EQ(q.values[r].abs().max().item<int>(), 127);  // the row's largest element uses the whole range
    }
  }
  EXPECT_GE(q.values.min().item<int>(), -127);
  // Quantizing what was dequantized gives the same int8 values and scales: an int8 folder read back and
  // packed again multiplies exactly its stored bytes.
  EXPECT_TRUE(torch::equal(quantize_rows(back).values, q.values));
  EXPECT_TRUE(torch::equal(quantize_rows(back).scales, q.scales));
  torch::manual_seed(7);
  const auto many = torch::rand({20000, 8}) * torch::logspace(-6, 3, 20000).view({-1, 1});  // 20,000 scales
  const auto qm = quantize_rows(many);
  EXPECT_TRUE(torch::equal(quantize_rows(dequantize_rows(qm)).scales, qm.scales));
  EXPECT_THROW(quantize_rows(torch::ones({4})), Error);
}

TEST(Int8RowsTest, SafetensorsReadsInt8RowsAsTheirFloatValues) {
  const auto dir = test::temp_dir("int8_rows_safetensors");
  torch::manual_seed(2);
  const auto w = torch::randn({6, 10});
  const auto q = quantize_rows(w);
  const auto path = (dir / "w.safetensors").string();
  save_safetensors(path, {{"w", q.values}, {std::string("w") + kInt8ScaleSuffix, q.scales}, {"b", torch::ones({6})},
                          {"raw", torch::ones({2, 3}, torch::kInt8)}});
  const SafeTensorsFile f(path);
  EXPECT_TRUE(f.int8_rows("w"));
  EXPECT_TRUE(f.holds_float("w"));
  EXPECT_FALSE(f.int8_rows("raw"));  // no scales beside it: plain int8
  EXPECT_FALSE(f.holds_float("raw"));
  EXPECT_TRUE(torch::equal(f.load("w"), dequantize_rows(q)));
  EXPECT_EQ(f.load("raw").scalar_type(), torch::kInt8);

  const auto bad = (dir / "bad.safetensors").string();
  save_safetensors(bad, {{"w", q.values}, {std::string("w") + kInt8ScaleSuffix, -q.scales}});
  test::expect_error<FormatError>([&] { SafeTensorsFile(bad).load("w"); }, {"bad.safetensors", "w.int8_scale", "positive"});
}

TEST(DynamicLinearTest, Int8OutputIsWithinTheBoundOfItsTwoRoundings) {
  torch::manual_seed(3);
  DynamicLinear lin(48, 20);
  lin->eval();
  const auto x = torch::randn({3, 7, 48}) * 2 + 0.3;  // (B, T, in), not centred
  torch::NoGradGuard g;
  const auto ref = lin(x);  // (B, T, out)
  quantize_int8(*lin);
  ASSERT_TRUE(lin->int8());
  const auto got = lin(x);
  ASSERT_EQ(got.sizes(), ref.sizes());
  // y_r = Σ_k W_rk x_k. The weight rounding errs by at most s_r/2 per element, the activation rounding
  // (one uint8 step a = range/127 over the whole tensor, zero exactly representable) by at most a, so
  // |Δy_r| ≤ s_r/2·‖x‖₁ + a·‖Ŵ_r‖₁; the int32 sums are exact and the float rescale adds ~1e-6.
  const auto q = quantize_rows(lin->weight);
  const auto w_hat = dequantize_rows(q);  // (out, in)
  const double a = (std::max(x.max().item<double>(), 0.0) - std::min(x.min().item<double>(), 0.0)) / 127.0;
  const auto x1 = x.abs().sum(-1, /*keepdim=*/true);                                   // (B, T, 1)
  const auto bound = x1 * q.scales.view({1, 1, -1}) / 2 + a * w_hat.abs().sum(1).view({1, 1, -1});  // (B, T, out)
  const auto excess = (got - ref).abs() - (bound * (1 + 1e-4) + 1e-5);
  EXPECT_LE(excess.max().item<double>(), 0.0);
  EXPECT_GT((got - ref).abs().max().item<double>(), 0.0);

  lin->train();
  test::expect_error<TrainError>([&] { lin(x); }, {"inference only"});
}

TEST(QuantizeTest, BiLstmInt8FollowsTheFloatModelPackedOrNot) {
  for (const std::string pooling : {"max", "last", "mean"}) {
    SCOPED_TRACE(pooling);
    auto ref = bilstm(pooling, 2);
    auto q = bilstm(pooling, 2);
    EXPECT_EQ(quantize_int8(q->module()), 4);  // the net (its LSTM), the projection and the two head layers
    const auto b = padded_batch();
    const auto got = logits(*q, b);
    expect_int8_close(got, logits(*ref, b));
    // Each row alone takes the unpacked kernel; in the padded batch the packed one, whose final states
    // come back in length-sorted order. Only the activations' ranges differ between the two.
    for (int64_t i = 0; i < 4; ++i) {
      const auto alone = logits(*q, row(b, i));
      const double range = (got.max() - got.min()).item<double>() + 1e-3;
      EXPECT_LE((alone[0] - got[i]).abs().max().item<double>(), 0.05 * range) << "row " << i;
    }
  }
}

TEST(QuantizeTest, TextCnnInt8FollowsTheFloatModel) {
  auto ref = textcnn();
  auto q = textcnn();
  EXPECT_EQ(quantize_int8(q->module()), 2);  // the convolutions (the net itself) and the classifier
  const auto b = padded_batch();
  expect_int8_close(logits(*q, b), logits(*ref, b));
}

TEST(QuantizeTest, BertInt8FollowsTheFloatModel) {
  auto ref = test::tiny_bert(2, 32, 4, 5);
  auto q = test::tiny_bert(2, 32, 4, 5);
  ref->module().eval();
  // Per layer: query, key, value, attention output, intermediate, output; then the pooler and classifier.
  EXPECT_EQ(quantize_int8(q->module()), 2 * 6 + 2);
  const auto b = padded_batch();
  expect_int8_close(logits(*q, b), logits(*ref, b));
}

TEST(QuantizeTest, FloatModulesKeepTheirPartsFloatAndBadPatternsAreNamed) {
  const std::string ffn_out = "layer\\.[0-9]+\\.output\\.dense$";  // not attention.output.dense
  auto q = test::tiny_bert(2, 32, 4, 5);
  EXPECT_EQ(quantize_int8(q->module(), ffn_out), 2 * 6 + 2 - 2);
  int64_t float_parts = 0;
  for (const auto& item : q->module().named_modules()) {
    if (const auto* lin = dynamic_cast<DynamicLinearImpl*>(item.value().get())) {
      const bool kept = std::regex_search(item.key(), std::regex(ffn_out));
      EXPECT_EQ(lin->int8(), !kept) << item.key();
      float_parts += kept ? 1 : 0;
    }
  }
  EXPECT_EQ(float_parts, 2);

  auto fresh = test::tiny_bert(2, 32, 4, 5);
  test::expect_error<ConfigError>([&] { quantize_int8(fresh->module(), "layer.("); },
                                  {"--float-modules 'layer.('", "not a regular expression"});
  test::expect_error<ConfigError>([&] { quantize_int8(fresh->module(), "lstm"); },
                                  {"--float-modules 'lstm'", "matches none", "bert.encoder.layer.0"});
  test::expect_error<ConfigError>([&] { quantize_int8(fresh->module(), "dense|query|key|value|classifier"); },
                                  {"matches every int8 part"});

  // In a folder: recorded, and loaded with the same parts float.
  const auto dir = test::temp_dir("quantize_float_modules");
  auto model = test::tiny_bert(2, 32, 4, 5);
  fs::create_directories(dir / "float");
  model->save((dir / "float").string());
  test::expect_error<ConfigError>(
      [&] { write_int8_folder(*model, (dir / "float").string(), (dir / "bad").string(), false, "nothing"); },
      {"--float-modules 'nothing'"});
  EXPECT_FALSE(fs::exists(dir / "bad"));
  const auto info = write_int8_folder(*model, (dir / "float").string(), (dir / "int8").string(), false, ffn_out);
  EXPECT_EQ(info.value("float_modules", ""), ffn_out);
  auto loaded = load_classifier((dir / "int8").string());
  // The float model with its matrices rounded as stored, quantized in memory with and without the pattern.
  const auto rounded = [&] {
    auto m = load_classifier((dir / "float").string());
    torch::NoGradGuard g;
    for (auto& p : m->module().parameters())
      if (p.dim() >= 2) p.copy_(dequantize_rows(quantize_rows(p)));
    return m;
  };
  auto in_memory = rounded(), all_int8 = rounded();
  quantize_int8(in_memory->module(), ffn_out);
  quantize_int8(all_int8->module());
  const auto b = padded_batch();
  const auto got = logits(*loaded, b);
  EXPECT_TRUE(torch::equal(got, logits(*in_memory, b)));
  EXPECT_FALSE(torch::equal(got, logits(*all_int8, b)));
  expect_int8_close(got, logits(*model, b));
}

// An int8 folder of `model`, checked: int8 matrices on disk, weights read back equal to the stored
// values, logits those of the model quantized in memory.
void check_folder(TextClassifier& model, const fs::path& dir) {
  const auto src = dir / "float", out = dir / "int8";
  fs::create_directories(src);
  model.save(src.string());
  const auto info = write_int8_folder(model, src.string(), out.string(), /*overwrite=*/false);
  EXPECT_EQ(info.value("method", ""), "int8_dynamic");
  EXPECT_GT(info.value("int8_tensors", 0), 0);
  ASSERT_TRUE(fs::exists(out / kQuantizationFile));
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos);

  const SafeTensorsFile stored((out / "model.safetensors").string()), original((src / "model.safetensors").string());
  int64_t matrices = 0;
  for (const auto& name : original.names()) {
    if (original.info(name).shape.size() < 2) {
      EXPECT_EQ(stored.info(name).dtype, original.info(name).dtype) << name;
      continue;
    }
    ++matrices;
    ASSERT_TRUE(stored.int8_rows(name)) << name;
    EXPECT_TRUE(torch::equal(stored.load(name), dequantize_rows(quantize_rows(original.load(name))))) << name;
  }
  EXPECT_EQ(info.value("int8_tensors", 0), matrices);

  auto loaded = load_classifier(out.string());
  // The float model with every matrix (embedding tables too) rounded as the folder stores it, quantized in
  // memory: the same int8 bytes and scales (quantize_rows takes scales that survive the round trip), so the
  // same logits bit for bit.
  auto in_memory = load_classifier(src.string());
  {
    torch::NoGradGuard g;
    for (auto& p : in_memory->module().parameters())
      if (p.dim() >= 2) p.copy_(dequantize_rows(quantize_rows(p)));
  }
  quantize_int8(in_memory->module());
  const auto b = padded_batch();
  const auto got = logits(*loaded, b), ref = logits(*in_memory, b);
  EXPECT_TRUE(torch::equal(got, ref)) << (got - ref).abs().max().item<double>();
  expect_int8_close(got, logits(*load_classifier(src.string()), b));

  test::expect_error<FormatError>([&] { write_int8_folder(*loaded, out.string(), (dir / "again").string(), false); },
                                  {"already int8"});
  test::expect_error<ConfigError>([&] { write_int8_folder(model, src.string(), out.string(), false); },
                                  {"already exists", "--overwrite"});
  EXPECT_NO_THROW(write_int8_folder(model, src.string(), out.string(), /*overwrite=*/true));
  EXPECT_FALSE(fs::exists(dir / "again"));
  loaded->module().train();
  test::expect_error<TrainError>([&] { loaded->forward(b); }, {"inference only"});
}

TEST(QuantizeTest, Int8FoldersOfEveryKindLoadAsInt8Models) {
  const auto dir = test::temp_dir("quantize_folders");
  {
    SCOPED_TRACE("bert");
    auto m = test::tiny_bert(2, 32, 4, 5);
    check_folder(*m, dir / "bert");
  }
  {
    SCOPED_TRACE("bilstm");
    check_folder(*bilstm("max", 1), dir / "bilstm");
  }
  {
    SCOPED_TRACE("textcnn");
    check_folder(*textcnn(), dir / "textcnn");
  }
}

TEST(QuantizeTest, AFolderThatSaysInt8ButIsNotIsRefused) {
  const auto dir = test::temp_dir("quantize_bad_info");
  auto m = textcnn();
  m->save(dir.string());
  write_json_atomic((dir / kQuantizationFile).string(), {{"method", "int4"}, {"format_version", 1}});
  test::expect_error<FormatError>([&] { load_classifier(dir.string()); }, {kQuantizationFile, "method", "int8_dynamic"});
  write_json_atomic((dir / kQuantizationFile).string(), {{"method", "int8_dynamic"}, {"format_version", 9}});
  test::expect_error<FormatError>([&] { load_classifier(dir.string()); }, {"format_version"});
  // kd bench infer reads the same file through the same checks.
  test::expect_error<FormatError>([&] { read_folder_quantization(dir.string()); }, {"format_version"});
  write_json_atomic((dir / kQuantizationFile).string(),
                    {{"method", "int8_dynamic"}, {"format_version", 1}, {"float_modules", 3}});
  test::expect_error<FormatError>([&] { load_classifier(dir.string()); }, {kQuantizationFile, "float_modules"});
  fs::remove(dir / kQuantizationFile);
  EXPECT_TRUE(read_folder_quantization(dir.string()).is_null());
}

}  // namespace
}  // namespace kd
