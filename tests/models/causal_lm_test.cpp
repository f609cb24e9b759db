// CausalLmTest: a tiny model and tokenizer written as a Hugging Face folder and loaded back (bit-exact
// logits, the same tokenizer), the folder replaced only when complete, bad folders, chat prompts.
// CausalLmParityTest: the real SmolLM2 GGUF written as a folder reloads bit-exact, and transformers
// reads that folder with the same logits, token ids and chat prompt (tests/python/check_llm_folder.py).
#include "kd/models/causal_lm.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/safetensors.h"
#include "kd/models/causal_lm_folder.h"
#include "kd/text/chat_template.h"
#include "../test_paths.h"  // tests/ is not on the include path
#include "../text/tiny_bpe.h"
#include "../tolerance.h"
#include "tiny_llama.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kTemplate =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a test model<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' "
    "}}{% endif %}";

kd::BpeTokenizer tiny_tokenizer() {
  using T = kd::BpeTokenType;
  auto tok = kd::test::tiny_bpe({"Ġ t", "h e", "Ġt he", "i n", "Ġ a", "1 2"},
                                {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<note>"},
                                {T::Control, T::Control, T::Control, T::UserDefined}, kd::BpePreTokenizer::SmolLM);
  tok.bos_id = *tok.token_id("<|im_start|>");
  tok.eos_id = *tok.token_id("<|im_end|>");
  tok.pad_id = -1;
  tok.chat_template = kTemplate;
  return tok;
}

kd::Llama tiny_model(int64_t vocab, bool tied, uint64_t seed = 3) {
  auto o = kd::test::tiny_llama_options(vocab, tied);
  o.rope_theta = 12345.5;
  o.rms_eps = 9.999999747378752e-06;  // a float32 value: must survive config.json exactly
  return kd::test::tiny_llama(o, seed);
}

const std::vector<std::string> kTexts = {
    "the thin tin 12 123", " Hello, world!\n\nthe end", "<|im_start|>user\nhi<|im_end|>", "é 日本 😀 <note> x",
    "", "   ", "1234567890"};

torch::Tensor logits(kd::Llama& m, const std::vector<int64_t>& ids) {
  torch::NoGradGuard g;
  return m->forward(torch::tensor(ids).unsqueeze(0)).logits[0];
}

void expect_same_tokenizer(const kd::BpeTokenizer& a, const kd::BpeTokenizer& b) {
  ASSERT_EQ(a.vocab_size(), b.vocab_size());
  for (int64_t i = 0; i < a.vocab_size(); ++i) {
    EXPECT_EQ(a.token(i), b.token(i)) << i;
    EXPECT_EQ(a.token_type(i) == kd::BpeTokenType::Normal, b.token_type(i) == kd::BpeTokenType::Normal) << i;
    EXPECT_EQ(a.is_special(i), b.is_special(i)) << i;
  }
  EXPECT_EQ(a.merges(), b.merges());
  EXPECT_EQ(a.pre_tokenizer(), b.pre_tokenizer());
  EXPECT_EQ(a.bos_id, b.bos_id);
  EXPECT_EQ(a.eos_id, b.eos_id);
  EXPECT_EQ(a.pad_id, b.pad_id);
  EXPECT_EQ(a.chat_template, b.chat_template);
}

// The error `load` throws, as text ("" when it throws nothing or something else).
template <class E>
std::string error_of(const std::string& path) {
  try {
    kd::load_causal_lm(path);
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception: " << e.what();
  }
  return "";
}

void expect_contains(const std::string& msg, const std::vector<std::string>& parts) {
  EXPECT_FALSE(msg.empty()) << "no error";
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

TEST(CausalLmTest, ParameterShapesListEveryParameterInOrder) {
  for (bool tied : {true, false}) {
    auto m = tiny_model(300, tied);
    const auto shapes = kd::llama_parameter_shapes(m->options());
    const auto params = m->named_parameters();
    ASSERT_EQ(shapes.size(), params.size());
    for (size_t i = 0; i < shapes.size(); ++i) {
      EXPECT_EQ(shapes[i].first, params[i].key());
      EXPECT_EQ(torch::IntArrayRef(shapes[i].second), params[i].value().sizes()) << shapes[i].first;
    }
  }
}

TEST(CausalLmTest, FolderRoundTripIsBitExact) {
  const auto dir = kd::test::temp_dir("causal_lm_roundtrip");
  const auto tok = tiny_tokenizer();
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    auto m = tiny_model(tok.vocab_size(), tied);
    const auto folder = (dir / (tied ? "tied" : "untied")).string();
    kd::save_causal_lm(m, tok, folder);
    const json config = kd::read_json(folder + "/config.json");
    EXPECT_EQ(config["architectures"], json({"LlamaForCausalLM"}));
    EXPECT_EQ(config["tie_word_embeddings"], tied);
    EXPECT_EQ(kd::SafeTensorsFile(folder + "/model.safetensors").contains("lm_head.weight"), !tied);

    auto back = kd::load_causal_lm(folder);
    EXPECT_EQ(back.source, folder);
    const auto &a = m->options(), &b = back.model->options();
    EXPECT_EQ(a.vocab_size, b.vocab_size);
    EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
    EXPECT_EQ(a.max_position, b.max_position);
    EXPECT_EQ(a.rope_theta, b.rope_theta);
    EXPECT_EQ(a.rms_eps, b.rms_eps);
    EXPECT_EQ(a.tie_embeddings, b.tie_embeddings);
    expect_same_tokenizer(tok, back.tokenizer);
    for (const auto& text : kTexts) {
      const auto ids = tok.encode(text);
      EXPECT_EQ(back.tokenizer.encode(text), ids) << text;
      if (ids.empty()) continue;
      EXPECT_TRUE(torch::equal(logits(m, ids), logits(back.model, ids))) << text;
    }
  }
}

TEST(CausalLmTest, SavingReplacesAFolderOnlyWhenTheNewOneIsComplete) {
  const auto dir = kd::test::temp_dir("causal_lm_replace");
  const auto tok = tiny_tokenizer();
  const auto folder = (dir / "lm").string();
  auto first = tiny_model(tok.vocab_size(), true, 1), second = tiny_model(tok.vocab_size(), true, 2);
  kd::save_causal_lm(first, tok, folder);
  kd::save_causal_lm(second, tok, folder + "/");  // a trailing slash names the same folder
  const std::vector<int64_t> ids = {5, 6, 7};
  auto back = kd::load_causal_lm(folder);
  EXPECT_TRUE(torch::equal(logits(back.model, ids), logits(second, ids)));
  // A model that does not fit the tokenizer is refused before anything is written.
  auto wrong = tiny_model(tok.vocab_size() + 1, true);
  EXPECT_THROW(kd::save_causal_lm(wrong, tok, folder), kd::ConfigError);
  back = kd::load_causal_lm(folder);
  EXPECT_TRUE(torch::equal(logits(back.model, ids), logits(second, ids)));
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(dir)) entries.push_back(e.path().filename().string());
  EXPECT_EQ(entries, std::vector<std::string>{"lm"});  // no staging or old folder left behind
}

