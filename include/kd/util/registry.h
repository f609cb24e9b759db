// A named table of factories, one per kind of thing the config can build (teachers, students,
// losses). Keys are the config's `type:` values; an unknown key is a ConfigError listing the known.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kd/error.h"
#include "kd/util/strings.h"

namespace kd {

template <typename Factory>
class Registry {
 public:
  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  Registry& add(const std::string& key, Factory factory) {
    entries_.emplace(key, std::move(factory));
    return *this;
  }

  // `where` names the config key for the error message, e.g. "teacher.yaml: key 'model.type' (line 3)".
  const Factory& get(const std::string& key, const std::string& where) const {
    auto it = entries_.find(key);
    if (it == entries_.end())
      throw ConfigError(located(where, "unknown " + kind_ + " type '" + key + "'", "known types: " + known()));
    return it->second;
  }

  const std::map<std::string, Factory>& entries() const { return entries_; }

  std::string known() const {
    std::vector<std::string> keys;
    for (const auto& [k, v] : entries_) keys.push_back(k);
    return join(keys);
  }

 private:
  std::string kind_;
  std::map<std::string, Factory> entries_;
};

}  // namespace kd
