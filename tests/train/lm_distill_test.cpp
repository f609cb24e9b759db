// LmDistillTest: the pieces of kd distill-lm on tiny random decoders — the student's initialization from
// teacher layers and its size checks, forward_hidden against forward, perplexity against a direct
// computation, the top-k teacher cache (round trip, key mismatch, truncation, corruption), the config's
// bad values and declared targets, the curves' held-out slice (data.valid, else the unused tail of
// data.train, never data.eval) with its warnings, and a few training steps in each mode (token,
// sequence, gkd) and for the baseline.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "kd/data/token_stream.h"
#include "kd/error.h"
#include "kd/eval/perplexity.h"
#include "kd/io/atomic_file.h"
#include "kd/knowledge/lm_topk_cache.h"
#include "kd/models/lm_student.h"
#include "kd/train/lm_trainer.h"
#include "../expect_error.h"
#include "../models/tiny_llama.h"
#include "../test_paths.h"

namespace fs = std::filesystem;

namespace kd {
namespace {

// The shared tiny decoder (tests/models/tiny_llama.h) with a 40-token vocabulary, frozen as a teacher is.
Llama tiny_teacher(int64_t layers = 4) {
  auto o = test::tiny_llama_options(/*vocab=*/40);
  o.num_layers = layers;
  Llama m = test::tiny_llama(o, /*seed=*/11);
  for (auto& p : m->parameters()) p.requires_grad_(false);
  return m;
}

torch::Tensor windows(int64_t n, int64_t t, int64_t vocab = 40) {
  torch::manual_seed(12);
  return torch::randint(0, vocab, {n, t}, torch::kInt64);
}

TEST(LmDistillTest, StudentCopiesTheChosenTeacherLayers) {
  auto teacher = tiny_teacher();
  LmStudentOptions o;
  o.num_layers = 2;
  EXPECT_EQ(o.resolved_layers(4), (std::vector<int64_t>{0, 3}));
  LmStudentOptions three;
  three.num_layers = 3;
  EXPECT_EQ(three.resolved_layers(30), (std::vector<int64_t>{0, 15, 29}));
  o.teacher_layers = {2, 1};
  auto s = make_lm_student(teacher, o);
  auto tp = teacher->named_parameters();
  for (const auto& p : s->named_parameters()) {
    std::string name = p.key();
    if (name.rfind("layers.0.", 0) == 0) name = "layers.2." + name.substr(9);
    if (name.rfind("layers.1.", 0) == 0) name = "layers.1." + name.substr(9);
    EXPECT_TRUE(torch::equal(p.value(), tp[name])) << p.key();
  }
  EXPECT_EQ(count_parameters(s) - count_non_embedding_parameters(s), 40 * s->options().hidden_size);
  EXPECT_LT(count_non_embedding_parameters(s), count_non_embedding_parameters(teacher));
}

TEST(LmDistillTest, StudentSettingsAreChecked) {
  auto teacher = tiny_teacher();
  LmStudentOptions o;
  o.num_layers = 4;  // not smaller
  EXPECT_THROW(make_lm_student(teacher, o), ConfigError);
  o.num_layers = 2;
  o.teacher_layers = {0, 4};
  EXPECT_THROW(make_lm_student(teacher, o), ConfigError);
  o.teacher_layers = {0};
  EXPECT_THROW(make_lm_student(teacher, o), ConfigError);
  o.teacher_layers = {};
  o.init = "copy";
  EXPECT_THROW(make_lm_student(teacher, o), ConfigError);
}

TEST(LmDistillTest, ForwardHiddenAndHeadGiveTheLogits) {
  auto m = tiny_teacher();
  const auto ids = windows(2, 9);
  const auto logits = m->forward(ids).logits;
  const auto h = m->forward_hidden(ids);
  EXPECT_LT((torch::nn::functional::linear(h, m->head_weight()) - logits).abs().max().item<double>(), 1e-5);
}

TEST(LmDistillTest, PerplexityIsExpOfTheMeanNextTokenLoss) {
  auto m = tiny_teacher();
  std::vector<int64_t> stream;
  const auto w = windows(1, 23);
  for (int64_t i = 0; i < 23; ++i) stream.push_back(w[0][i].item<int64_t>());
  PerplexityOptions o;
  o.seq_len = 8;  // windows 8 + 8 + 7
  o.batch_size = 2;
  o.chunk = 5;
  o.progress = false;
  const auto r = evaluate_perplexity(m, stream, o);
  double nll = 0;
  int64_t n = 0;
  for (int64_t a = 0; a < 23; a += 8) {
    const int64_t e = std::min<int64_t>(23, a + 8);
    const auto ids = w.slice(1, a, e);
    const auto lp = torch::log_softmax(m->forward(ids).logits, -1);
    for (int64_t t = 0; t + 1 < e - a; ++t, ++n) nll -= lp[0][t][ids[0][t + 1].item<int64_t>()].item<double>();
  }
  EXPECT_EQ(r.scored_tokens, n);
  EXPECT_EQ(n, 20);
  EXPECT_NEAR(r.perplexity, std::exp(nll / n), 1e-4 * r.perplexity);
}

TEST(LmDistillTest, TopKCacheRoundTripAndChecks) {
  auto teacher = tiny_teacher();
  const auto dir = test::temp_dir("lm_topk_cache");
  const auto w = windows(5, 9);
  const std::string gguf_stand_in = (dir / "teacher.bin").string();
  write_file_atomic(gguf_stand_in, "weights");
  LmCacheKey key;
  key.teacher = "t";
  key.tokenizer = "tok";
  key.data = "d";
  key.windows = 5;
  key.seq_len = 9;
  key.top_k = 6;
  key.temperature = 2.0;
  const std::string path = (dir / "topk.kdlm").string();
  LmTopkCache::write(path, teacher, w, key, 2, 7, false);
  const auto c = LmTopkCache::open(path, key);
  EXPECT_EQ(c.rows(), 5 * 8);
  const auto idx = torch::tensor({3, 1}, torch::kInt64);
  const auto t = c.targets(idx);
  torch::NoGradGuard g;
  const auto lp = torch::log_softmax(teacher->forward(w.index_select(0, idx)).logits.slice(1, 0, -1) / 2.0, -1)
                      .reshape({-1, 40});  // (2 · 8, V)
  auto [top, ids] = lp.topk(6, 1);
  EXPECT_TRUE(torch::equal(t.topk_ids, ids));
  EXPECT_LT((t.topk_logprobs - top).abs().max().item<double>(), 5e-3);  // fp16
  // The mass outside the top k, summed directly (1 − Σ top would cancel when the top k hold nearly all).
  const auto rest = lp.to(torch::kDouble).scatter(1, ids, -INFINITY).logsumexp(1);
  EXPECT_LT((t.rest_logprob - rest).abs().max().item<double>(), 1e-4);

  auto other = key;
  other.top_k = 8;
  EXPECT_THROW(LmTopkCache::open(path, other), ConfigError);
  other = key;
  other.teacher = "another";
  EXPECT_THROW(LmTopkCache::open(path, other), ConfigError);
  other = key;
  other.data = "other text";
  EXPECT_THROW(LmTopkCache::open(path, other), DataError);
  EXPECT_THROW(LmTopkCache::open((dir / "missing.kdlm").string(), key), IoError);

  std::string bytes = read_file(path);
  write_file_atomic((dir / "truncated.kdlm").string(), bytes.substr(0, bytes.size() - 10));
  EXPECT_THROW(LmTopkCache::open((dir / "truncated.kdlm").string(), key), FormatError);
  bytes[bytes.size() - 5] ^= 0x40;
  write_file_atomic((dir / "flipped.kdlm").string(), bytes);
  EXPECT_THROW(LmTopkCache::open((dir / "flipped.kdlm").string(), key), FormatError);
}

TEST(LmDistillTest, ConfigBadValuesAreConfigErrors) {
  const std::string base = "teacher: t.gguf\ndata: {train: a.txt, eval: b.txt, train_tokens: 1024}\n";
  auto load = [&](const std::string& extra, const std::vector<std::string>& overrides = {}) {
    auto c = Config::from_string(base + extra, "<test>", overrides);
    return LmDistillOptions::from(c.root());
  };
  EXPECT_NO_THROW(load(""));
  try {
    load("distill: {divergence: kl}\n");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("known divergences: fkl, rkl, jsd, tvd, skew_kl, skew_rkl"), std::string::npos);
  }
  EXPECT_THROW(load("distill: {chunk: 0}\n"), ConfigError);
  EXPECT_THROW(load("distill: {mode: gkd, gkd_lambda: 1.5}\n"), ConfigError);
  EXPECT_THROW(load("distill: {mode: online}\n"), ConfigError);
  EXPECT_THROW(load("distill: {teacher_source: disk}\n"), ConfigError);
  EXPECT_THROW(load("distill: {divergence: jsd, mix: 0}\n"), ConfigError);
  EXPECT_THROW(load("", {"data.seq_len=1"}), ConfigError);
  // The optimizer keys are kd distill's (train.warmup, not warmup_ratio), with the same range checks.
  EXPECT_DOUBLE_EQ(load("train: {warmup: 0.2, lr: 3.0e-4}\n").optim.warmup_ratio, 0.2);
  EXPECT_DOUBLE_EQ(load("").optim.lr, 1e-3);
  try {
    load("train: {warmup: 1.5}\n");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.warmup"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load("train: {weight_decay: -0.1}\n"), ConfigError);
}

// report.targets is read with the LM keys; every key of the section counts as used.
TEST(LmDistillTest, ConfigDeclaresTargets) {
  const std::string base = "teacher: t.gguf\ndata: {train: a.txt, eval: b.txt, train_tokens: 1024}\n";
  auto c = Config::from_string(base + "report: {targets: {generate_speedup: 3, non_embedding_ratio: 0.25}}\n");
  const auto o = LmDistillOptions::from(c.root());
  EXPECT_NO_THROW(c.check_all_used());
  ASSERT_EQ(o.targets.size(), 2u);
  EXPECT_EQ(o.targets[0].key, "generate_speedup");
  EXPECT_DOUBLE_EQ(o.targets[0].value, 3.0);
  EXPECT_EQ(o.targets[1].key, "non_embedding_ratio");
  auto none = Config::from_string(base);
  EXPECT_TRUE(LmDistillOptions::from(none.root()).targets.empty());
  EXPECT_NO_THROW(none.check_all_used());
  test::expect_error<ConfigError>(
      [&] {
        auto bad = Config::from_string(base + "report: {targets: {speedup_b1: 3}}\n");
        LmDistillOptions::from(bad.root());
      },
      {"unknown target 'speedup_b1'"});
  test::expect_error<ConfigError>(
      [&] {
        auto bad = Config::from_string(base + "report: {targets: {generate_speedup: 0}}\n");
        LmDistillOptions::from(bad.root());
      },
      {"report.targets.generate_speedup", "> 0"});
  // A key beside targets is not understood.
  auto extra = Config::from_string(base + "report: {targets: {generate_speedup: 3}, title: x}\n");
  LmDistillOptions::from(extra.root());
  EXPECT_THROW(extra.check_all_used(), ConfigError);
}

// The shipped config declares the README's targets and uses every key.
TEST(LmDistillTest, Wikitext2ConfigDeclaresTheReadmeTargets) {
  auto c = Config::load(test::source_dir() + "/configs/wikitext2_distill_lm.yaml");
  const auto o = LmDistillOptions::from(c.root());
  EXPECT_NO_THROW(c.check_all_used());
  ASSERT_EQ(o.targets.size(), 3u);
  EXPECT_EQ(o.targets[0].key, "non_embedding_ratio");
  EXPECT_DOUBLE_EQ(o.targets[0].value, 0.25);
  EXPECT_EQ(o.targets[1].key, "perplexity_below_baseline");
  EXPECT_DOUBLE_EQ(o.targets[1].value, 1.0);
  EXPECT_EQ(o.targets[2].key, "generate_speedup");
  EXPECT_DOUBLE_EQ(o.targets[2].value, 3.0);
  EXPECT_TRUE(o.valid_file.empty());  // the curves use the tail of wiki.valid after the training prefix
  EXPECT_GT(o.train_tokens, 0);
}

// Curves need held-out text: with all of data.train used for training, data.valid must be named.
TEST(LmDistillTest, ConfigWithoutHeldOutTextIsConfigError) {
  auto load = [](const std::string& data, const std::string& extra = "") {
    auto c = Config::from_string("teacher: t.gguf\ndata: {train: a.txt, eval: b.txt" + data + "}\n" + extra);
    auto o = LmDistillOptions::from(c.root());
    c.check_all_used();
    return o;
  };
  test::expect_error<ConfigError>([&] { load(""); }, {"data.valid", "no unused part"});
  EXPECT_EQ(load(", valid: v.txt").valid_file, "v.txt");
  EXPECT_NO_THROW(load(", train_tokens: 100"));
  EXPECT_NO_THROW(load("", "train: {curve_points: 0}\n"));
  EXPECT_NO_THROW(load("", "train: {curve_eval_tokens: 0}\n"));
  EXPECT_THROW(load(", valid: v.txt", "train: {curve_eval_tokens: -1}\n"), ConfigError);
}

// The slice: data.valid's start, else the train file's tokens after the training prefix; too few tokens
// in either is a ConfigError naming data.valid, and the evaluation file is never read for it.
TEST(LmDistillTest, HeldOutSliceIsNeverTheEvalFile) {
  LmDistillOptions o;
  o.train_file = "train.txt";
  o.eval_file = "eval.txt";
  o.train_tokens = 100;
  o.curve_points = 4;
  o.curve_eval_tokens = 30;
  std::vector<std::string> read;
  int64_t valid_size = 50;
  const LmTokenizeFile tokenize = [&](const std::string& path, int64_t max_tokens) {
    read.push_back(path);
    const int64_t n = path == "eval.txt" ? 1000 : valid_size;
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < (max_tokens > 0 ? std::min(n, max_tokens) : n); ++i) ids.push_back(1000 + i);
    return ids;
  };
  std::vector<int64_t> train_read(130);
  for (int64_t i = 0; i < 130; ++i) train_read[i] = i;

