// Reading and writing Hugging Face tokenizer folders (tokenizer.json, vocab.txt,
// tokenizer_config.json, special_tokens_map.json) for WordPieceTokenizer.
#include "kd/text/wordpiece_tokenizer.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <type_traits>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/text/unicode.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace kd {

namespace {

constexpr const char* kTokenizerJson = "tokenizer.json";
constexpr const char* kVocabTxt = "vocab.txt";
constexpr const char* kTokenizerConfig = "tokenizer_config.json";
constexpr const char* kSpecialTokensMap = "special_tokens_map.json";

void sort_longest_first(std::vector<std::pair<std::string, int64_t>>& specials) {
  std::stable_sort(specials.begin(), specials.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

FormatError bad_field(const std::string& file, const std::string& key, const std::string& what) {
  return FormatError(located(file + ":" + key, what));
}

// Reads `key` as T when present and not null; a wrong type is a FormatError naming file and key.
template <typename T>
std::optional<T> get_opt(const json& j, const char* key, const std::string& file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  try {
    if constexpr (std::is_same_v<T, bool>) {
      if (!it->is_boolean()) throw bad_field(file, key, "expected true or false");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!it->is_string()) throw bad_field(file, key, "expected a string");
    } else {
      if (!it->is_number_integer()) throw bad_field(file, key, "expected an integer");
    }
    return it->get<T>();
  } catch (const json::exception& e) {
    throw bad_field(file, key, e.what());
  }
}

// A special token in tokenizer_config.json or special_tokens_map.json: a string or an AddedToken
// object {"content": ...}.
std::optional<std::string> get_token(const json& j, const char* key, const std::string& file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  throw bad_field(file, key, "expected a string or an object with a \"content\" string");
}

void apply_special_tokens(const json& j, const std::string& file, WordPieceOptions& o) {
  if (!j.is_object()) throw FormatError(located(file, "expected a JSON object"));
  for (auto [key, field] : {std::pair{"unk_token", &o.unk_token}, std::pair{"cls_token", &o.cls_token},
                            std::pair{"sep_token", &o.sep_token}, std::pair{"pad_token", &o.pad_token},
                            std::pair{"mask_token", &o.mask_token}}) {
    if (auto v = get_token(j, key, file)) *field = *v;
  }
}

// tokenizer_config.json as BertTokenizer(Fast) reads it: absent keys take the class defaults
// (do_lower_case=True, tokenize_chinese_chars=True, strip_accents=None), and they override what
// tokenizer.json's normalizer says. The kd_* keys hold settings Hugging Face cannot express there.
void apply_tokenizer_config(const json& j, const std::string& file, WordPieceOptions& o) {
  apply_special_tokens(j, file, o);
  o.lowercase = get_opt<bool>(j, "do_lower_case", file).value_or(true);
  o.strip_accents = get_opt<bool>(j, "strip_accents", file);
  o.tokenize_chinese_chars = get_opt<bool>(j, "tokenize_chinese_chars", file).value_or(true);
  if (auto v = get_opt<bool>(j, "kd_clean_text", file)) o.clean_text = *v;
  if (auto v = get_opt<int>(j, "kd_max_input_chars_per_word", file)) o.max_input_chars_per_word = *v;
  if (auto v = get_opt<std::string>(j, "kd_continuation_prefix", file)) o.continuation_prefix = *v;
  auto it = j.find("model_max_length");
  if (it != j.end() && it->is_number()) {
    // Unlimited models store a huge float (int(1e30)); clamp instead of overflowing.
    const double v = it->get<double>();
    o.model_max_length = v >= 9.2e18 ? std::numeric_limits<int64_t>::max() : it->get<int64_t>();
  }
}

}  // namespace

WordPieceTokenizer WordPieceTokenizer::from_vocab_file(const std::string& path, WordPieceOptions options) {
  const std::string text = read_file(path);
  try {
    unicode::check_utf8(text, path);
  } catch (const DataError& e) {
    throw FormatError(e.what());
  }
  // Python's universal newlines, as Hugging Face's load_vocab reads the file: "\n", "\r\n" and
  // "\r" all end a line; a final line without a newline still counts.
  std::vector<std::string> vocab;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n' && text[i] != '\r') continue;
    vocab.emplace_back(text, start, i - start);
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    start = i + 1;
  }
  if (start < text.size()) vocab.emplace_back(text, start, std::string::npos);
  if (vocab.empty()) throw FormatError(located(path, "empty vocabulary"));
  try {
    return WordPieceTokenizer(std::move(vocab), std::move(options));
  } catch (const FormatError& e) {
    throw FormatError(located(path, e.what()));
  }
}

