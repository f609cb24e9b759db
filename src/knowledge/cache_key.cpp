#include "kd/knowledge/cache_key.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "kd/error.h"
#include "kd/util/fnv1a.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

std::string json_list(const std::vector<std::string>& v) { return nlohmann::json(v).dump(); }

const std::string& field(const std::map<std::string, std::string>& m, const std::string& name,
                         const std::string& where) {
  auto it = m.find(name);
  if (it == m.end())
    throw FormatError(located(where, "metadata has no '" + name + "'", "rebuild the cache with kd cache"));
  return it->second;
}

int64_t int_field(const std::map<std::string, std::string>& m, const std::string& name, const std::string& where) {
  const std::string& s = field(m, name, where);
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (s.empty() || used != s.size())
    throw FormatError(located(where + ": " + name, "'" + s + "' is not an integer", "rebuild the cache with kd cache"));
  return v;
}

std::vector<std::string> list_field(const std::map<std::string, std::string>& m, const std::string& name,
                                    const std::string& where) {
  const std::string& s = field(m, name, where);
  try {
    return nlohmann::json::parse(s).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception&) {
    throw FormatError(located(where + ": " + name, "'" + s + "' is not a JSON list of strings",
                              "rebuild the cache with kd cache"));
  }
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

std::map<std::string, std::string> CacheKey::to_metadata() const {
  return {{"teacher", teacher},
          {"tokenizer", tokenizer},
          {"data", data},
          {"text_columns", json_list(text_columns)},
          {"label_column", label_column},
          {"table_format", table_format},
          {"header", header ? "true" : "false"},
          {"max_length", std::to_string(max_length)},
          {"top_k", std::to_string(top_k)},
          {"dtype", dtype},
          {"labels", json_list(labels)},
          {"augment", augment}};
}

CacheKey CacheKey::from_metadata(const std::map<std::string, std::string>& m, const std::string& where) {
  CacheKey k;
  k.teacher = field(m, "teacher", where);
  k.tokenizer = field(m, "tokenizer", where);
  k.data = field(m, "data", where);
  k.text_columns = list_field(m, "text_columns", where);
  k.label_column = field(m, "label_column", where);
  k.table_format = field(m, "table_format", where);
  const std::string& header = field(m, "header", where);
  if (header != "true" && header != "false")
    throw FormatError(located(where + ": header", "'" + header + "' is not true or false"));
  k.header = header == "true";
  k.max_length = int_field(m, "max_length", where);
  k.top_k = int_field(m, "top_k", where);
  k.dtype = field(m, "dtype", where);
  if (k.dtype != "F32" && k.dtype != "F16")
    throw FormatError(located(where + ": dtype", "'" + k.dtype + "' is not F32 or F16"));
  k.labels = list_field(m, "labels", where);
  auto augment = m.find("augment");  // absent in caches written before augmentation existed
  if (augment != m.end()) k.augment = augment->second;
  return k;
}

std::optional<KeyMismatch> first_mismatch(const CacheKey& c, const CacheKey& e) {
  const auto mc = c.to_metadata(), me = e.to_metadata();
  // Most telling first: another teacher explains every later difference.
  struct Field {
    const char* name;
    const char* what;
    bool data;
  };
  static const Field kFields[] = {
      {"teacher", "teacher weights (hash of model.safetensors)", false},
      {"tokenizer", "teacher tokenizer (hash of vocabulary and settings)", false},
      {"labels", "teacher label list", false},
      {"data", "data file contents (hash)", true},
      {"table_format", "table format", false},
      {"header", "header row setting", false},
      {"text_columns", "text columns", false},
      {"label_column", "label column", false},
      {"max_length", "max_length", false},
      {"top_k", "top_k", false},
      {"dtype", "stored dtype", false},
      {"augment", "augmentation settings", false},
  };
  for (const Field& f : kFields) {
    if (std::string(f.name) == "top_k" && e.top_k < 0) continue;
    if (std::string(f.name) == "dtype" && e.dtype.empty()) continue;
    const std::string& a = mc.at(f.name);
    const std::string& b = me.at(f.name);
    if (a != b) return KeyMismatch{f.name, f.what, a, b, f.data};
  }
  return std::nullopt;
}

std::string fingerprint_tokenizer(const WordPieceTokenizer& tokenizer) {
  Fnv1a64 h;
  const WordPieceOptions& o = tokenizer.options();
  h.update_field("wordpiece-v1");
  h.update_field(o.lowercase ? "lower" : "cased");
  h.update_field(o.strip_accents.value_or(o.lowercase) ? "strip" : "keep");
  h.update_field(o.tokenize_chinese_chars ? "cjk" : "no-cjk");
  h.update_field(o.clean_text ? "clean" : "raw");
  h.update_field(std::to_string(o.max_input_chars_per_word));
  for (const std::string* s : {&o.continuation_prefix, &o.unk_token, &o.cls_token, &o.sep_token, &o.pad_token,
                               &o.mask_token})
    h.update_field(*s);
  h.update_field(std::to_string(tokenizer.vocab_size()));
  for (const std::string& token : tokenizer.vocab()) h.update_field(token);
  return h.hex();
}

std::string table_format_name(TableFormat format, const std::string& path) {
  switch (format) {
    case TableFormat::Tsv: return "tsv";
    case TableFormat::Csv: return "csv";
    case TableFormat::Jsonl: return "jsonl";
    case TableFormat::Auto: break;
  }
  // The same mapping read_table uses, so "auto" and the explicit format give the same key.
  const std::string ext = lower(fs::path(path).extension().string());
  if (ext == ".tsv" || ext == ".txt") return "tsv";
  if (ext == ".csv") return "csv";
  if (ext == ".jsonl" || ext == ".json" || ext == ".ndjson") return "jsonl";
  return "auto";
}

CacheKey make_cache_key(const std::string& teacher_dir, const TextClassifier& teacher, const std::string& data_file,
                        const TableOptions& table, int64_t top_k, bool fp16, int64_t max_length) {
  const fs::path weights = fs::path(teacher_dir) / "model.safetensors";
  if (!fs::exists(weights))
    throw IoError(located(weights.string(), "no such file", "the teacher folder must hold the model.safetensors it was loaded from"));
  if (top_k < 0) throw ConfigError(located("top_k", "must be >= 0 (0 = all logits), got " + std::to_string(top_k)));
  if (max_length < 0)
    throw ConfigError(located("max_length", "must be >= 0 (0 = the teacher's), got " + std::to_string(max_length)));
  CacheKey k;
  k.teacher = hex64(fnv1a64_file(weights.string()));
  k.tokenizer = fingerprint_tokenizer(teacher.tokenizer());
  k.data = hex64(fnv1a64_file(data_file));
  k.text_columns = table.text_columns;
  k.label_column = table.label_column;
  k.table_format = table_format_name(table.format, data_file);
  k.header = table.header;
  k.max_length = max_length > 0 ? max_length : teacher.max_length();
  k.top_k = top_k;
  k.dtype = fp16 ? "F16" : "F32";
  k.labels = teacher.labels().labels();
  return k;
}

}  // namespace kd