  // The unused tail of data.train.
  auto h = choose_lm_held_out(o, train_read, tokenize);
  EXPECT_EQ(h.slice.source, "data.train (unused tail)");
  EXPECT_EQ(h.slice.file, "train.txt");
  EXPECT_EQ(h.slice.begin, 100);
  EXPECT_EQ(h.slice.end, 130);
  ASSERT_EQ(h.tokens.size(), 30u);
  EXPECT_EQ(h.tokens.front(), 100);
  EXPECT_EQ(h.tokens.back(), 129);
  EXPECT_TRUE(read.empty());

  // Too short a tail: an error naming data.valid, no fall-back to the evaluation file.
  train_read.resize(120);
  test::expect_error<ConfigError>([&] { choose_lm_held_out(o, train_read, tokenize); },
                                  {"data.valid", "30 held-out tokens", "has 20"});
  EXPECT_TRUE(read.empty());

  // data.valid, when named, is used (its first curve_eval_tokens), whatever the train file holds.
  o.valid_file = "valid.txt";
  h = choose_lm_held_out(o, train_read, tokenize);
  EXPECT_EQ(h.slice.source, "data.valid");
  EXPECT_EQ(h.slice.file, "valid.txt");
  EXPECT_EQ(h.slice.begin, 0);
  EXPECT_EQ(h.slice.end, 30);
  ASSERT_EQ(h.tokens.size(), 30u);
  EXPECT_EQ(h.tokens.front(), 1000);
  EXPECT_EQ(read, (std::vector<std::string>{"valid.txt"}));
  valid_size = 10;
  test::expect_error<ConfigError>([&] { choose_lm_held_out(o, train_read, tokenize); },
                                  {"data.valid", "'valid.txt' has 10 tokens"});

