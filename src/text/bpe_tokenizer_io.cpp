// Loading a byte-level BPE tokenizer from GGUF metadata or from a Hugging Face tokenizer.json, and
// writing it as a tokenizer.json.
#include <nlohmann/json.hpp>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/gguf.h"
#include "kd/text/bpe_tokenizer.h"

using nlohmann::json;

namespace kd {

namespace {

BpePreTokenizer pre_by_name(const std::string& name, const std::string& where) {
  // llama.cpp names the pre-tokenizer after the model family; these share the two patterns kd knows.
  if (name == "gpt2" || name == "default" || name == "mpt" || name == "olmo" || name == "jais") return BpePreTokenizer::Gpt2;
  if (name == "smollm" || name == "starcoder" || name == "refact" || name == "command-r" || name == "codeshell")
    return BpePreTokenizer::SmolLM;
  throw FormatError(located(where, "unsupported pre-tokenizer '" + name + "'", "supported: gpt2, smollm (and aliases)"));
}

int64_t optional_id(const GgufFile& f, const std::string& key, int64_t vocab) {
  if (!f.has(key)) return -1;
  const auto id = f.get_int(key);
  if (id < 0 || id >= vocab)
    throw FormatError(located(f.path() + ": key '" + key + "'", "token id " + std::to_string(id) +
                                                                     " is outside the vocabulary of " + std::to_string(vocab)));
  return id;
}

}  // namespace

BpeTokenizer BpeTokenizer::from_gguf(const GgufFile& f) {
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    throw FormatError(located(f.path() + ": key 'tokenizer.ggml.model'", "tokenizer model '" + model +
                                                                              "' is not byte-level BPE ('gpt2')"));
  std::vector<std::string> tokens = f.get_strings("tokenizer.ggml.tokens");
  const auto& merges = f.get_strings("tokenizer.ggml.merges");
  std::vector<BpeTokenType> types;
  if (f.has("tokenizer.ggml.token_type")) {
    const auto& raw = f.get_ints("tokenizer.ggml.token_type");
    if (raw.size() != tokens.size())
      throw FormatError(located(f.path() + ": key 'tokenizer.ggml.token_type'",
                                std::to_string(raw.size()) + " types for " + std::to_string(tokens.size()) + " tokens"));
    for (auto t : raw) types.push_back(static_cast<BpeTokenType>(t));
  }
  const auto pre = pre_by_name(f.get_string("tokenizer.ggml.pre", "gpt2"), f.path() + ": key 'tokenizer.ggml.pre'");
  const auto vocab = static_cast<int64_t>(tokens.size());
  BpeTokenizer tok(std::move(tokens), merges, std::move(types), pre, f.path());
  tok.bos_id = optional_id(f, "tokenizer.ggml.bos_token_id", vocab);
  tok.eos_id = optional_id(f, "tokenizer.ggml.eos_token_id", vocab);
  tok.pad_id = optional_id(f, "tokenizer.ggml.padding_token_id", vocab);
  tok.chat_template = f.get_string("tokenizer.chat_template", "");
  return tok;
}

BpeTokenizer BpeTokenizer::from_gguf(const std::string& path) { return from_gguf(GgufFile(path)); }

BpeTokenizer BpeTokenizer::from_tokenizer_json(const std::string& path) {
  return from_tokenizer_json_text(read_file(path), path);
}

namespace {

BpeTokenizer tokenizer_from_json(const json& j, const std::string& path) {
  if (!j.is_object()) throw FormatError(located(path, "not a JSON object"));
  auto bad = [&](const std::string& key, const std::string& what) { return FormatError(located(path + ":" + key, what)); };
  if (!j.contains("model") || !j["model"].is_object()) throw bad("model", "missing or not an object");
  const json& m = j["model"];
  if (m.value("type", "") != "BPE") throw bad("model.type", "not a BPE model");
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw bad("model.vocab", "missing or not an object");

  // The vocabulary is a map token -> id; added tokens may extend it.
  std::map<int64_t, std::string> by_id;
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer()) throw bad("model.vocab", "id of '" + it.key() + "' is not an integer");
    by_id[it.value().get<int64_t>()] = it.key();
  }
  std::map<int64_t, bool> special;
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& a : j["added_tokens"]) {
      // A float id would be converted to an integer (undefined beyond its range): ids are integers.
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer())
        throw bad("added_tokens", "an entry's id is missing or not an integer");
      const int64_t id = a["id"].get<int64_t>();
      by_id[id] = a.at("content").get<std::string>();
      special[id] = a.value("special", false);
    }
  }
  std::vector<std::string> tokens;
  std::vector<BpeTokenType> types;
  for (const auto& [id, tok] : by_id) {
    if (id != static_cast<int64_t>(tokens.size()))
      throw bad("model.vocab", "ids are not contiguous from 0 (missing id " + std::to_string(tokens.size()) + ")");
    tokens.push_back(tok);
    auto s = special.find(id);
    types.push_back(s == special.end() ? BpeTokenType::Normal
                                       : (s->second ? BpeTokenType::Control : BpeTokenType::UserDefined));
  }
  std::vector<std::string> merges;
  if (m.contains("merges") && m["merges"].is_array()) {
    for (const auto& e : m["merges"]) {
      if (e.is_string()) merges.push_back(e.get<std::string>());
      else if (e.is_array() && e.size() == 2) merges.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());
      else throw bad("model.merges", "entry is neither \"a b\" nor [a, b]");
    }
  }

  // ByteLevel alone is gpt2; Digits(individual_digits) before it is smollm. Anything else is refused.
  BpePreTokenizer pre = BpePreTokenizer::Gpt2;
  const json& p = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json();
  auto is_byte_level = [](const json& x) {
    return x.is_object() && x.value("type", "") == "ByteLevel" && !x.value("add_prefix_space", false) &&
           x.value("use_regex", true);
  };
  if (p.is_object() && p.value("type", "") == "Sequence" && p.contains("pretokenizers") &&
      p["pretokenizers"].size() == 2 && p["pretokenizers"][0].value("type", "") == "Digits" &&
      p["pretokenizers"][0].value("individual_digits", false) && is_byte_level(p["pretokenizers"][1])) {
    pre = BpePreTokenizer::SmolLM;
  } else if (!is_byte_level(p)) {
    throw bad("pre_tokenizer", "only ByteLevel, or Digits(individual_digits) then ByteLevel, is supported");
  }
  return BpeTokenizer(std::move(tokens), merges, std::move(types), pre, path);
}

}  // namespace