TEST(CausalLmTest, BadFoldersAreFormatErrorsNamingFileAndKey) {
  const auto dir = kd::test::temp_dir("causal_lm_bad");
  const auto tok = tiny_tokenizer();
  auto m = tiny_model(tok.vocab_size(), false);
  const auto good = dir / "good";
  kd::save_causal_lm(m, tok, good.string());
  auto copy = [&](const std::string& name) {
    const auto to = dir / name;
    fs::copy(good, to, fs::copy_options::recursive);
    return to;
  };

  auto f = copy("no_key");
  json config = kd::read_json((f / "config.json").string());
  config.erase("hidden_size");
  kd::write_json_atomic((f / "config.json").string(), config);
  expect_contains(error_of<kd::FormatError>(f.string()), {"config.json", "'hidden_size'", "missing"});

  f = copy("mistyped");
  config = kd::read_json((f / "config.json").string());
  config["num_attention_heads"] = "4";
  kd::write_json_atomic((f / "config.json").string(), config);
  expect_contains(error_of<kd::FormatError>(f.string()), {"config.json", "'num_attention_heads'", "not an integer"});

  f = copy("not_llama");
  config = kd::read_json((f / "config.json").string());
  config["model_type"] = "gpt2";
  kd::write_json_atomic((f / "config.json").string(), config);
  expect_contains(error_of<kd::FormatError>(f.string()), {"config.json", "'model_type'", "gpt2"});

  const auto tensors = kd::SafeTensorsFile((good / "model.safetensors").string()).load_all();
  auto rewrite = [&](const fs::path& folder, const std::string& drop, const torch::Tensor& replacement) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& [name, t] : tensors)
      if (name != drop) out.emplace_back(name, t);
    if (replacement.defined()) out.emplace_back(drop, replacement);
    kd::save_safetensors((folder / "model.safetensors").string(), out);
  };
  f = copy("no_tensor");
  rewrite(f, "model.layers.1.mlp.up_proj.weight", {});
  expect_contains(error_of<kd::FormatError>(f.string()),
                  {"model.safetensors", "tensor 'model.layers.1.mlp.up_proj.weight'", "missing"});
  f = copy("no_head");
  rewrite(f, "lm_head.weight", {});
  expect_contains(error_of<kd::FormatError>(f.string()), {"model.safetensors", "tensor 'lm_head.weight'"});
  f = copy("bad_shape");
  rewrite(f, "model.norm.weight", torch::ones({33}));
  expect_contains(error_of<kd::FormatError>(f.string()),
                  {"model.safetensors", "tensor 'model.norm.weight'", "shape [33]", "[32]"});

  f = copy("vocab");
  json tj = kd::read_json((f / "tokenizer.json").string());
  tj["model"]["vocab"]["zzz"] = tok.vocab_size();
  kd::write_json_atomic((f / "tokenizer.json").string(), tj);
  expect_contains(error_of<kd::FormatError>(f.string()),
                  {"tokenizer.json", std::to_string(tok.vocab_size() + 1) + " tokens", "vocab_size"});

  f = copy("no_tokenizer");
  fs::remove(f / "tokenizer.json");
  expect_contains(error_of<kd::IoError>(f.string()), {"tokenizer.json"});
  expect_contains(error_of<kd::IoError>((dir / "absent").string()), {"absent", "no such"});
}