  // No curve perplexity asked for: no slice, nothing read.
  read.clear();
  o.curve_points = 0;
  h = choose_lm_held_out(o, train_read, tokenize);
  EXPECT_TRUE(h.slice.source.empty());
  EXPECT_TRUE(h.tokens.empty());
  EXPECT_TRUE(read.empty());
}

TEST(LmDistillTest, SelectionOnTheReportedSetIsWarned) {
  const auto dir = test::temp_dir("lm_selection_warnings");
  for (const char* f : {"train.txt", "valid.txt", "eval.txt"}) write_file_atomic((dir / f).string(), "text\n");
  LmDistillOptions o;
  o.train_file = (dir / "train.txt").string();
  o.eval_file = (dir / "eval.txt").string();
  LmHeldOutSlice tail{"data.train (unused tail)", o.train_file, 100, 130};
  EXPECT_TRUE(lm_selection_warnings(o, tail).empty());

  o.valid_file = (dir / "valid.txt").string();
  LmHeldOutSlice valid{"data.valid", o.valid_file, 0, 30};
  EXPECT_TRUE(lm_selection_warnings(o, valid).empty());

  // data.valid is data.eval, spelled differently.
  o.valid_file = (dir / "." / "eval.txt").string();
  valid.file = o.valid_file;
  auto w = lm_selection_warnings(o, valid);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("selection on the reported set"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("data.valid and data.eval are the same file"), std::string::npos) << w[0];

  // The held-out part of data.train is in data.eval (and so is the training text).
  o.valid_file.clear();
  o.train_file = o.eval_file;
  tail.file = o.train_file;
  w = lm_selection_warnings(o, tail);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[0].find("selection on the reported set"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("100–130"), std::string::npos) << w[0];
  EXPECT_NE(w[1].find("trained on the reported set"), std::string::npos) << w[1];
  // Files that do not exist yet compare by path.
  o.train_file = "a.txt";
  o.eval_file = "./a.txt";
  EXPECT_EQ(lm_selection_warnings(o, {}).size(), 1u);
}

// A few steps of each mode reduce (or at least change) the objective without NaN.
TEST(LmDistillTest, EveryModeTrains) {
  auto teacher = tiny_teacher();
  for (const std::string mode : {"token", "sequence", "gkd", "baseline"}) {
    LmDistillOptions o;
    o.mode = mode == "baseline" ? "token" : mode;
    o.batch_size = 2;
    o.epochs = 6;
    o.optim.lr = 3e-3;
    o.chunk = 7;
    o.prompt_tokens = 4;
    o.new_tokens = 5;
    o.gkd_lambda = 0.5;
    o.curve_points = 3;
    o.progress = false;
    o.divergence.kind = Divergence::Jsd;
    LmStudentOptions so;
    so.num_layers = 2;
    auto student = make_lm_student(teacher, so);
    LmTrainSetup s;
    s.options = &o;
    s.teacher = teacher;
    s.windows = windows(4, 10);
    s.baseline = mode == "baseline";
    const auto held = windows(1, 20)[0];
    s.curve_stream.assign(held.data_ptr<int64_t>(), held.data_ptr<int64_t>() + 20);
    const auto r = train_lm_student(student, s);
    EXPECT_EQ(r.steps, 12) << mode;
    ASSERT_EQ(r.curve.size(), 3u) << mode;
    for (const auto& p : r.curve) {
      EXPECT_TRUE(std::isfinite(p.train_loss)) << mode;
      EXPECT_TRUE(std::isfinite(p.eval_perplexity)) << mode;
    }
    if (mode == "token" || mode == "baseline") {
      EXPECT_LT(r.curve.back().train_loss, r.curve.front().train_loss) << mode;
    }
  }
}

}  // namespace
}  // namespace kd
