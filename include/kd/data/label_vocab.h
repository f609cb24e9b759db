// The list of class names a classifier predicts; index = class id. Saved with every model.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "kd/data/table_reader.h"

namespace kd {

class LabelVocab {
 public:
  LabelVocab() = default;
  explicit LabelVocab(std::vector<std::string> labels);

  // From the labels seen in rows: if every label is an integer, ordered numerically (so "0","1" keep
  // their meaning); otherwise sorted as strings. Unlabelled rows are ignored.
  static LabelVocab build(const std::vector<TextRow>& rows);

  // Class id of a label; DataError naming `where` (file:line) and the known labels if absent.
  int64_t id(const std::string& label, const std::string& where = "") const;
  bool contains(const std::string& label) const { return index_.count(label) > 0; }
  const std::string& name(int64_t id) const { return labels_.at(static_cast<size_t>(id)); }
  int64_t size() const { return static_cast<int64_t>(labels_.size()); }
  const std::vector<std::string>& labels() const { return labels_; }

  void save(const std::string& path) const;  // labels.json: ["neg", "pos"], atomic
  static LabelVocab load(const std::string& path);

 private:
  std::vector<std::string> labels_;
  std::unordered_map<std::string, int64_t> index_;
};

}  // namespace kd
