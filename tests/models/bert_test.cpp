// BertTest: the encoder on a tiny random configuration (feature shapes, masking, dropout modes,
// config.json and weight-loading errors). BertParityTest: the real all-MiniLM-L6-v2 checkpoint against
// Hugging Face outputs written by tests/python/golden_bert.py.
#include "kd/models/bert.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/safetensors.h"
#include "../test_paths.h"  // tests/ is not on the include path
#include "../tolerance.h"

#include "expect_error.h"

namespace fs = std::filesystem;

namespace {

kd::BertOptions tiny_options() {
  kd::BertOptions o;
  o.vocab_size = 50;
  o.hidden_size = 16;
  o.num_hidden_layers = 2;
  o.num_attention_heads = 4;
  o.intermediate_size = 32;
  o.max_position_embeddings = 24;
  return o;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return INFINITY;
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

using kd::test::expect_error;

// A small batch: row 0 has 7 tokens, row 1 has 4 then padding; pad positions hold non-pad ids on
// purpose, so that only the mask can keep them out.
struct TinyBatch {
  torch::Tensor ids, types, mask;  // (2, 7) each
};
TinyBatch tiny_batch() {
  TinyBatch b;
  b.ids = torch::tensor({{2, 11, 12, 13, 14, 15, 3}, {2, 21, 22, 3, 41, 42, 43}}, torch::kInt64);
  b.types = torch::tensor({{0, 0, 0, 0, 1, 1, 1}, {0, 0, 0, 0, 0, 0, 0}}, torch::kInt64);
  b.mask = torch::tensor({{1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0, 0}}, torch::kInt64);
  return b;
}

std::vector<std::pair<std::string, torch::Tensor>> state_of(torch::nn::Module& m, const std::string& prefix = "") {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(prefix + p.key(), p.value().detach());
  return out;
}

std::string write_config(const fs::path& dir, const std::string& text, const std::string& name = "config.json") {
  const std::string path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Structure and features

TEST(BertTest, ParameterNamesFollowHuggingFace) {
  kd::BertModel model(tiny_options());
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) names.insert(p.key());
  std::set<std::string> want = {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                                "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
                                "embeddings.LayerNorm.bias", "pooler.dense.weight", "pooler.dense.bias"};
  for (int i = 0; i < 2; ++i) {
    const std::string l = "encoder.layer." + std::to_string(i) + ".";
    for (const char* lin : {"attention.self.query", "attention.self.key", "attention.self.value",
                            "attention.output.dense", "intermediate.dense", "output.dense"}) {
      want.insert(l + lin + ".weight");
      want.insert(l + lin + ".bias");
    }
    for (const char* ln : {"attention.output.LayerNorm", "output.LayerNorm"}) {
      want.insert(l + ln + ".weight");
      want.insert(l + ln + ".bias");
    }
  }
  EXPECT_EQ(names, want);

  kd::BertClassifier cls(tiny_options(), 3);
  std::set<std::string> cls_names;
  for (const auto& p : cls->named_parameters()) cls_names.insert(p.key());
  std::set<std::string> cls_want = {"classifier.weight", "classifier.bias"};
  for (const auto& n : want) cls_want.insert("bert." + n);
  EXPECT_EQ(cls_names, cls_want);
  EXPECT_EQ(cls->classifier->weight.sizes(), (std::vector<int64_t>{3, 16}));
}

TEST(BertTest, FeatureShapes) {
  torch::manual_seed(1);
  kd::BertModel model(tiny_options());
  model->eval();
  const auto b = tiny_batch();
  const auto out = model->forward(b.ids, b.types, b.mask, {true, true});
  EXPECT_FALSE(out.logits.defined());
  EXPECT_EQ(out.feature("last_hidden").sizes(), (std::vector<int64_t>{2, 7, 16}));
  EXPECT_EQ(out.feature("pooled").sizes(), (std::vector<int64_t>{2, 16}));
  for (int i = 0; i <= 2; ++i) EXPECT_EQ(out.feature("hidden." + std::to_string(i)).sizes(), (std::vector<int64_t>{2, 7, 16}));
  for (int i = 1; i <= 2; ++i) EXPECT_EQ(out.feature("attn." + std::to_string(i)).sizes(), (std::vector<int64_t>{2, 4, 7, 7}));
  EXPECT_EQ(out.features.count("attn.0"), 0u);
  EXPECT_EQ(out.features.count("hidden.3"), 0u);
  EXPECT_EQ(out.features.size(), 2u + 3u + 2u);
  EXPECT_TRUE(torch::equal(out.feature("hidden.2"), out.feature("last_hidden")));

  const auto plain = model->forward(b.ids, b.types, b.mask);
  EXPECT_EQ(plain.features.size(), 2u);  // last_hidden, pooled
  EXPECT_THROW(plain.feature("hidden.0"), kd::ConfigError);

  auto o = tiny_options();
  o.add_pooling_layer = false;
  kd::BertModel no_pool(o);
  const auto np = no_pool->forward(b.ids, b.types, b.mask, {false, true});
  EXPECT_EQ(np.features.count("pooled"), 0u);
  EXPECT_EQ(np.features.size(), 3u);  // last_hidden, attn.1, attn.2

  kd::BertClassifier cls(tiny_options(), 5);
  cls->eval();
  const auto co = cls->forward(b.ids, b.types, b.mask, {true, false});
  EXPECT_EQ(co.logits.sizes(), (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(co.feature("hidden.2").sizes(), (std::vector<int64_t>{2, 7, 16}));
  EXPECT_EQ(cls->num_labels(), 5);
}

TEST(BertTest, AttentionIsAProbabilityOverRealTokensOnly) {
  torch::manual_seed(2);
  kd::BertModel model(tiny_options());
  model->eval();
  const auto b = tiny_batch();
  const auto out = model->forward(b.ids, b.types, b.mask, {false, true});
  for (int i = 1; i <= 2; ++i) {
    const auto a = out.feature("attn." + std::to_string(i));  // (2, 4, 7, 7)
    EXPECT_LT(max_abs_diff(a.sum(-1), torch::ones({2, 4, 7})), 1e-6);
    // exp(lowest - max) underflows to exactly zero.
    EXPECT_EQ(a.select(0, 1).narrow(-1, 4, 3).abs().max().item<float>(), 0.0f);
    EXPECT_GT(a.select(0, 0).narrow(-1, 4, 3).min().item<float>(), 0.0f);
  }
}

TEST(BertTest, PaddingDoesNotChangeRealTokens) {
  torch::manual_seed(3);
  kd::BertModel model(tiny_options());
  model->eval();
  const auto b = tiny_batch();
  const auto padded = model->forward(b.ids, b.types, b.mask, {true, true});
  // Row 1 alone, without its padding.
  const auto ids = b.ids.narrow(0, 1, 1).narrow(1, 0, 4), types = b.types.narrow(0, 1, 1).narrow(1, 0, 4);
  const auto alone = model->forward(ids, types, torch::ones({1, 4}, torch::kInt64), {true, true});
  for (int i = 0; i <= 2; ++i) {
    const std::string k = "hidden." + std::to_string(i);
    EXPECT_LT(max_abs_diff(padded.feature(k).narrow(0, 1, 1).narrow(1, 0, 4), alone.feature(k)), 1e-5) << k;
  }
  EXPECT_LT(max_abs_diff(padded.feature("attn.2").narrow(0, 1, 1).narrow(2, 0, 4).narrow(3, 0, 4),
                         alone.feature("attn.2")),
            1e-6);
  EXPECT_LT(max_abs_diff(padded.feature("pooled").narrow(0, 1, 1), alone.feature("pooled")), 1e-5);

  // Different ids at the padded positions change nothing either; the mask really is in effect.
  auto ids2 = b.ids.clone();
  ids2.narrow(1, 4, 3).select(0, 1).fill_(7);
  const auto other = model->forward(ids2, b.types, b.mask);
  EXPECT_LT(max_abs_diff(other.feature("last_hidden").narrow(0, 1, 1).narrow(1, 0, 4),
                         padded.feature("last_hidden").narrow(0, 1, 1).narrow(1, 0, 4)),
            1e-5);
  const auto unmasked = model->forward(b.ids, b.types, torch::ones_like(b.mask));
  EXPECT_GT(max_abs_diff(unmasked.feature("last_hidden").narrow(0, 1, 1).narrow(1, 0, 4),
                         padded.feature("last_hidden").narrow(0, 1, 1).narrow(1, 0, 4)),
            1e-3);
}

TEST(BertTest, FusedAndExplicitAttentionAgree) {
  torch::manual_seed(4);
  kd::BertModel model(tiny_options());
  model->eval();
  const auto b = tiny_batch();
  const auto fused = model->forward(b.ids, b.types, b.mask);
  const auto explicit_ = model->forward(b.ids, b.types, b.mask, {false, true});
  EXPECT_LT(max_abs_diff(fused.feature("last_hidden"), explicit_.feature("last_hidden")), 1e-5);
  EXPECT_LT(max_abs_diff(fused.feature("pooled"), explicit_.feature("pooled")), 1e-5);
  // No mask at all behaves like an all-ones mask.
  const auto nomask = model->forward(b.ids, b.types, torch::Tensor());
  const auto ones = model->forward(b.ids, b.types, torch::ones_like(b.mask), {false, true});
  EXPECT_LT(max_abs_diff(nomask.feature("last_hidden"), ones.feature("last_hidden")), 1e-5);
}

// At inference with nothing but logits asked for, the last layer computes the [CLS] row alone. Its
// logits must be those of the full pass up to float32 rounding (the query projection and the feed-forward
// block multiply 1 row instead of T, so the GEMM kernels may sum in another order), on a padded batch and
// with an all-padding tail; training, or any feature request, keeps the full pass.
TEST(BertTest, ClassifierInferenceComputesOnlyTheFirstRowOfTheLastLayer) {
  torch::manual_seed(11);
  auto o = tiny_options();
  o.num_hidden_layers = 3;
  kd::BertClassifier cls(o, 3);
  cls->eval();
  const auto b = tiny_batch();
  kd::FeatureRequest hidden;
  hidden.hidden = true;
  const auto shortcut = cls->forward(b.ids, b.types, b.mask);
  const auto full = cls->forward(b.ids, b.types, b.mask, hidden);
  EXPECT_EQ(shortcut.features.count("last_hidden"), 0u);
  EXPECT_EQ(full.feature("last_hidden").sizes(), (std::vector<int64_t>{2, 7, 16}));
  const int64_t depth = o.num_hidden_layers + 2;  // the layers, the pooler and the classifier
  EXPECT_LE(kd::test::tolerance_ratio(shortcut.feature("pooled"), full.feature("pooled"), o.intermediate_size, depth), 1.0);
  EXPECT_LE(kd::test::tolerance_ratio(shortcut.logits, full.logits, o.intermediate_size, depth), 1.0);
  // The shortcut's attention still reads every unpadded key. In a 1-layer model the shortened layer is
  // the only way from token 5 to position 0, so another token there must move the pooled vector by more
  // than rounding could (the parity tests' margin: 10 bounds).
  auto one = o;
  one.num_hidden_layers = 1;
  kd::BertClassifier single(one, 3);
  single->eval();
  auto other = b.ids.clone();
  other[0][5] = 30;
  EXPECT_GT(kd::test::tolerance_ratio(single->forward(other, b.types, b.mask).feature("pooled")[0],
                                      single->forward(b.ids, b.types, b.mask).feature("pooled")[0],
                                      o.intermediate_size, 3),
            10.0);
  // ...and no padded one: changing a padded id of row 1 leaves its logits as they were, up to rounding.
  other = b.ids.clone();
  other[1][5] = 30;
  EXPECT_LE(kd::test::tolerance_ratio(cls->forward(other, b.types, b.mask).logits[1], shortcut.logits[1],
                                      o.intermediate_size, depth),
            1.0);
  // A model without layers has nothing to shorten: the pooler reads the embeddings' first row.
  auto none = o;
  none.num_hidden_layers = 0;
  kd::BertClassifier flat(none, 3);
  flat->eval();
  EXPECT_TRUE(torch::equal(flat->forward(b.ids, b.types, b.mask).logits,
                           flat->forward(b.ids, b.types, b.mask, hidden).logits));
  // Training runs the full last layer (dropout must draw the masks of the full pass).
  cls->train();
  EXPECT_EQ(cls->forward(b.ids, b.types, b.mask).features.count("last_hidden"), 1u);
}

TEST(BertTest, TokenTypesDefaultToZero) {
  torch::manual_seed(5);
  kd::BertModel model(tiny_options());
  model->eval();
  const auto b = tiny_batch();
  const auto implicit = model->forward(b.ids, torch::Tensor(), b.mask);
  const auto zeros = model->forward(b.ids, torch::zeros_like(b.ids), b.mask);
  EXPECT_TRUE(torch::equal(implicit.feature("last_hidden"), zeros.feature("last_hidden")));
  const auto typed = model->forward(b.ids, b.types, b.mask);
  EXPECT_GT(max_abs_diff(typed.feature("last_hidden"), zeros.feature("last_hidden")), 1e-4);
}

TEST(BertTest, DropoutOnlyInTrainMode) {
  torch::manual_seed(6);
  auto o = tiny_options();
  o.hidden_dropout_prob = 0.3;
  o.attention_probs_dropout_prob = 0.3;
  kd::BertClassifier model(o, 3);
  const auto b = tiny_batch();
  model->eval();
  const auto e1 = model->forward(b.ids, b.types, b.mask, {false, true});
  const auto e2 = model->forward(b.ids, b.types, b.mask, {false, true});
  EXPECT_TRUE(torch::equal(e1.logits, e2.logits));
  model->train();
  const auto t1 = model->forward(b.ids, b.types, b.mask);
  const auto t2 = model->forward(b.ids, b.types, b.mask, {false, true});
  EXPECT_GT(max_abs_diff(t1.logits, t2.logits), 1e-4);
  EXPECT_GT(max_abs_diff(t1.logits, e1.logits), 1e-4);
  // Attention dropout zeroes some probabilities of real tokens and rescales the rest, so rows no
  // longer sum to one.
  const auto a = t2.feature("attn.1").select(0, 0);  // (heads, T, T), row 0 has no padding
  EXPECT_GT((a == 0).sum().item<int64_t>(), 0);
  EXPECT_GT((a.sum(-1) - 1).abs().max().item<double>(), 1e-3);
  model->eval();
  EXPECT_TRUE(torch::equal(model->forward(b.ids, b.types, b.mask).logits, e1.logits));

  // With every dropout at zero, train and eval compute the same thing.
  auto z = tiny_options();
  z.hidden_dropout_prob = 0;
  z.attention_probs_dropout_prob = 0;
  kd::BertModel nodrop(z);
  nodrop->train();
  const auto tr = nodrop->forward(b.ids, b.types, b.mask);
  nodrop->eval();
  EXPECT_LT(max_abs_diff(tr.feature("last_hidden"), nodrop->forward(b.ids, b.types, b.mask).feature("last_hidden")),
            1e-6);
}

TEST(BertTest, GradientsReachEveryParameterButThePadRow) {
  torch::manual_seed(7);
  kd::BertClassifier model(tiny_options(), 3);
  model->train();
  const auto b = tiny_batch();
  auto ids = b.ids.clone();
  ids[1][4] = 0;  // a pad id inside the masked region, and one at a real position below
  ids[0][2] = 0;
  const auto out = model->forward(ids, b.types, b.mask);
  torch::nn::functional::cross_entropy(out.logits, torch::tensor({0, 2})).backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
  }
  const torch::Tensor g = model->bert->named_parameters()["embeddings.word_embeddings.weight"].grad();
  EXPECT_EQ(g[0].abs().max().item<float>(), 0.0f);  // padding_idx, as in Hugging Face
  EXPECT_GT(g[11].abs().max().item<float>(), 0.0f);
}

TEST(BertTest, InvalidOptionsAndInputs) {
  auto o = tiny_options();
  o.num_attention_heads = 5;
  expect_error<kd::ConfigError>([&] { kd::BertModel m(o); }, {"num_attention_heads"});
  o = tiny_options();
  o.hidden_act = "swish";
  expect_error<kd::ConfigError>([&] { kd::BertModel m(o); }, {"hidden_act", "swish"});
  o = tiny_options();
  o.add_pooling_layer = false;
  expect_error<kd::ConfigError>([&] { kd::BertClassifier m(o, 2); }, {"add_pooling_layer"});
  expect_error<kd::ConfigError>([&] { kd::BertClassifier m(tiny_options(), 0); }, {"num_labels"});

  kd::BertModel model(tiny_options());
  const auto long_ids = torch::ones({1, 25}, torch::kInt64);
  expect_error<kd::ConfigError>([&] { model->forward(long_ids, {}, {}); }, {"25", "max_position_embeddings 24"});
  EXPECT_THROW(model->forward(torch::ones({4}, torch::kInt64), {}, {}), c10::Error);
  EXPECT_THROW(model->forward(torch::ones({2, 4}, torch::kInt64), {}, torch::ones({2, 5}, torch::kInt64)), c10::Error);
}

// ---------------------------------------------------------------------------------------------------
// config.json

TEST(BertTest, ConfigJsonRoundTrip) {
  const auto dir = kd::test::temp_dir("bert_config_roundtrip");
  auto o = tiny_options();
  o.hidden_act = "gelu_new";
  o.layer_norm_eps = 1e-7;
  o.hidden_dropout_prob = 0.25;
  o.pad_token_id = 1;
  o.add_pooling_layer = false;
  auto j = o.to_config_json();
  EXPECT_EQ(j.at("model_type"), "bert");
  EXPECT_EQ(j.at("position_embedding_type"), "absolute");
  j["architectures"] = {"BertModel"};  // the caller's business; ignored when read back
  const std::string path = (dir / "config.json").string();
  kd::write_json_atomic(path, j);
  const auto r = kd::BertOptions::from_config_json(path);
  EXPECT_EQ(r.vocab_size, o.vocab_size);
  EXPECT_EQ(r.hidden_size, o.hidden_size);
  EXPECT_EQ(r.num_hidden_layers, o.num_hidden_layers);
  EXPECT_EQ(r.num_attention_heads, o.num_attention_heads);
  EXPECT_EQ(r.intermediate_size, o.intermediate_size);
  EXPECT_EQ(r.hidden_act, o.hidden_act);
  EXPECT_EQ(r.hidden_dropout_prob, o.hidden_dropout_prob);
  EXPECT_EQ(r.attention_probs_dropout_prob, o.attention_probs_dropout_prob);
  EXPECT_EQ(r.max_position_embeddings, o.max_position_embeddings);
  EXPECT_EQ(r.type_vocab_size, o.type_vocab_size);
  EXPECT_EQ(r.layer_norm_eps, o.layer_norm_eps);
  EXPECT_EQ(r.pad_token_id, o.pad_token_id);
  EXPECT_EQ(r.initializer_range, o.initializer_range);
  EXPECT_EQ(r.add_pooling_layer, false);

  const auto defaults = kd::BertOptions().to_config_json();
  EXPECT_EQ(defaults.count("add_pooling_layer"), 0u);
  kd::BertOptions none;
  none.pad_token_id = -1;
  EXPECT_TRUE(none.to_config_json().at("pad_token_id").is_null());
}

TEST(BertTest, ConfigJsonOfTheRealCheckpoint) {
  const auto o = kd::BertOptions::from_config_json(kd::test::model_dir() + "/config.json");
  EXPECT_EQ(o.vocab_size, 30522);
  EXPECT_EQ(o.hidden_size, 384);
  EXPECT_EQ(o.num_hidden_layers, 6);
  EXPECT_EQ(o.num_attention_heads, 12);
  EXPECT_EQ(o.intermediate_size, 1536);
  EXPECT_EQ(o.hidden_act, "gelu");
  EXPECT_EQ(o.layer_norm_eps, 1e-12);
  EXPECT_EQ(o.pad_token_id, 0);
  EXPECT_TRUE(o.add_pooling_layer);
}

TEST(BertTest, ConfigJsonErrors) {
  const auto dir = kd::test::temp_dir("bert_config_errors");
  expect_error<kd::IoError>([&] { kd::BertOptions::from_config_json((dir / "absent.json").string()); },
                            {"absent.json", "no such file"});
  const auto syntax = write_config(dir, "{\n  \"hidden_size\": 384,\n  oops\n}", "syntax.json");
  expect_error<kd::FormatError>([&] { kd::BertOptions::from_config_json(syntax); }, {"syntax.json:3"});
  const auto array = write_config(dir, "[1, 2]", "array.json");
  expect_error<kd::FormatError>([&] { kd::BertOptions::from_config_json(array); }, {"array.json", "object"});

  struct Case {
    std::string body, key, what;
  };
  const std::vector<Case> cases = {
      {R"({"hidden_size": "384"})", "hidden_size", "integer"},
      {R"({"hidden_size": 384.5})", "hidden_size", "integer"},
      {R"({"num_hidden_layers": -1})", "num_hidden_layers", "at least 0"},
      {R"({"hidden_size": 384, "num_attention_heads": 5})", "num_attention_heads", "divide"},
      {R"({"hidden_act": "swish"})", "hidden_act", "swish"},
      {R"({"hidden_act": 3})", "hidden_act", "string"},
      {R"({"hidden_dropout_prob": 1.5})", "hidden_dropout_prob", "out of range"},
      {R"({"attention_probs_dropout_prob": "0.1"})", "attention_probs_dropout_prob", "number"},
      {R"({"layer_norm_eps": 0})", "layer_norm_eps", "positive"},
      {R"({"position_embedding_type": "relative_key"})", "position_embedding_type", "relative_key"},
      {R"({"is_decoder": true})", "is_decoder", "false"},
      {R"({"add_cross_attention": true})", "add_cross_attention", "false"},
      {R"({"is_decoder": "no"})", "is_decoder", "true or false"},
      {R"({"model_type": "roberta"})", "model_type", "roberta"},
      {R"({"vocab_size": 10, "pad_token_id": 10})", "pad_token_id", "vocab_size"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto path = write_config(dir, cases[i].body, "case" + std::to_string(i) + ".json");
    expect_error<kd::FormatError>([&] { kd::BertOptions::from_config_json(path); },
                                  {path + ":" + cases[i].key, cases[i].what});
  }

  // Keys of other Hugging Face features are ignored, null pad id means none.
  const auto extra = write_config(
      dir, R"({"model_type": "bert", "hidden_size": 32, "num_attention_heads": 4, "id2label": {"0": "a"},
              "classifier_dropout": null, "use_cache": true, "gradient_checkpointing": false, "pad_token_id": null,
              "architectures": ["BertForSequenceClassification"], "transformers_version": "4.56.2"})",
      "extra.json");
  const auto o = kd::BertOptions::from_config_json(extra);
  EXPECT_EQ(o.hidden_size, 32);
  EXPECT_EQ(o.num_hidden_layers, 12);  // default
  EXPECT_EQ(o.pad_token_id, -1);
}

// ---------------------------------------------------------------------------------------------------
// Weight loading

TEST(BertTest, LoadWeightsRoundTripWithAndWithoutPrefix) {
  const auto dir = kd::test::temp_dir("bert_load_roundtrip");
  torch::manual_seed(8);
  kd::BertModel src(tiny_options());
  src->eval();
  const std::string plain = (dir / "plain.safetensors").string();
  const std::string prefixed = (dir / "prefixed.safetensors").string();
  kd::save_safetensors(plain, state_of(*src));
  kd::save_safetensors(prefixed, state_of(*src, "bert."));
  const auto b = tiny_batch();
  const auto want = src->forward(b.ids, b.types, b.mask).feature("last_hidden");

  for (const auto& path : {plain, prefixed}) {
    torch::manual_seed(9);
    kd::BertModel dst(tiny_options());
    dst->eval();
    EXPECT_GT(max_abs_diff(dst->forward(b.ids, b.types, b.mask).feature("last_hidden"), want), 1e-3);
    EXPECT_TRUE(kd::load_bert_weights(*dst, path, false).empty());
    EXPECT_TRUE(torch::equal(dst->forward(b.ids, b.types, b.mask).feature("last_hidden"), want)) << path;
    for (const auto& p : dst->named_parameters()) EXPECT_TRUE(p.value().requires_grad()) << p.key();
  }

  // A classifier from an encoder checkpoint: the new head is reported and keeps its initialisation;
  // without allow_new_head that is an error naming the tensor.
  kd::BertClassifier cls(tiny_options(), 3);
  const auto head_before = cls->classifier->weight.clone();
  const auto missing = kd::load_bert_weights(*cls, plain, true);
  EXPECT_EQ(missing, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  EXPECT_TRUE(torch::equal(cls->classifier->weight, head_before));
  cls->eval();
  kd::FeatureRequest hidden;
  hidden.hidden = true;  // an empty request at inference returns "pooled" alone
  EXPECT_TRUE(torch::equal(cls->forward(b.ids, b.types, b.mask, hidden).feature("last_hidden"), want));
  kd::BertClassifier cls2(tiny_options(), 3);
  expect_error<kd::FormatError>([&] { kd::load_bert_weights(*cls2, plain, false); },
                                {"plain.safetensors", "classifier.weight", "allow_new_head"});

  // A classifier checkpoint loads into a classifier, and its encoder into a BertModel (head ignored).
  const std::string cls_path = (dir / "cls.safetensors").string();
  kd::save_safetensors(cls_path, state_of(*cls));
  kd::BertClassifier cls3(tiny_options(), 3);
  EXPECT_TRUE(kd::load_bert_weights(*cls3, cls_path, false).empty());
  EXPECT_TRUE(torch::equal(cls3->classifier->weight, cls->classifier->weight));
  kd::BertModel enc(tiny_options());
  EXPECT_TRUE(kd::load_bert_weights(*enc, cls_path, false).empty());
}

TEST(BertTest, LoadWeightsErrors) {
  const auto dir = kd::test::temp_dir("bert_load_errors");
  torch::manual_seed(10);
  kd::BertModel src(tiny_options());
  auto state = state_of(*src);

  // Missing encoder tensor: always an error, naming tensor and file.
  auto without = state;
  without.erase(std::remove_if(without.begin(), without.end(),
                               [](const auto& kv) { return kv.first == "encoder.layer.1.attention.self.key.bias"; }),
                without.end());
  const std::string missing = (dir / "missing.safetensors").string();
  kd::save_safetensors(missing, without);
  kd::BertModel m1(tiny_options());
  expect_error<kd::FormatError>([&] { kd::load_bert_weights(*m1, missing, true); },
                                {"missing.safetensors", "encoder.layer.1.attention.self.key.bias", "missing"});

  // Missing pooler: allowed only for a new head.
  auto no_pooler = state;
  no_pooler.erase(std::remove_if(no_pooler.begin(), no_pooler.end(),
                                 [](const auto& kv) { return kv.first.rfind("pooler.", 0) == 0; }),
                  no_pooler.end());
  const std::string nopool = (dir / "nopool.safetensors").string();
  kd::save_safetensors(nopool, no_pooler);
  kd::BertModel m2(tiny_options());
  expect_error<kd::FormatError>([&] { kd::load_bert_weights(*m2, nopool, false); }, {"nopool.safetensors", "pooler.dense"});
  const auto names = kd::load_bert_weights(*m2, nopool, true);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()),
            (std::set<std::string>{"pooler.dense.weight", "pooler.dense.bias"}));

  // Wrong shape: a checkpoint of a wider model.
  auto wide = tiny_options();
  wide.intermediate_size = 48;
  kd::BertModel wsrc(wide);
  const std::string wrong = (dir / "wide.safetensors").string();
  kd::save_safetensors(wrong, state_of(*wsrc));
  kd::BertModel m3(tiny_options());
  expect_error<kd::FormatError>([&] { kd::load_bert_weights(*m3, wrong, false); },
                                {"wide.safetensors", "encoder.layer.0.intermediate.dense.weight", "[48, 16]", "[32, 16]"});

  // Integer tensor where a parameter is expected.
  auto ints = state;
  for (auto& kv : ints) {
    if (kv.first == "embeddings.LayerNorm.bias") kv.second = torch::zeros({16}, torch::kInt64);
  }
  const std::string int_path = (dir / "ints.safetensors").string();
  kd::save_safetensors(int_path, ints);
  kd::BertModel m4(tiny_options());
  expect_error<kd::FormatError>([&] { kd::load_bert_weights(*m4, int_path, false); },
                                {"ints.safetensors", "embeddings.LayerNorm.bias", "I64"});

  // Wrong files: absent, not safetensors at all, and a safetensors file of something else.
  kd::BertModel m5(tiny_options());
  expect_error<kd::IoError>([&] { kd::load_bert_weights(*m5, (dir / "absent.safetensors").string(), false); },
                            {"absent.safetensors"});
  const std::string junk = (dir / "junk.safetensors").string();
  std::ofstream(junk) << "this is not a safetensors file at all, just some text";
  expect_error<kd::FormatError>([&] { kd::load_bert_weights(*m5, junk, false); }, {"junk.safetensors"});
  const std::string other = (dir / "other.safetensors").string();
  kd::save_safetensors(other, {{"transformer.h.0.attn.c_attn.weight", torch::zeros({16, 48})}});
  expect_error<kd::FormatError>([&] { kd::load_bert_weights(*m5, other, false); },
                                {"other.safetensors", "embeddings.word_embeddings.weight"});

  // Half-precision checkpoints are widened to the parameters' dtype.
  auto half = state;
  for (auto& kv : half) kv.second = kv.second.to(torch::kFloat16);
  const std::string half_path = (dir / "half.safetensors").string();
  kd::save_safetensors(half_path, half);
  kd::BertModel m6(tiny_options());
  EXPECT_TRUE(kd::load_bert_weights(*m6, half_path, false).empty());
  EXPECT_LT(max_abs_diff(m6->named_parameters()["encoder.layer.0.output.dense.weight"],
                         src->named_parameters()["encoder.layer.0.output.dense.weight"]),
            1e-3);
}

// ---------------------------------------------------------------------------------------------------
// Parity with Hugging Face on the real checkpoint

namespace {

class BertParityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    golden_ = new std::map<std::string, torch::Tensor>(
        kd::SafeTensorsFile(kd::test::golden("bert/golden.safetensors")).load_all());
    model_ = new kd::BertModel(kd::BertOptions::from_config_json(kd::test::model_dir() + "/config.json"));
    const auto missing = kd::load_bert_weights(**model_, kd::test::model_dir() + "/model.safetensors", false);
    EXPECT_TRUE(missing.empty());
    (*model_)->eval();
  }
  static void TearDownTestSuite() {
    delete golden_;
    delete model_;
    golden_ = nullptr;
    model_ = nullptr;
  }
  static const torch::Tensor& g(const std::string& k) { return golden_->at(k); }

  static std::map<std::string, torch::Tensor>* golden_;
  static kd::BertModel* model_;
};
std::map<std::string, torch::Tensor>* BertParityTest::golden_ = nullptr;
kd::BertModel* BertParityTest::model_ = nullptr;

// How much of the float32 rounding bound (tests/tolerance.h) the worst element of `got` uses, for a value
// `depth` layers deep (hidden.0, the embeddings and their LayerNorm, counts as one): at most 1 passes. The
// longest reduction is the intermediate width (or the hidden width).
double bound_used(const kd::BertOptions& o, int64_t depth, const torch::Tensor& got, const torch::Tensor& ref) {
  return kd::test::tolerance_ratio(got, ref, std::max(o.hidden_size, o.intermediate_size), depth);
}

// Max abs difference over all positions and over real (unpadded) query positions only.
std::pair<double, double> hidden_diffs(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) {
  const auto d = (a - b).abs().amax(-1);  // (B, T)
  return {d.max().item<double>(), d.masked_fill(mask == 0, 0).max().item<double>()};
}

}  // namespace

TEST_F(BertParityTest, ParameterNamesMatchTheCheckpoint) {
  kd::SafeTensorsFile file(kd::test::model_dir() + "/model.safetensors");
  std::set<std::string> stored;
  for (const auto& n : file.names()) {
    if (n != "embeddings.position_ids") stored.insert(n);  // an HF buffer, not a parameter
  }
  std::set<std::string> ours;
  for (const auto& p : (*model_)->named_parameters()) ours.insert(p.key());
  EXPECT_EQ(ours, stored);
  EXPECT_TRUE(file.contains("pooler.dense.weight"));
}

TEST_F(BertParityTest, EveryLayerMatchesHuggingFace) {
  const auto& mask = g("attention_mask");
  torch::NoGradGuard no_grad;
  const auto out = (*model_)->forward(g("input_ids"), g("token_type_ids"), mask, {true, true});
  const auto& o = (*model_)->options();
  const int64_t n = o.num_hidden_layers;
  std::printf("[bert parity] batch %ld x %ld\n", static_cast<long>(mask.size(0)), static_cast<long>(mask.size(1)));
  for (int64_t i = 0; i <= n; ++i) {
    const std::string k = "hidden." + std::to_string(i);
    const auto [all, real] = hidden_diffs(out.feature(k), g(k), mask);
    const double used = bound_used(o, i, out.feature(k), g(k));
    std::printf("[bert parity] %-9s max |diff| %.3g (real tokens %.3g), %.3g of the rounding bound\n", k.c_str(), all,
                real, used);
    EXPECT_LE(used, 1.0) << k;
    // The bound is far below what a wrong layer would give: the previous layer's output is more than 10
    // bounds away (measured: more than 100).
    if (i > 0) EXPECT_GT(bound_used(o, i, g("hidden." + std::to_string(i - 1)), g(k)), 10.0) << k;
  }
  for (int64_t i = 1; i <= n; ++i) {
    const std::string k = "attn." + std::to_string(i);
    const double d = max_abs_diff(out.feature(k), g(k)), used = bound_used(o, i, out.feature(k), g(k));
    std::printf("[bert parity] %-9s max |diff| %.3g, %.3g of the rounding bound\n", k.c_str(), d, used);
    EXPECT_LE(used, 1.0) << k;
  }
  const double last = max_abs_diff(out.feature("last_hidden"), g("last_hidden"));
  const double pooled = max_abs_diff(out.feature("pooled"), g("pooled"));
  const double used_last = bound_used(o, n, out.feature("last_hidden"), g("last_hidden"));
  const double used_pooled = bound_used(o, n + 1, out.feature("pooled"), g("pooled"));
  std::printf("[bert parity] last_hidden max |diff| %.3g, pooled %.3g (%.3g and %.3g of the rounding bound)\n", last,
              pooled, used_last, used_pooled);
  EXPECT_LE(used_last, 1.0);
  EXPECT_LE(used_pooled, 1.0);
}

