// StudentTest: the BiLSTM and TextCNN students on tiny random configurations — padding never changes a
// row's logits, a real token does; save -> load_classifier is bit-exact; analytic FLOPs against hand
// counts. StudentSlowTest: one timing of the default-size BiLSTM for training budgets.
#include "kd/models/bilstm.h"
#include "kd/models/student_classifier.h"
#include "kd/models/text_cnn.h"

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/models/classifier_registry.h"
#include "kd/util/log.h"
#include "../test_paths.h"  // tests/ is not on the include path

namespace {

constexpr int64_t kVocab = 40;

kd::WordPieceTokenizer tiny_tokenizer() {
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  while (static_cast<int64_t>(vocab.size()) < kVocab) vocab.push_back("w" + std::to_string(vocab.size()));
  return kd::WordPieceTokenizer(vocab, {});
}

kd::BiLstmOptions tiny_bilstm(const std::string& pooling, int64_t layers = 1, int64_t projection = 0) {
  kd::BiLstmOptions o;
  o.vocab_size = kVocab;
  o.embedding_dim = 6;
  o.hidden = 5;
  o.layers = layers;
  o.pooling = pooling;
  o.num_classes = 3;
  o.projection = projection;
  return o;
}

kd::TextCnnOptions tiny_cnn(int64_t projection = 0) {
  kd::TextCnnOptions o;
  o.vocab_size = kVocab;
  o.embedding_dim = 6;
  o.kernel_sizes = {2, 3, 5};
  o.filters = 4;
  o.num_classes = 3;
  o.projection = projection;
  return o;
}

std::unique_ptr<kd::StudentClassifier> make(const kd::BiLstmOptions& o) {
  torch::manual_seed(7);
  auto m = std::make_unique<kd::StudentClassifier>(std::make_shared<kd::BiLstmImpl>(o), "bilstm", tiny_tokenizer(),
                                                   kd::LabelVocab({"a", "b", "c"}), 16);
  m->module().eval();
  return m;
}
std::unique_ptr<kd::StudentClassifier> make(const kd::TextCnnOptions& o) {
  torch::manual_seed(7);
  auto m = std::make_unique<kd::StudentClassifier>(std::make_shared<kd::TextCnnImpl>(o), "textcnn", tiny_tokenizer(),
                                                   kd::LabelVocab({"a", "b", "c"}), 16);
  m->module().eval();
  return m;
}

// One row on its own, as a (1, L) batch without padding.
kd::Batch single(const std::vector<int64_t>& ids) {
  kd::Batch b;
  b.input_ids = torch::tensor(ids, torch::kInt64).unsqueeze(0);
  b.attention_mask = torch::ones_like(b.input_ids);
  b.token_type_ids = torch::zeros_like(b.input_ids);
  return b;
}

// The same row at index 1 of a wider batch whose other rows are longer and shorter (so packing has to
// reorder), with non-pad ids in the padding on purpose: only the mask may keep them out.
kd::Batch padded(const std::vector<int64_t>& ids, int64_t width) {
  const int64_t L = static_cast<int64_t>(ids.size());
  auto input = torch::randint(5, kVocab, {3, width}, torch::kInt64);
  auto mask = torch::zeros({3, width}, torch::kInt64);
  mask[0].fill_(1);                                       // the longest row: full width
  mask[2].slice(0, 0, std::max<int64_t>(1, L / 2)).fill_(1);  // a shorter one
  mask[1].slice(0, 0, L).fill_(1);
  input[1].slice(0, 0, L).copy_(torch::tensor(ids, torch::kInt64));
  kd::Batch b;
  b.input_ids = input;
  b.attention_mask = mask;
  b.token_type_ids = torch::zeros_like(input);
  return b;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// Padding does not reach the prediction, and a changed real token does.
void check_padding_invariance(kd::StudentClassifier& m, const std::vector<int64_t>& ids) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  const auto alone = m.forward(single(ids)).logits;  // (1, C)
  for (int64_t width : {static_cast<int64_t>(ids.size()) + 1, static_cast<int64_t>(ids.size()) + 9}) {
    const auto batch = padded(ids, width);
    const auto inside = m.forward(batch).logits;  // (3, C)
    ASSERT_EQ(inside.sizes(), (std::vector<int64_t>{3, 3}));
    EXPECT_LE(max_diff(alone[0], inside[1]), 1e-6) << m.type() << " width " << width;
  }
  auto changed = ids;
  changed[1] = changed[1] == 7 ? 8 : 7;
  const auto other = m.forward(single(changed)).logits;
  EXPECT_GT(max_diff(alone, other), 1e-4) << m.type() << ": a real token did not change the logits";
}

}  // namespace