TEST(CausalLmTest, ChatPromptFollowsTheChatMlTemplate) {
  auto tok = tiny_tokenizer();
  EXPECT_EQ(kd::chat_prompt(tok, "Hi?"),
            "<|im_start|>system\nYou are a test model<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n"
            "<|im_start|>assistant\n");
  // Escaped newlines in the template source; no default system turn.
  tok.chat_template = "{{ '<|im_start|>' + message['role'] + '\\n' }}";
  EXPECT_EQ(kd::chat_prompt(tok, "x"), "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
  tok.chat_template = "{{ '<|im_start|>system\\nBe brief.<|im_end|>\\n' }}{{ '<|im_start|>' }}";
  EXPECT_EQ(kd::chat_prompt(tok, "x"),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
  tok.chat_template = "[INST] {{ message['content'] }} [/INST]";
  EXPECT_THROW(kd::chat_prompt(tok, "x"), kd::ConfigError);
  tok.chat_template.clear();
  EXPECT_THROW(kd::chat_prompt(tok, "x"), kd::ConfigError);
}

// ---------------------------------------------------------------------------------------------------
// The real SmolLM2-135M-Instruct

std::vector<std::string> wiki_lines(size_t n) {
  std::ifstream in(kd::test::shared_data("wikitext2/wiki.test.tokens"), std::ios::binary);
  std::vector<std::string> out;
  std::string line;
  while (out.size() < n && std::getline(in, line))
    if (line.find_first_not_of(' ') != std::string::npos) out.push_back(line + "\n");
  return out;
}

class CausalLmParityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gguf_ = new kd::CausalLm(kd::load_causal_lm(kd::test::llm_gguf()));
    folder_ = (kd::test::temp_dir("causal_lm_smollm2") / "smollm2").string();
    kd::save_causal_lm(gguf_->model, gguf_->tokenizer, folder_);
  }
  static void TearDownTestSuite() { delete gguf_; }
  static kd::CausalLm* gguf_;
  static std::string folder_;
  // Prompts whose logits are compared: the first wikitext line of 40 to 100 tokens and a chat prompt.
  static std::vector<std::string> prompts() {
    std::vector<std::string> out;
    for (const auto& line : wiki_lines(50)) {
      const auto n = gguf_->tokenizer.encode(line).size();
      if (n >= 40 && n <= 100) {
        out.push_back(line);
        break;
      }
    }
    out.push_back(kd::chat_prompt(gguf_->tokenizer, "What is the capital of France?"));
    return out;
  }
};
kd::CausalLm* CausalLmParityTest::gguf_ = nullptr;
std::string CausalLmParityTest::folder_;