WordPieceTokenizer WordPieceTokenizer::from_tokenizer_json(const std::string& path) {
  const json j = read_json(path);
  // Any value of an unexpected JSON type ends up here rather than as a raw nlohmann error.
  try {
    if (!j.is_object()) throw FormatError(located(path, "expected a JSON object"));
    const json model = j.value("model", json());
    if (!model.is_object() || model.value("type", "WordPiece") != "WordPiece" || !model.contains("vocab") ||
        !model["vocab"].is_object()) {
      throw bad_field(path, "model", "expected a WordPiece model with a \"vocab\" object");
    }
    std::vector<std::string> vocab(model["vocab"].size());
    std::vector<bool> seen(vocab.size(), false);
    for (const auto& [token, id] : model["vocab"].items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<uint64_t>() >= vocab.size() ||
          seen[id.get<size_t>()]) {
        throw bad_field(path, "model.vocab." + token, "ids must be 0..size-1, each used once");
      }
      seen[id.get<size_t>()] = true;
      vocab[id.get<size_t>()] = token;
    }

    WordPieceOptions o;
    if (auto v = get_opt<std::string>(model, "unk_token", path)) o.unk_token = *v;
    if (auto v = get_opt<std::string>(model, "continuing_subword_prefix", path)) o.continuation_prefix = *v;
    if (auto v = get_opt<int>(model, "max_input_chars_per_word", path)) o.max_input_chars_per_word = *v;

    const json norm = j.value("normalizer", json());
    if (norm.is_null()) {
      o.lowercase = o.tokenize_chinese_chars = o.clean_text = false;
      o.strip_accents = false;
    } else if (norm.is_object() && norm.value("type", "") == "BertNormalizer") {
      o.clean_text = get_opt<bool>(norm, "clean_text", path).value_or(true);
      o.tokenize_chinese_chars = get_opt<bool>(norm, "handle_chinese_chars", path).value_or(true);
      o.lowercase = get_opt<bool>(norm, "lowercase", path).value_or(true);
      o.strip_accents = get_opt<bool>(norm, "strip_accents", path);
    } else {
      throw bad_field(path, "normalizer", "unsupported normalizer (only BertNormalizer is implemented)");
    }
    const json pre = j.value("pre_tokenizer", json());
    if (!pre.is_object() || pre.value("type", "") != "BertPreTokenizer") {
      throw bad_field(path, "pre_tokenizer", "unsupported pre-tokenizer (only BertPreTokenizer is implemented)");
    }
    const json post = j.value("post_processor", json());
    if (post.is_object() && post.value("type", "") == "BertProcessing") {
      if (post.contains("cls") && post["cls"].is_array() && !post["cls"].empty()) o.cls_token = post["cls"][0];
      if (post.contains("sep") && post["sep"].is_array() && !post["sep"].empty()) o.sep_token = post["sep"][0];
    } else if (post.is_object() && post.value("type", "") == "TemplateProcessing" && post.contains("single") &&
               post["single"].is_array() && post["single"].size() >= 2) {
      // "[CLS] $A [SEP]": the first and last items name the special tokens.
      const json& first = post["single"].front();
      const json& last = post["single"].back();
      if (first.contains("SpecialToken")) o.cls_token = first["SpecialToken"].value("id", o.cls_token);
      if (last.contains("SpecialToken")) o.sep_token = last["SpecialToken"].value("id", o.sep_token);
    }
    const json padding = j.value("padding", json());
    if (padding.is_object()) o.pad_token = padding.value("pad_token", o.pad_token);

    WordPieceTokenizer tok = [&] {
      try {
        return WordPieceTokenizer(std::move(vocab), std::move(o));
      } catch (const FormatError& e) {
        throw FormatError(located(path, e.what()));
      }
    }();
    // Added tokens are matched verbatim before normalization. Those beyond our special tokens are
    // supported only in the plain form BERT checkpoints use.
    for (const json& t : j.value("added_tokens", json::array())) {
      const std::string content = t.value("content", "");
      const int64_t id = t.value("id", int64_t{-1});
      if (std::any_of(tok.specials_.begin(), tok.specials_.end(), [&](const auto& s) { return s.first == content; })) {
        continue;
      }
      if (content.empty() || id < 0 || id >= tok.vocab_size() || tok.vocab_[static_cast<size_t>(id)] != content ||
          t.value("normalized", false) || t.value("lstrip", false) || t.value("rstrip", false) ||
          t.value("single_word", false)) {
        throw bad_field(path, "added_tokens", "unsupported added token '" + content + "'");
      }
      tok.specials_.emplace_back(content, id);
    }
    sort_longest_first(tok.specials_);
    return tok;
  } catch (const json::exception& e) {
    throw FormatError(located(path, "unexpected tokenizer.json structure", e.what()));
  }
}