TEST(StudentTest, BiLstmPaddingInvarianceEveryPooling) {
  for (const std::string pooling : {"max", "mean", "last"}) {
    for (int64_t layers : {1, 2}) {
      SCOPED_TRACE(pooling + " layers " + std::to_string(layers));
      auto m = make(tiny_bilstm(pooling, layers, layers == 2 ? 9 : 0));
      check_padding_invariance(*m, {2, 11, 12, 13, 14, 3});
      check_padding_invariance(*m, {2, 15, 3});
    }
  }
}

TEST(StudentTest, TextCnnPaddingInvarianceIncludingRowsShorterThanAKernel) {
  for (int64_t projection : {0, 8}) {
    auto m = make(tiny_cnn(projection));
    check_padding_invariance(*m, {2, 11, 12, 13, 14, 15, 16, 3});  // longer than every kernel
    check_padding_invariance(*m, {2, 11, 3});                      // shorter than kernel 5
    check_padding_invariance(*m, {2, 11});                         // one window of kernel 2
  }
}

TEST(StudentTest, ForwardShapesAndFeatures) {
  auto lstm = make(tiny_bilstm("max"));
  auto out = lstm->forward(padded({2, 11, 12, 3}, 6), kd::FeatureRequest::all());
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(out.feature("pooled").sizes(), (std::vector<int64_t>{3, 10}));     // (B, 2H)
  EXPECT_EQ(out.feature("embeddings").sizes(), (std::vector<int64_t>{3, 6, 6}));
  auto cnn = make(tiny_cnn());
  out = cnn->forward(padded({2, 11, 12, 3}, 6), kd::FeatureRequest::all());
  EXPECT_EQ(out.feature("pooled").sizes(), (std::vector<int64_t>{3, 12}));     // (B, K*F)
  EXPECT_EQ(lstm->type(), "bilstm");
  EXPECT_EQ(cnn->type(), "textcnn");
}

