#include "kd/data/label_vocab.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <set>

#include "kd/error.h"
#include "kd/io/atomic_file.h"

namespace kd {

namespace {

// Parses an optionally signed decimal integer; false for anything else (including overflow), so
// such a label set falls back to string order.
bool as_integer(const std::string& s, long long* out) {
  if (s.empty()) return false;
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i == s.size()) return false;
  for (size_t k = i; k < s.size(); ++k)
    if (s[k] < '0' || s[k] > '9') return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno == ERANGE || end != s.c_str() + s.size()) return false;
  *out = v;
  return true;
}

// Error messages stay one readable line even for a vocabulary of thousands of labels.
std::string known_list(const std::vector<std::string>& labels) {
  constexpr size_t kShown = 20;
  std::string out;
  for (size_t i = 0; i < labels.size() && i < kShown; ++i) out += (i ? ", " : "") + ("'" + labels[i] + "'");
  if (labels.size() > kShown) out += ", ... (" + std::to_string(labels.size()) + " in all)";
  return out;
}

}  // namespace

LabelVocab::LabelVocab(std::vector<std::string> labels) : labels_(std::move(labels)) {
  for (size_t i = 0; i < labels_.size(); ++i) {
    if (labels_[i].empty()) throw DataError(located("labels", "a label is empty", "unlabelled rows carry no label"));
    if (!index_.emplace(labels_[i], static_cast<int64_t>(i)).second)
      throw DataError(located("labels", "label '" + labels_[i] + "' appears twice"));
  }
}

LabelVocab LabelVocab::build(const std::vector<TextRow>& rows) {
  std::set<std::string> seen;
  for (const auto& r : rows)
    if (!r.label.empty()) seen.insert(r.label);

  std::vector<std::string> labels(seen.begin(), seen.end());  // already in string order
  std::vector<std::pair<long long, std::string>> numeric;
  bool all_integer = !labels.empty();
  for (const auto& l : labels) {
    long long v = 0;
    if (!as_integer(l, &v)) {
      all_integer = false;
      break;
    }
    numeric.emplace_back(v, l);
  }
  if (all_integer) {
    // Numeric order keeps "2" before "10", so class ids match the integers the data set uses;
    // the string breaks ties between spellings like "1" and "01".
    std::sort(numeric.begin(), numeric.end());
    labels.clear();
    for (auto& [v, l] : numeric) labels.push_back(std::move(l));
  }
  return LabelVocab(std::move(labels));
}

int64_t LabelVocab::id(const std::string& label, const std::string& where) const {
  auto it = index_.find(label);
  if (it != index_.end()) return it->second;
  throw DataError(located(where, "unknown label '" + label + "' (known: " + known_list(labels_) + ")",
                          "the label set comes from the training data (labels.json next to the model)"));
}

void LabelVocab::save(const std::string& path) const { write_json_atomic(path, nlohmann::json(labels_)); }

LabelVocab LabelVocab::load(const std::string& path) {
  const nlohmann::json j = read_json(path);  // IoError / FormatError naming the file
  if (!j.is_array() || j.empty())
    throw FormatError(located(path, "expected a non-empty JSON array of label names", "e.g. [\"neg\", \"pos\"]"));
  std::vector<std::string> labels;
  std::set<std::string> seen;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& v = j[i];
    if (!v.is_string() || v.get<std::string>().empty())
      throw FormatError(located(path + ":[" + std::to_string(i) + "]", "label must be a non-empty string"));
    if (!seen.insert(v.get<std::string>()).second)
      throw FormatError(located(path + ":[" + std::to_string(i) + "]", "label '" + v.get<std::string>() + "' appears twice"));
    labels.push_back(v.get<std::string>());
  }
  return LabelVocab(std::move(labels));
}

}  // namespace kd