TEST_F(CausalLmParityTest, FolderReloadsBitExact) {
  auto back = kd::load_causal_lm(folder_);
  expect_same_tokenizer(gguf_->tokenizer, back.tokenizer);
  const auto lines = wiki_lines(500);
  ASSERT_EQ(lines.size(), 500u);
  for (const auto& text : lines) EXPECT_EQ(back.tokenizer.encode(text), gguf_->tokenizer.encode(text)) << text;
  for (const auto& p : prompts()) {
    const auto ids = gguf_->tokenizer.encode(p);
    EXPECT_TRUE(torch::equal(logits(back.model, ids), logits(gguf_->model, ids))) << p;
  }
}

TEST_F(CausalLmParityTest, TransformersReadsTheFolder) {
  const std::string python = kd::test::python();
  ASSERT_TRUE(fs::exists(python)) << python << " not found (run scripts/setup.sh)";
  const auto& tok = gguf_->tokenizer;
  json expect = {{"texts", json::array()}, {"ids", json::array()}, {"prompts", json::array()}};
  auto texts = wiki_lines(300);
  ASSERT_EQ(texts.size(), 300u);
  for (const std::string extra : {"Café 1/2 ½ 3.14 😀 日本語", "  two  spaces\tand tab", "<|im_start|>user\nHi<|im_end|>"})
    texts.push_back(extra);
  for (const auto& t : texts) {
    expect["texts"].push_back(t);
    expect["ids"].push_back(tok.encode(t));
  }
  expect["special"] = {{"bos_token", tok.token(tok.bos_id)}, {"eos_token", tok.token(tok.eos_id)},
                       {"pad_token", tok.token(tok.pad_id)}};
  expect["chat"] = {{"user", "What is the capital of France?"},
                    {"prompt", kd::chat_prompt(tok, "What is the capital of France?")}};
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  const auto ps = prompts();
  ASSERT_EQ(ps.size(), 2u) << "a wikitext line of 40 to 100 tokens and the chat prompt";
  // transformers' logits must lie within rounding of kd's: the float32 bound of tests/tolerance.h for the
  // model's widths and depth, relative to each logit's size (|logit| + the rms of the logits), which
  // check_llm_folder.py applies.
  const auto& o = gguf_->model->options();
  expect["logits_relative_bound"] = kd::test::relative_rounding_bound(
      kd::test::kEps32, std::max(o.hidden_size, o.intermediate_size), o.num_layers + 1);
  for (size_t i = 0; i < ps.size(); ++i) {
    const auto ids = tok.encode(ps[i]);
    expect["prompts"].push_back(ids);
    tensors.emplace_back("logits." + std::to_string(i), logits(gguf_->model, ids));
  }
  const auto dir = fs::path(folder_).parent_path();
  kd::write_json_atomic((dir / "expect.json").string(), expect);
  kd::save_safetensors((dir / "expect.safetensors").string(), tensors);
  const std::string cmd = "'" + python + "' '" + kd::test::source_dir() + "/tests/python/check_llm_folder.py' '" +
                          folder_ + "' '" + (dir / "expect.json").string() + "' '" +
                          (dir / "expect.safetensors").string() + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace
