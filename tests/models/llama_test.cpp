// LlamaTest: a tiny random decoder: the KV cache gives the same logits as one full pass, padding does
// not change real positions, a GGUF file written here (Q/K rows permuted as llama.cpp stores them)
// loads back to the same function, sampling options, and bad input. LlamaParityTest: the real
// SmolLM2-135M-Instruct against transformers on the same GGUF (tests/python/golden_llm.py): logits and
// every layer's hidden states on real prompts, a padded batch, and 64 greedy tokens.
#include "kd/models/llama.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/gguf.h"
#include "kd/io/safetensors.h"
#include "kd/text/bpe_tokenizer.h"
#include "../io/gguf_bytes.h"
#include "../test_paths.h"  // tests/ is not on the include path
#include "../tolerance.h"
#include "tiny_llama.h"

namespace fs = std::filesystem;
using torch::indexing::Slice;

namespace {

kd::LlamaOptions tiny_options() { return kd::test::tiny_llama_options(); }

kd::Llama tiny_model(bool tied = true) { return kd::test::tiny_llama(kd::test::tiny_llama_options(50, tied)); }

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

// How much of the float32 rounding bound (tests/tolerance.h) the worst element of `got` uses, for logits
// or hidden states after `depth` layers: at most 1 passes. The longest reduction is the MLP's
// intermediate width (or the hidden width, if larger).
double bound_used(const kd::LlamaOptions& o, int64_t depth, const torch::Tensor& got, const torch::Tensor& ref) {
  return kd::test::tolerance_ratio(got, ref, std::max(o.hidden_size, o.intermediate_size), depth);
}

TEST(LlamaTest, CachedDecodingEqualsOneFullPass) {
  auto m = tiny_model();
  torch::NoGradGuard g;
  const auto ids = torch::randint(0, 50, {2, 12}, torch::kInt64);
  const auto full = m->forward(ids).logits;  // (2, 12, 50)
  kd::KvCache cache;
  std::vector<torch::Tensor> parts = {m->forward(ids.index({Slice(), Slice(0, 5)}), {}, &cache).logits};
  for (int64_t t = 5; t < 12; ++t) parts.push_back(m->forward(ids.index({Slice(), Slice(t, t + 1)}), {}, &cache).logits);
  EXPECT_EQ(cache.length(), 12);
  // Other matrix shapes than one full pass, so other summation orders: equal to rounding, through the
  // layers and the head.
  const int64_t depth = m->options().num_layers + 1;
  const double used = bound_used(m->options(), depth, torch::cat(parts, 1), full);
  EXPECT_LE(used, 1.0);
  // The last position depends on the first token (the mask lets information through), by far more than
  // the rounding bound: a cache that lost or misplaced a position could not hide under it ...
  auto changed = ids.clone();
  changed[0][0] = (ids[0][0].item<int64_t>() + 1) % 50;
  const auto other = m->forward(changed).logits;
  const double first_token = bound_used(m->options(), depth, other[0][11], full[0][11]);
  EXPECT_GT(first_token, 100.0);
  std::printf("[ llama    ] KV cache vs one full pass: %.3g of the rounding bound; another first token: %.3g\n", used,
              first_token);
  // ... but the first position does not depend on later ones (causal).
  changed = ids.clone();
  changed[0][11] = (ids[0][11].item<int64_t>() + 1) % 50;
  EXPECT_EQ(max_diff(m->forward(changed).logits[0][0], full[0][0]), 0.0);
}

TEST(LlamaTest, RightPaddingLeavesRealPositionsUnchanged) {
  auto m = tiny_model();
  torch::NoGradGuard g;
  const auto a = torch::randint(0, 50, {1, 7}, torch::kInt64);
  auto padded = torch::cat({a, torch::zeros({1, 3}, torch::kInt64)}, 1);
  auto mask = torch::cat({torch::ones({1, 7}, torch::kInt64), torch::zeros({1, 3}, torch::kInt64)}, 1);
  const auto alone = m->forward(a).logits;
  const auto with_pad = m->forward(padded, mask).logits.index({Slice(), Slice(0, 7)});
  // Other matrix shapes, other rounding.
  EXPECT_LE(bound_used(m->options(), m->options().num_layers + 1, with_pad, alone), 1.0);
  EXPECT_TRUE(torch::isfinite(m->forward(padded, mask).logits).all().item<bool>());
}

// Writes `m` as a GGUF file (F32 tensors, Q/K rows in llama.cpp's interleaved order).
// `block_count` (-1: the model's) is what the metadata claims.
std::string write_gguf(kd::Llama m, const fs::path& path, int64_t tokenizer_tokens, int64_t block_count = -1) {
  const auto& o = m->options();
  kd::test::GgufBytes g;
  g.add_string("general.architecture", "llama");
  g.add_u32("llama.block_count", block_count < 0 ? o.num_layers : block_count);
  g.add_u32("llama.context_length", o.max_position);
  g.add_u32("llama.embedding_length", o.hidden_size);
  g.add_u32("llama.feed_forward_length", o.intermediate_size);
  g.add_u32("llama.attention.head_count", o.num_heads);
  g.add_u32("llama.attention.head_count_kv", o.num_kv_heads);
  g.add_f32("llama.rope.freq_base", static_cast<float>(o.rope_theta));
  g.add_f32("llama.attention.layer_norm_rms_epsilon", static_cast<float>(o.rms_eps));
  std::vector<std::string> tokens;
  for (int64_t i = 0; i < tokenizer_tokens; ++i) tokens.push_back("t" + std::to_string(i));
  g.add_strings("tokenizer.ggml.tokens", tokens);
  auto add = [&](const std::string& name, torch::Tensor w, int64_t rope_heads = 0) {
    if (rope_heads) w = w.view({rope_heads, 2, w.size(0) / rope_heads / 2, w.size(1)}).transpose(1, 2).reshape(w.sizes());
    w = w.contiguous();
    std::vector<uint64_t> ne(w.sizes().rbegin(), w.sizes().rend());
    g.data.resize((g.data.size() + 31) / 32 * 32, '\0');
    g.tensors.push_back({name, 0, ne, g.data.size()});
    g.data.append(reinterpret_cast<const char*>(w.data_ptr<float>()), w.numel() * 4);
  };
  add("token_embd.weight", m->embed_tokens->weight.detach());
  add("output_norm.weight", m->norm->weight.detach());
  for (int64_t i = 0; i < o.num_layers; ++i) {
    auto* l = m->layers[i]->as<kd::LlamaLayerImpl>();
    const std::string p = "blk." + std::to_string(i) + ".";
    add(p + "attn_norm.weight", l->input_layernorm->weight.detach());
    add(p + "attn_q.weight", l->self_attn->q_proj->weight.detach(), o.num_heads);
    add(p + "attn_k.weight", l->self_attn->k_proj->weight.detach(), o.num_kv_heads);
    add(p + "attn_v.weight", l->self_attn->v_proj->weight.detach());
    add(p + "attn_output.weight", l->self_attn->o_proj->weight.detach());
    add(p + "ffn_norm.weight", l->post_attention_layernorm->weight.detach());
    add(p + "ffn_gate.weight", l->mlp->gate_proj->weight.detach());
    add(p + "ffn_up.weight", l->mlp->up_proj->weight.detach());
    add(p + "ffn_down.weight", l->mlp->down_proj->weight.detach());
  }
  std::ofstream(path, std::ios::binary) << g.bytes();
  return path.string();
}

TEST(LlamaTest, GgufRoundTripUndoesTheRopePermutation) {
  const auto dir = kd::test::temp_dir("llama_gguf");
  auto m = tiny_model();
  auto loaded = kd::load_llama_gguf(write_gguf(m, dir / "tiny.gguf", 50));
  EXPECT_TRUE(loaded->options().tie_embeddings);
  EXPECT_EQ(loaded->options().num_kv_heads, 2);
  torch::NoGradGuard g;
  const auto ids = torch::randint(0, 50, {1, 9}, torch::kInt64);
  EXPECT_EQ(max_diff(loaded->forward(ids).logits, m->forward(ids).logits), 0.0);
}

TEST(LlamaTest, VocabularyMismatchAndMissingTensorsAreFormatErrors) {
  const auto dir = kd::test::temp_dir("llama_gguf_bad");
  auto m = tiny_model();
  const auto path = write_gguf(m, dir / "vocab.gguf", 49);
  try {
    kd::load_llama_gguf(path);
    FAIL() << "no exception";
  } catch (const kd::FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("49 tokens"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
  // More layers in the metadata than tensors in the file: refused before the model is built.
  for (const int64_t layers : {3, 1000000000}) {
    const auto p = write_gguf(m, dir / "layers.gguf", 50, layers);
    try {
      kd::load_llama_gguf(p);
      FAIL() << "no exception for " << layers << " layers";
    } catch (const kd::FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("llama.block_count"), std::string::npos) << e.what();
    }
  }
}

TEST(LlamaTest, GenerationOptionsAndLimits) {
  auto m = tiny_model();
  const std::vector<int64_t> prompt = {1, 2, 3};
  kd::GenerateOptions greedy;
  greedy.max_new_tokens = 10;
  const auto a = m->generate(prompt, greedy);
  EXPECT_EQ(a.size(), 10u);
  // Greedy continuation equals argmax of full passes over the growing sequence.
  std::vector<int64_t> seq = prompt;
  torch::NoGradGuard g;
  for (size_t k = 0; k < a.size(); ++k) {
    const auto logits = m->forward(torch::tensor(seq).unsqueeze(0)).logits;
    EXPECT_EQ(logits[0][-1].argmax().item<int64_t>(), a[k]) << k;
    seq.push_back(a[k]);
  }
  // top_k = 1 is greedy whatever the temperature; a fixed seed repeats; eos stops; the callback streams.
  kd::GenerateOptions top1 = greedy;
  top1.temperature = 1.5;
  top1.top_k = 1;
  EXPECT_EQ(m->generate(prompt, top1), a);
  kd::GenerateOptions sample = greedy;
  sample.temperature = 1.0;
  sample.top_p = 0.9;
  sample.seed = 42;
  EXPECT_EQ(m->generate(prompt, sample), m->generate(prompt, sample));
  kd::GenerateOptions stop = greedy;
  stop.eos_id = a[2];
  EXPECT_LE(m->generate(prompt, stop).size(), 3u);
  std::vector<int64_t> streamed;
  m->generate(prompt, greedy, [&](int64_t t) { streamed.push_back(t); return streamed.size() < 4; });
  EXPECT_EQ(streamed, std::vector<int64_t>(a.begin(), a.begin() + 4));
  // Context and vocabulary limits.
  kd::GenerateOptions too_long = greedy;
  too_long.max_new_tokens = 62;
  EXPECT_THROW(m->generate(prompt, too_long), kd::DataError);
  EXPECT_THROW(m->generate({1, 50}, greedy), kd::DataError);
  EXPECT_THROW(m->forward(torch::zeros({1, 65}, torch::kInt64)), kd::DataError);
}

TEST(LlamaTest, TopPKeepsTheSmallestSetReachingP) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const auto logits = torch::log(torch::tensor({0.5, 0.3, 0.15, 0.05}, torch::kFloat32));
  kd::GenerateOptions o;
  o.temperature = 1.0;
  o.top_p = 0.8;  // {0.5, 0.3} reach 0.8: tokens 2 and 3 must never come
  std::set<int64_t> seen;
  for (int i = 0; i < 300; ++i) seen.insert(kd::sample_next_token(logits, o, gen));
  EXPECT_EQ(seen, (std::set<int64_t>{0, 1}));
}

TEST(LlamaTest, InvalidOptionsAreConfigErrors) {
  auto o = tiny_options();
  o.num_kv_heads = 3;
  EXPECT_THROW(kd::Llama{o}, kd::ConfigError);
  o = tiny_options();
  o.num_heads = 5;
  EXPECT_THROW(kd::Llama{o}, kd::ConfigError);
}

// ---------------------------------------------------------------------------------------------------
// Parity with transformers on the real checkpoint

std::string golden_file(const std::string& name) {
  const std::string p = kd::test::golden("llm/" + name);
  if (!fs::exists(p)) throw std::runtime_error(p + " missing: run the golden_references test (make_golden.py) first");
  return p;
}

class LlamaParityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new kd::Llama(kd::load_llama_gguf(kd::test::llm_gguf()));
    golden_ = new kd::SafeTensorsFile(golden_file("model_outputs.safetensors"));
    prompts_ = new nlohmann::json(kd::read_json(golden_file("model_prompts.json"))["prompts"]);
  }
  static void TearDownTestSuite() {
    delete model_;
    delete golden_;
    delete prompts_;
  }
  static kd::Llama* model_;
  static kd::SafeTensorsFile* golden_;
  static nlohmann::json* prompts_;
};
kd::Llama* LlamaParityTest::model_ = nullptr;
kd::SafeTensorsFile* LlamaParityTest::golden_ = nullptr;
nlohmann::json* LlamaParityTest::prompts_ = nullptr;