TEST(StudentTest, GradientsReachEveryParameterButNotThePadRow) {
  auto m = make(tiny_bilstm("mean", 2, 8));
  m->module().train();
  auto b = padded({2, 11, 12, 3}, 7);
  b.input_ids[1][6] = 0;  // a [PAD] id inside the padding
  m->forward(b).logits.sum().backward();
  for (const auto& p : m->module().named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
  EXPECT_EQ(m->word_embeddings().grad()[0].abs().sum().item<double>(), 0);  // padding_idx row
}

TEST(StudentTest, SaveLoadRoundTripIsBitExact) {
  const std::vector<std::pair<std::string, std::unique_ptr<kd::StudentClassifier>>> cases = [] {
    std::vector<std::pair<std::string, std::unique_ptr<kd::StudentClassifier>>> v;
    v.emplace_back("bilstm_last", make(tiny_bilstm("last", 2, 8)));
    v.emplace_back("bilstm_max", make(tiny_bilstm("max")));
    v.emplace_back("textcnn", make(tiny_cnn(7)));
    return v;
  }();
  for (const auto& [name, m] : cases) {
    SCOPED_TRACE(name);
    const auto dir = kd::test::temp_dir("student_round_trip_" + name);
    m->save(dir.string());
    for (const char* f : {"model.safetensors", "kd.json", "vocab.txt", "labels.json", "tokenizer_config.json"})
      EXPECT_TRUE(std::filesystem::exists(dir / f)) << f;
    const auto info = kd::read_json((dir / "kd.json").string());
    EXPECT_EQ(info["type"], m->type());
    EXPECT_EQ(info["format_version"], 1);
    EXPECT_EQ(info["options"], m->options_json());
    const auto config = kd::read_json((dir / "config.json").string());
    EXPECT_EQ(config["model_type"], "kd-" + m->type());
    const auto options = m->options_json();
    for (const auto& [key, value] : options.items()) EXPECT_EQ(config[key], value) << key;
    EXPECT_EQ(config["max_length"], m->max_length());
    EXPECT_EQ(config["id2label"]["1"], m->labels().name(1));
    EXPECT_EQ(config["label2id"][m->labels().name(2)], 2);

    auto loaded = kd::load_classifier(dir.string());
    loaded->module().eval();
    EXPECT_EQ(loaded->type(), m->type());
    EXPECT_EQ(loaded->max_length(), m->max_length());
    EXPECT_EQ(loaded->labels().labels(), m->labels().labels());
    EXPECT_EQ(loaded->tokenizer().vocab(), m->tokenizer().vocab());
    EXPECT_EQ(loaded->flops_per_example(12), m->flops_per_example(12));
    torch::NoGradGuard no_grad;
    torch::manual_seed(5);
    const auto b = padded({2, 11, 12, 13, 3}, 9);
    EXPECT_TRUE(torch::equal(loaded->forward(b).logits, m->forward(b).logits));
    EXPECT_TRUE(torch::equal(loaded->word_embeddings(), m->word_embeddings()));
  }
}

TEST(StudentTest, LoadRejectsUnknownTypeAndMismatchedLabels) {
  auto m = make(tiny_cnn());
  const auto dir = kd::test::temp_dir("student_bad_type");
  m->save(dir.string());
  auto info = kd::read_json((dir / "kd.json").string());
  info["type"] = "gru";
  kd::write_json_atomic((dir / "kd.json").string(), info);
  try {
    kd::load_classifier(dir.string());
    ADD_FAILURE() << "no exception";
  } catch (const kd::FormatError& e) {
    const std::string msg = e.what();
    for (const char* part : {"gru", "bert", "bilstm", "textcnn"}) EXPECT_NE(msg.find(part), std::string::npos) << msg;
  }
  info["type"] = "textcnn";
  info["options"]["num_classes"] = 5;
  kd::write_json_atomic((dir / "kd.json").string(), info);
  EXPECT_THROW(kd::load_classifier(dir.string()), kd::FormatError);
  std::filesystem::remove(dir / "model.safetensors");
  EXPECT_THROW(kd::load_classifier(dir.string()), kd::IoError);
}

TEST(StudentTest, BiLstmFlopsMatchAHandCount) {
  kd::BiLstmOptions o = tiny_bilstm("max", 2);
  o.embedding_dim = 4;
  o.hidden = 3;
  o.num_classes = 2;
  // T = 5. Layer 0: 2 directions * 5 steps * 4 gates * 3 * (4 + 3) = 840 multiply-adds; layer 1 reads
  // 2H = 6: 2 * 5 * 4 * 3 * (6 + 3) = 1080; head 6 * 3 + 3 * 2 = 24. Total 1944 -> 3888 FLOPs.
  auto m = make(o);
  EXPECT_DOUBLE_EQ(m->flops_per_example(5), 3888);
  // The same from the weight shapes: every LSTM matrix is used once per step, the head once.
  double macs = 0;
  for (const auto& p : m->module().named_parameters()) {
    const auto& k = p.key();
    if (k.rfind("lstm.weight_", 0) == 0) macs += 5.0 * static_cast<double>(p.value().numel());
    if (k == "hidden.weight" || k == "classifier.weight") macs += static_cast<double>(p.value().numel());
  }
  EXPECT_DOUBLE_EQ(m->flops_per_example(5), 2 * macs);
  // A projection from a 10-wide table adds 5 * 10 * 4 multiply-adds.
  o.projection = 10;
  EXPECT_DOUBLE_EQ(make(o)->flops_per_example(5), 3888 + 2 * 200);
}

TEST(StudentTest, TextCnnFlopsMatchAHandCount) {
  kd::TextCnnOptions o = tiny_cnn();
  o.embedding_dim = 4;
  o.kernel_sizes = {2, 3};
  o.filters = 5;
  // T = 6: kernel 2 has 5 windows * 5 filters * 2 * 4 = 200, kernel 3: 4 * 5 * 3 * 4 = 240,
  // classifier 10 * 3 = 30 -> 470 multiply-adds. T = 2 is padded to 3: 2*5*2*4 + 1*5*3*4 + 30 = 170.
  auto m = make(o);
  EXPECT_DOUBLE_EQ(m->flops_per_example(6), 940);
  EXPECT_DOUBLE_EQ(m->flops_per_example(2), 340);
}

TEST(StudentTest, ParameterCountIsTheSumOfNumel) {
  auto m = make(tiny_bilstm("max"));
  // embedding 40*6; per direction 4H*(E+H) + 2*4H = 20*11 + 40 = 260; hidden 10*5+5; classifier 5*3+3.
  EXPECT_EQ(m->parameter_count(), 240 + 2 * 260 + 55 + 18);
}

// Not a check: one timing of the default BiLSTM (E = H = 300, BERT vocabulary) on an SST-2-sized
// batch, so that training runs can be budgeted. Logged, never asserted.
TEST(StudentSlowTest, BiLstmDefaultSizeStepTime) {
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  kd::BiLstmOptions o;
  o.vocab_size = 30522;
  o.num_classes = 2;
  torch::manual_seed(1);
  kd::BiLstm m(o);
  m->train();
  auto ids = torch::randint(5, o.vocab_size, {64, 12}, torch::kInt64);
  auto mask = torch::ones({64, 12}, torch::kInt64);
  mask.slice(0, 0, 32).slice(1, 9, 12).zero_();  // half the rows 9 tokens long
  auto step = [&] {
    m->zero_grad();
    m->forward(ids, mask).logsumexp(1).mean().backward();
  };
  step();  // warm-up
  const int reps = 5;
  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();  // CPU time too: a busy machine inflates the wall time
  for (int i = 0; i < reps; ++i) step();
  const double cpu_ms = 1000.0 * static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC / reps;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
  torch::set_num_threads(threads);
  kd::log_info(kd::strf("BiLSTM E=300 H=300, batch 64 x 12 tokens, 1 thread: forward+backward %.1f ms wall, "
                        "%.1f ms CPU", ms, cpu_ms));
  SUCCEED();
}