WordPieceTokenizer WordPieceTokenizer::from_folder(const std::string& dir) {
  const fs::path d(dir);
  if (!fs::is_directory(d)) {
    throw IoError(located(dir, "tokenizer folder not found", "point it at a Hugging Face BERT checkpoint folder"));
  }
  const std::string config_path = (d / kTokenizerConfig).string();
  const std::string map_path = (d / kSpecialTokensMap).string();
  const bool has_config = fs::exists(config_path);
  if (fs::exists(d / kTokenizerJson)) {
    WordPieceTokenizer tok = from_tokenizer_json((d / kTokenizerJson).string());
    if (!has_config) return tok;
    WordPieceOptions o = tok.options_;
    apply_tokenizer_config(read_json(config_path), config_path, o);
    WordPieceTokenizer out = [&] {
      try {
        return WordPieceTokenizer(tok.vocab_, o);
      } catch (const FormatError& e) {
        throw FormatError(located(config_path, e.what()));
      }
    }();
    for (const auto& s : tok.specials_) {
      if (std::none_of(out.specials_.begin(), out.specials_.end(), [&](const auto& x) { return x.first == s.first; })) {
        out.specials_.push_back(s);
      }
    }
    sort_longest_first(out.specials_);
    return out;
  }
  if (fs::exists(d / kVocabTxt)) {
    WordPieceOptions o;
    if (has_config) apply_tokenizer_config(read_json(config_path), config_path, o);
    // Hugging Face lets special_tokens_map.json override tokenizer_config.json.
    if (fs::exists(map_path)) apply_special_tokens(read_json(map_path), map_path, o);
    return from_vocab_file((d / kVocabTxt).string(), std::move(o));
  }
  throw IoError(located(dir, std::string("no ") + kTokenizerJson + " or " + kVocabTxt + " found",
                        "expected a Hugging Face BERT tokenizer folder"));
}

void WordPieceTokenizer::save(const std::string& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(located(dir, "cannot create folder: " + ec.message()));
  const fs::path d(dir);
  std::string text;
  for (size_t i = 0; i < vocab_.size(); ++i) {
    if (vocab_[i].find_first_of("\r\n") != std::string::npos) {
      throw ConfigError(located((d / kVocabTxt).string(), "token " + std::to_string(i) +
                                                              " contains a line break and cannot be saved"));
    }
    text += vocab_[i];
    text += '\n';
  }
  write_file_atomic((d / kVocabTxt).string(), text);

  const WordPieceOptions& o = options_;
  json specials = {{"unk_token", o.unk_token}, {"sep_token", o.sep_token}, {"pad_token", o.pad_token},
                   {"cls_token", o.cls_token}, {"mask_token", o.mask_token}};
  json config = specials;
  config["tokenizer_class"] = "BertTokenizer";
  config["do_lower_case"] = o.lowercase;
  config["strip_accents"] = o.strip_accents ? json(*o.strip_accents) : json();
  config["tokenize_chinese_chars"] = o.tokenize_chinese_chars;
  config["do_basic_tokenize"] = true;
  config["model_max_length"] = o.model_max_length;
  config["clean_up_tokenization_spaces"] = true;
  // Settings Hugging Face's BertTokenizer cannot express; written only when not the default, so a
  // standard tokenizer saves exactly what Hugging Face would read.
  const WordPieceOptions defaults;
  if (o.clean_text != defaults.clean_text) config["kd_clean_text"] = o.clean_text;
  if (o.max_input_chars_per_word != defaults.max_input_chars_per_word) {
    config["kd_max_input_chars_per_word"] = o.max_input_chars_per_word;
  }
  if (o.continuation_prefix != defaults.continuation_prefix) config["kd_continuation_prefix"] = o.continuation_prefix;
  write_json_atomic((d / kTokenizerConfig).string(), config);
  write_json_atomic((d / kSpecialTokensMap).string(), specials);
}

}  // namespace kd