TEST_F(LlamaParityTest, LogitsAndHiddenStatesMatchTransformers) {
  const auto tok = kd::BpeTokenizer::from_gguf(kd::test::llm_gguf());
  torch::NoGradGuard g;
  for (auto it = prompts_->begin(); it != prompts_->end(); ++it) {
    SCOPED_TRACE(it.key());
    const auto ids = it.value()["ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(tok.encode(it.value()["text"].get<std::string>()), ids);
    const auto out = (*model_)->forward(torch::tensor(ids).unsqueeze(0), {}, nullptr, true);
    const auto& o = (*model_)->options();
    const auto ref_logits = golden_->load(it.key() + ".logits");
    const double d = max_diff(out.logits[0], ref_logits), used = bound_used(o, o.num_layers + 1, out.logits[0], ref_logits);
    std::cout << "[ parity ] " << it.key() << ": " << ids.size() << " tokens, logits max abs diff " << d
              << ", " << used << " of the rounding bound\n";
    EXPECT_LE(used, 1.0);
    // hidden.i: the residual stream after i layers (hidden.0: the embeddings).
    double worst = 0, nearest_wrong_layer = INFINITY;
    for (int64_t i = 0; i < o.num_layers; ++i) {
      const std::string name = "hidden." + std::to_string(i);
      const auto ref = golden_->load(it.key() + "." + name);
      const double used_i = bound_used(o, i, out.feature(name)[0], ref);
      EXPECT_LE(used_i, 1.0) << name;
      worst = std::max(worst, used_i);
      // The bound is far below what a wrong layer would give: the previous layer's output is more than 10
      // bounds away (at least 70 for SmolLM2, whose deep layers each change the residual stream little
      // next to its massive activations), while the computation uses less than 0.1 of one.
      if (i > 0) {
        const double wrong = bound_used(o, i, golden_->load(it.key() + ".hidden." + std::to_string(i - 1)), ref);
        EXPECT_GT(wrong, 10.0) << name;
        nearest_wrong_layer = std::min(nearest_wrong_layer, wrong);
      }
    }
    std::cout << "[ parity ] " << it.key() << ": hidden states use at most " << worst
              << " of the rounding bound; the previous layer's output would use " << nearest_wrong_layer << "\n";
  }
}

TEST_F(LlamaParityTest, PaddedBatchMatchesTransformers) {
  torch::NoGradGuard g;
  const auto ids = golden_->load("batch.ids");    // (2, T) int64
  const auto mask = golden_->load("batch.mask");  // (2, T) int64, right padding
  const auto logits = (*model_)->forward(ids, mask).logits;
  const auto ref = golden_->load("batch.logits");
  // Only real positions are compared; padded ones are unspecified.
  const auto real = mask.to(torch::kBool).unsqueeze(-1).expand_as(ref);
  const double d = (logits - ref).abs().masked_select(real).max().item<double>();
  const auto& o = (*model_)->options();
  const double used = bound_used(o, o.num_layers + 1, logits.masked_select(real), ref.masked_select(real));
  std::cout << "[ parity ] padded batch: logits max abs diff " << d << ", " << used << " of the rounding bound\n";
  EXPECT_LE(used, 1.0);
}

TEST_F(LlamaParityTest, Greedy64TokensMatchTokenForToken) {
  for (const std::string name : {"chat", "story"}) {
    const auto& p = (*prompts_)[name];
    kd::GenerateOptions o;
    o.max_new_tokens = static_cast<int64_t>(p["greedy"].size());
    const auto got = (*model_)->generate(p["ids"].get<std::vector<int64_t>>(), o);
    EXPECT_EQ(got, p["greedy"].get<std::vector<int64_t>>()) << name;
  }
}

}  // namespace
