// The YAML experiment config: the whole experiment in one file (torchdistill's rule), with
// `--set a.b=value` overrides, typed access that names the key and line on error, defaults written
// back so the resolved config can be saved with the run, and a check that every key was understood.
#pragma once

#include <yaml-cpp/yaml.h>

#include <memory>
#include <set>
#include <type_traits>
#include <string>
#include <vector>

#include "kd/error.h"

namespace kd {

class ConfigNode;

// The shortest decimal text that reads back as the same double.
std::string short_number(double value);

class Config {
 public:
  // Parses `path` (IoError if missing, ConfigError with line if malformed), then applies each
  // override "dotted.key=yaml-value" (ConfigError naming the override if malformed).
  static Config load(const std::string& path, const std::vector<std::string>& overrides = {});
  static Config from_string(const std::string& yaml, const std::string& source = "<string>",
                            const std::vector<std::string>& overrides = {});

  ConfigNode root();
  const std::string& source() const { return state_->source; }

  // Every key present in the file must have been read by the code; otherwise a ConfigError names the
  // first unknown key, its line, and the keys that are known at that level.
  void check_all_used() const;
  // YAML text of the config with all defaults filled in.
  std::string resolved_yaml() const;
  const YAML::Node& tree() const { return state_->root; }

  struct State {
    YAML::Node root;
    std::string source;
    std::set<std::string> used;  // dotted paths that were read
  };

 private:
  std::shared_ptr<State> state_;
};

// The first dotted key whose value differs between two resolved configs (present in one only, or another
// value; "" when none), skipping the keys at or under any of `may_change` (dotted paths).
std::string first_difference(const YAML::Node& a, const YAML::Node& b, const std::vector<std::string>& may_change);

// Before `--resume` continues a run: the run's saved config.yaml against `now` (resolved, defaults filled
// in). A ConfigError naming the first differing key, both values and the keys that may change, unless
// the key is under one of `may_change`. Nothing is written either way.
void check_resume_config(const std::string& saved_path, const Config& now, const std::vector<std::string>& may_change);

// A map in the config, addressed by its dotted path ("train", "data").
class ConfigNode {
 public:
  ConfigNode(std::shared_ptr<Config::State> state, YAML::Node node, std::string path);

  bool has(const std::string& key) const;
  bool is_list(const std::string& key) const;  // present and a YAML sequence
  bool is_map(const std::string& key) const;   // present and a YAML map
  // The keys present in this map, in file order (none are marked as read).
  std::vector<std::string> keys() const;
  // The value, or `fallback` (also recorded in the resolved config) when the key is absent.
  template <typename T>
  T get(const std::string& key, const T& fallback);
  // The value; a ConfigError naming the key when absent.
  template <typename T>
  T require(const std::string& key);
  // A string that must not be empty, such as a folder name (run_dir); `fallback` when absent.
  std::string get_nonempty(const std::string& key, const std::string& fallback);
  // A list of strings; a scalar is accepted as a one-element list.
  std::vector<std::string> get_list(const std::string& key, const std::vector<std::string>& fallback);
  // A nested map (created empty when absent, so defaults can be recorded inside it).
  ConfigNode child(const std::string& key);
  // A list of maps (none when absent); item i is addressed as "<path>.<key>.<i>" in messages.
  std::vector<ConfigNode> child_list(const std::string& key);

  // A copy of the YAML under `key` (a null node when absent), every key in it marked as read: for a
  // part of the config that is handed whole to another config (kd ablate's `with:` patches).
  YAML::Node subtree(const std::string& key);

  // "<file>: key 'train.lr' (line 12)" — for error messages about a value read from here.
  std::string where(const std::string& key) const;
  const std::string& path() const { return path_; }

 private:
  std::string full(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  YAML::Node lookup(const std::string& key) const;
  [[noreturn]] void type_error(const std::string& key, const char* type) const;
  [[noreturn]] void null_error(const std::string& key) const;

  std::shared_ptr<Config::State> state_;
  YAML::Node node_;
  std::string path_;
};

template <typename T>
T ConfigNode::get(const std::string& key, const T& fallback) {
  state_->used.insert(full(key));
  YAML::Node v = lookup(key);
  if (!v) {
    if constexpr (std::is_floating_point_v<T>) {
      node_[key] = short_number(static_cast<double>(fallback));  // "0.1", not "0.10000000000000001"
    } else {
      node_[key] = fallback;
    }
    return fallback;
  }
  if constexpr (std::is_same_v<T, std::string>) {
    // `key:` with nothing after it reads as the text "null" (a folder ./null for run_dir).
    if (v.IsNull()) null_error(key);
  }
  try {
    return v.as<T>();
  } catch (const YAML::Exception&) {
    type_error(key, typeid(T).name());
  }
}

template <typename T>
T ConfigNode::require(const std::string& key) {
  state_->used.insert(full(key));
  YAML::Node v = lookup(key);
  if (!v || v.IsNull())
    throw ConfigError(located(state_->source, "missing required key '" + full(key) + "'",
                              "add it to the config or pass --set " + full(key) + "=..."));
  try {
    return v.as<T>();
  } catch (const YAML::Exception&) {
    type_error(key, typeid(T).name());
  }
}

}  // namespace kd