BpeTokenizer BpeTokenizer::from_tokenizer_json_text(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number beyond double
    throw FormatError(located(source, "invalid JSON", e.what()));
  }
  try {
    return tokenizer_from_json(j, source);
  } catch (const json::exception& e) {
    // A value of the wrong JSON type where the format wants another (a string id, an object merge).
    throw FormatError(located(source, std::string("unexpected structure: ") + e.what()));
  }
}

std::string BpeTokenizer::to_tokenizer_json() const {
  json vocab = json::object();
  json added = json::array();
  for (int64_t id = 0; id < vocab_size(); ++id) {
    const std::string& t = tokens_[static_cast<size_t>(id)];
    const int64_t first = ids_.at(t);
    if (first != id)
      throw ConfigError(located(source_, "tokens " + std::to_string(first) + " and " + std::to_string(id) +
                                             " are both '" + t + "'; a tokenizer.json vocabulary cannot hold that"));
    vocab[t] = id;
    const auto type = types_[static_cast<size_t>(id)];
    if (type == BpeTokenType::Control || type == BpeTokenType::UserDefined)
      added.push_back({{"id", id}, {"content", t}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", false}, {"special", type == BpeTokenType::Control}});
  }
  json merge_pairs = json::array();
  for (const auto& m : merges()) {
    const auto sp = m.find(' ');
    merge_pairs.push_back({m.substr(0, sp), m.substr(sp + 1)});
  }
  auto byte_level = [](bool add_prefix_space, bool trim_offsets) {
    return json{{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", trim_offsets},
                {"use_regex", true}};
  };
  json pre = byte_level(false, true);
  if (pre_ == BpePreTokenizer::SmolLM)
    pre = {{"type", "Sequence"},
           {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(false, true)}}};
  const json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre},
      {"post_processor", byte_level(true, false)},
      {"decoder", byte_level(true, true)},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", merge_pairs}}},
  };
  try {
    return j.dump(1) + "\n";
  } catch (const json::type_error&) {
    throw FormatError(located(source_, "a token is not valid UTF-8; tokenizer.json cannot hold it"));
  }
}

}  // namespace kd