TEST_F(BertParityTest, FusedAttentionPathMatchesHuggingFace) {
  torch::NoGradGuard no_grad;
  const auto out = (*model_)->forward(g("input_ids"), g("token_type_ids"), g("attention_mask"));
  const auto [all, real] = hidden_diffs(out.feature("last_hidden"), g("last_hidden"), g("attention_mask"));
  const double pooled = max_abs_diff(out.feature("pooled"), g("pooled"));
  const auto& o = (*model_)->options();
  const double used_last = bound_used(o, o.num_hidden_layers, out.feature("last_hidden"), g("last_hidden"));
  const double used_pooled = bound_used(o, o.num_hidden_layers + 1, out.feature("pooled"), g("pooled"));
  std::printf("[bert parity] fused: last_hidden max |diff| %.3g (real tokens %.3g), pooled %.3g (%.3g and %.3g of the "
              "rounding bound)\n", all, real, pooled, used_last, used_pooled);
  // Every row, padding rows included: they come out of both paths further from the eager reference than
  // real rows (up to 2.8e-4 against 1e-5 on an AMD EPYC; Hugging Face's own SDPA path differs from its
  // eager path by as much), but inside the same bound. Nothing downstream reads them: losses and poolers
  // mask them out.
  EXPECT_LE(used_last, 1.0);
  EXPECT_LE(used_pooled, 1.0);
}

TEST_F(BertParityTest, ClassifierMatchesHuggingFace) {
  const std::string dir = kd::test::golden("bert/cls_model");
  const auto opts = kd::BertOptions::from_config_json(dir + "/config.json");
  kd::BertClassifier cls(opts, 3);
  EXPECT_TRUE(kd::load_bert_weights(*cls, dir + "/model.safetensors", false).empty());
  cls->eval();
  const auto want = kd::SafeTensorsFile(kd::test::golden("bert/cls_golden.safetensors")).load_all();
  torch::NoGradGuard no_grad;
  const auto out = cls->forward(want.at("input_ids"), want.at("token_type_ids"), want.at("attention_mask"));
  const double d = max_abs_diff(out.logits, want.at("logits"));
  // Through the encoder, the pooler and the head.
  const double used = bound_used(opts, opts.num_hidden_layers + 2, out.logits, want.at("logits"));
  std::printf("[bert parity] classifier logits max |diff| %.3g (logit scale %.3g), %.3g of the rounding bound\n", d,
              want.at("logits").abs().max().item<double>(), used);
  EXPECT_LE(used, 1.0);
}
