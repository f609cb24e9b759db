// CausalLmGgufTest: a tiny causal-LM folder exported as GGUF carries the kinds of keys the SmolLM2 GGUF
// carries (same value types), its tokenizer whole, the matrices in the requested type where rows split
// into blocks and in F32 elsewhere, Q/K rows in llama.cpp's interleaved order (checked index by index,
// not with the function that writes them), and reloads as the same tokenizer; weights that are not
// finite are refused before anything is written.
#include "kd/models/causal_lm_gguf.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "kd/error.h"
#include "kd/io/gguf.h"
#include "../expect_error.h"
#include "../test_paths.h"  // tests/ is not on the include path
#include "tiny_lm_folder.h"

namespace fs = std::filesystem;

namespace {

// Keys of the SmolLM2 file that describe where that model came from (its card) rather than how to run
// it; kd's students have no such facts to report, so the export leaves them out. unknown_token_id
// names a token byte-level BPE never produces, and kd's tokenizer has none.
const std::set<std::string> kDescriptiveKeys = {"general.organization", "general.finetune", "general.basename",
                                                "general.size_label",   "general.license",  "general.languages",
                                                "tokenizer.ggml.unknown_token_id"};

std::string export_tiny(const fs::path& dir, const std::string& type, bool tied = true) {
  const auto folder = kd::test::save_tiny_lm_folder(dir / (tied ? "tied" : "untied"), tied);
  const std::string out = (dir / (type + (tied ? "-tied" : "-untied") + ".gguf")).string();
  kd::export_causal_lm_gguf(folder, out, kd::parse_gguf_export_type(type));
  return out;
}

TEST(CausalLmGgufTest, CarriesTheKindsOfKeysTheSmolLM2FileCarries) {
  const auto dir = kd::test::temp_dir("causal_lm_gguf_keys");
  const kd::GgufFile ours(export_tiny(dir, "q8_0")), smol(kd::test::llm_gguf());
  for (const auto& key : smol.keys()) {
    if (kDescriptiveKeys.count(key)) continue;
    SCOPED_TRACE(key);
    ASSERT_TRUE(ours.has(key));
    EXPECT_EQ(ours.get(key).type, smol.get(key).type);
    if (smol.get(key).is_array()) {
      EXPECT_EQ(ours.get(key).elem_type, smol.get(key).elem_type);
    }
  }
  EXPECT_EQ(ours.get_string("general.architecture"), "llama");
  EXPECT_EQ(ours.get_string("general.name"), "tied");
  EXPECT_EQ(ours.get_int("general.file_type"), 7);  // LLAMA_FTYPE_MOSTLY_Q8_0
  EXPECT_EQ(ours.get_int("general.alignment"), 32);
  EXPECT_EQ(ours.get_int("llama.rope.dimension_count"), 8);
  EXPECT_EQ(ours.get_float("llama.rope.freq_base"), 5000.0);

  const auto tok = kd::test::tiny_lm_tokenizer();
  const auto& tokens = ours.get_strings("tokenizer.ggml.tokens");
  const auto& types = ours.get_ints("tokenizer.ggml.token_type");
  ASSERT_EQ(static_cast<int64_t>(tokens.size()), tok.vocab_size());
  for (int64_t id = 0; id < tok.vocab_size(); ++id) {
    EXPECT_EQ(tokens[id], tok.token(id));
    EXPECT_EQ(types[id], static_cast<int64_t>(tok.token_type(id)));
  }
  EXPECT_EQ(ours.get_strings("tokenizer.ggml.merges"), tok.merges());
  EXPECT_EQ(ours.get_string("tokenizer.ggml.pre"), "smollm");
  EXPECT_EQ(ours.get_int("tokenizer.ggml.bos_token_id"), tok.bos_id);
  EXPECT_EQ(ours.get_int("tokenizer.ggml.eos_token_id"), tok.eos_id);
  EXPECT_EQ(ours.get_int("tokenizer.ggml.padding_token_id"), tok.pad_id);
  EXPECT_EQ(ours.get_string("tokenizer.chat_template"), tok.chat_template);

  // kd's GGUF loader rebuilds the same tokenizer.
  const auto back = kd::BpeTokenizer::from_gguf(ours);
  for (const std::string text : {"the other there", "<|im_start|>user\nhi 12<|im_end|>", "é 日本 😀"})
    EXPECT_EQ(back.encode(text), tok.encode(text)) << text;
}

TEST(CausalLmGgufTest, MatricesTakeTheTypeWhereTheirRowsSplitIntoBlocks) {
  const auto dir = kd::test::temp_dir("causal_lm_gguf_types");
  for (const bool tied : {true, false}) {
    const kd::GgufFile f(export_tiny(dir, "q4_0", tied));
    EXPECT_EQ(f.contains("output.weight"), !tied);
    EXPECT_EQ(f.tensors().size(), 2 + 9 * 2 + (tied ? 0u : 1u));
    for (const auto& t : f.tensors()) {
      // Norms are 1-D; ffn_down's rows are the feed-forward width, 48, not a multiple of 32.
      const bool f32 = t.ne.size() == 1 || t.name.find("ffn_down") != std::string::npos;
      EXPECT_EQ(t.type, f32 ? kd::GgmlType::F32 : kd::GgmlType::Q4_0) << t.name;
    }
  }
}

TEST(CausalLmGgufTest, QAndKRowsAreInLlamaCppsInterleavedOrder) {
  const auto dir = kd::test::temp_dir("causal_lm_gguf_rope");
  const kd::GgufFile f(export_tiny(dir, "f32"));
  const auto lm = kd::load_causal_lm((dir / "tied").string());
  const auto& o = lm.model->options();
  const int64_t half = o.head_dim() / 2;
  auto params = lm.model->named_parameters();
  for (const auto& [hf, gg, heads] : {std::tuple{"layers.1.self_attn.q_proj.weight", "blk.1.attn_q.weight", o.num_heads},
                                      std::tuple{"layers.1.self_attn.k_proj.weight", "blk.1.attn_k.weight", o.num_kv_heads}}) {
    const auto want = params[hf].detach(), got = f.load(gg);
    ASSERT_EQ(got.sizes(), want.sizes());
    // llama.cpp rotates dims (2i, 2i+1) of a head together, Hugging Face (i, i + D/2).
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i)
        for (int64_t j = 0; j < 2; ++j)
          EXPECT_TRUE(torch::equal(got[h * 2 * half + 2 * i + j], want[h * 2 * half + j * half + i])) << gg << " head " << h;
  }
  EXPECT_TRUE(torch::equal(f.load("blk.1.attn_v.weight"), params["layers.1.self_attn.v_proj.weight"].detach()));
}

TEST(CausalLmGgufTest, NonFiniteWeightsAreRefusedAndNothingIsWritten) {
  const auto dir = kd::test::temp_dir("causal_lm_gguf_nan");
  auto lm = kd::load_causal_lm(kd::test::save_tiny_lm_folder(dir / "m"));
  {
    torch::NoGradGuard g;
    lm.model->named_parameters()["layers.0.mlp.up_proj.weight"][1][2] = std::nanf("");
  }
  const std::string out = (dir / "m.gguf").string();
  kd::test::expect_error<kd::FormatError>([&] { kd::save_causal_lm_gguf(lm, out, kd::GgmlType::Q8_0, "m"); },
                                          {"model.layers.0.mlp.up_proj.weight", "NaN"});
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);  // the folder only
}

}  // namespace
