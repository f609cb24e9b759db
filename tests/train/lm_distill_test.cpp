// LmDistillTest: the pieces of kd distill-lm on tiny random decoders — the student's initialization from
// teacher layers and its size checks, forward_hidden against forward, perplexity against a direct
// computation, the top-k teacher cache (round trip, key mismatch, truncation, corruption), the config's
// bad values, and a few training steps in each mode (token, sequence, gkd) and for the baseline.
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
  const std::string base = "teacher: t.gguf\ndata: {train: a.txt, eval: b.txt}\n";
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
