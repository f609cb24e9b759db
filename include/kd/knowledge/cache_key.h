// What produced a knowledge cache: the teacher (weights and tokenizer), the data file, how its rows
// were read and tokenized, and how the logits were stored. A cache is only used when the key it
// records equals the key the caller expects, so soft labels can never silently come from another
// teacher, another file or other settings.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kd/data/table_reader.h"
#include "kd/models/text_classifier.h"

namespace kd {

struct CacheKey {
  std::string teacher;    // FNV-1a 64 (hex) of the teacher folder's model.safetensors bytes
  std::string tokenizer;  // FNV-1a 64 (hex) of the vocabulary and the normalizer settings
  std::string data;       // FNV-1a 64 (hex) of the data file's bytes
  std::vector<std::string> text_columns;
  std::string label_column;  // empty: read unlabelled
  std::string table_format;  // "tsv", "csv", "jsonl" (auto resolved from the extension when it can be)
  bool header = true;
  int64_t max_length = 0;    // tokens per example the teacher saw
  int64_t top_k = 0;         // 0: all logits stored; as an expectation, < 0 accepts any
  std::string dtype = "F32"; // "F32" or "F16"; as an expectation, empty accepts any
  std::vector<std::string> labels;  // the teacher's class names, index = class id
  std::string augment;       // AugmentOptions::describe() for augmented copies of the data; empty: the rows as read

  // String metadata for the safetensors header (lists as JSON arrays).
  std::map<std::string, std::string> to_metadata() const;
  // FormatError naming `where` and the field when a field is missing or malformed.
  static CacheKey from_metadata(const std::map<std::string, std::string>& metadata, const std::string& where);
};

// The first field where a cache's key differs from the expected one.
struct KeyMismatch {
  std::string field;     // metadata name, e.g. "max_length"
  std::string what;      // human description, e.g. "teacher weights (hash of model.safetensors)"
  std::string cached;    // the cache's value
  std::string expected;  // the caller's value
  bool data = false;     // the data file differs (DataError) rather than the teacher or a setting (ConfigError)
};
std::optional<KeyMismatch> first_mismatch(const CacheKey& cached, const CacheKey& expected);

std::string fingerprint_tokenizer(const WordPieceTokenizer& tokenizer);  // hex
std::string table_format_name(TableFormat format, const std::string& path);  // Auto resolved by extension

// The key for caching `teacher` (loaded from `teacher_dir`) over `data_file` read with `table`.
// max_length 0 means the teacher's own; top_k 0 keeps all logits; fp16 stores half precision.
CacheKey make_cache_key(const std::string& teacher_dir, const TextClassifier& teacher, const std::string& data_file,
                        const TableOptions& table, int64_t top_k, bool fp16, int64_t max_length = 0);

}  // namespace kd
