#include "kd/io/config.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "kd/io/atomic_file.h"

namespace kd {

namespace {

std::string line_of(const YAML::Node& n) {
  const auto m = n.Mark();
  return m.line >= 0 ? " (line " + std::to_string(m.line + 1) + ")" : "";
}

const char* readable_type(const char* mangled) {
  const std::string t = mangled;
  if (t == typeid(double).name() || t == typeid(float).name()) return "a number";
  if (t == typeid(int64_t).name() || t == typeid(int).name()) return "an integer";
  if (t == typeid(bool).name()) return "true or false";
  if (t == typeid(std::string).name()) return "a string";
  return "a value of another type";
}

void apply_override(YAML::Node root, const std::string& spec, const std::string& source) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(located("--set " + spec, "expected key=value", "e.g. --set train.lr=3e-5"));
  const std::string key = spec.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(spec.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError(located("--set " + spec, "value is not valid YAML", e.msg));
  }
  // Walk the dotted path, creating maps as needed. Nodes are handles, so assigning through `cur`
  // edits the tree.
  std::vector<YAML::Node> chain{root};
  std::stringstream ss(key);
  std::string part;
  std::vector<std::string> parts;
  while (std::getline(ss, part, '.')) parts.push_back(part);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = chain.back()[parts[i]];
    if (next.IsDefined() && !next.IsNull() && !next.IsMap())
      throw ConfigError(located("--set " + spec, "'" + parts[i] + "' in " + source + " is not a section"));
    if (!next.IsDefined() || next.IsNull()) chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
    chain.push_back(chain.back()[parts[i]]);
  }
  chain.back()[parts.back()] = value;
}

void collect_unused(const YAML::Node& node, const std::string& path, const std::set<std::string>& used,
                    const std::string& source) {
  if (!node.IsMap()) return;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const std::string full = path.empty() ? key : path + "." + key;
    if (!used.count(full)) {
      std::string known;
      for (const auto& u : used) {
        const std::string prefix = path.empty() ? "" : path + ".";
        if (u.rfind(prefix, 0) == 0 && u.find('.', prefix.size()) == std::string::npos)
          known += (known.empty() ? "" : ", ") + u.substr(prefix.size());
      }
      throw ConfigError(located(source + line_of(kv.first), "unknown config key '" + full + "'",
                                known.empty() ? "" : "known keys here: " + known));
    }
    if (kv.second.IsMap()) collect_unused(kv.second, full, used, source);
    if (kv.second.IsSequence())
      for (size_t i = 0; i < kv.second.size(); ++i)
        collect_unused(kv.second[i], full + "." + std::to_string(i), used, source);
  }
}

// yaml-cpp keeps both entries of a key written twice in one map and finds the first, so a second
// `train:` section would be ignored without a word.
void reject_duplicates(const YAML::Node& node, const std::string& path, const std::string& source) {
  if (node.IsMap()) {
    std::map<std::string, YAML::Mark> seen;
    for (const auto& kv : node) {
      // A YAML key may itself be a list or a map (`? [a, b]`); no config key is, and such a key has no name.
      if (kv.first.IsSequence() || kv.first.IsMap())
        throw ConfigError(located(source + line_of(kv.first), "a key " + (path.empty() ? "" : "under '" + path + "' ") +
                                                                  "is a list or a map",
                                  "config keys are plain names"));
      const std::string key = kv.first.as<std::string>();
      const std::string full = path.empty() ? key : path + "." + key;
      const auto [at, fresh] = seen.emplace(key, kv.first.Mark());
      if (!fresh)
        throw ConfigError(located(source + line_of(kv.first), "key '" + full + "' is given twice",
                                  "the first is at line " + std::to_string(at->second.line + 1) +
                                      "; merge the two into one"));
      reject_duplicates(kv.second, full, source);
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) reject_duplicates(node[i], path + "." + std::to_string(i), source);
  }
}

}  // namespace

std::string short_number(double value) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  if (!std::filesystem::exists(path)) throw IoError(located(path, "config file not found"));
  return from_string(read_file(path), path, overrides);
}

Config Config::from_string(const std::string& yaml, const std::string& source,
                           const std::vector<std::string>& overrides) {
  Config c;
  c.state_ = std::make_shared<State>();
  c.state_->source = source;
  try {
    c.state_->root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(located(source + ":" + std::to_string(e.mark.line + 1), "invalid YAML", e.msg));
  }
  if (!c.state_->root || c.state_->root.IsNull()) c.state_->root = YAML::Node(YAML::NodeType::Map);
  if (!c.state_->root.IsMap()) throw ConfigError(located(source, "the config must be a YAML map of sections"));
  reject_duplicates(c.state_->root, "", source);
  for (const auto& o : overrides) apply_override(c.state_->root, o, source);
  return c;
}

namespace {

bool may_change_at(const std::string& path, const std::vector<std::string>& may_change) {
  for (const auto& p : may_change)
    if (path == p || path.rfind(p + ".", 0) == 0) return true;
  return false;
}

std::string scalar_text(const YAML::Node& n) {
  if (!n || n.IsNull()) return "(absent)";
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

// "1.0e-4" and "0.0001" are one learning rate.
bool same_scalar(const std::string& a, const std::string& b) {
  if (a == b) return true;
  char *end_a = nullptr, *end_b = nullptr;
  const double x = std::strtod(a.c_str(), &end_a), y = std::strtod(b.c_str(), &end_b);
  return !a.empty() && !b.empty() && *end_a == '\0' && *end_b == '\0' && x == y;
}

std::string difference_at(const YAML::Node& a, const YAML::Node& b, const std::string& path,
                          const std::vector<std::string>& may_change) {
  if (!path.empty() && may_change_at(path, may_change)) return "";
  const bool a_has = a && !a.IsNull(), b_has = b && !b.IsNull();
  if (!a_has || !b_has) return a_has == b_has ? "" : path;
  if (a.IsMap() && b.IsMap()) {
    std::set<std::string> keys;
    for (const auto& kv : a) keys.insert(kv.first.as<std::string>());
    for (const auto& kv : b) keys.insert(kv.first.as<std::string>());
    // File order of `a` first, so the message names the first key a reader meets.
    std::vector<std::string> order;
    for (const auto& kv : a) order.push_back(kv.first.as<std::string>());
    for (const auto& k : keys)
      if (std::find(order.begin(), order.end(), k) == order.end()) order.push_back(k);
    for (const auto& k : order) {
      const std::string d = difference_at(a[k], b[k], path.empty() ? k : path + "." + k, may_change);
      if (!d.empty()) return d;
    }
    return "";
  }
  if (a.IsSequence() && b.IsSequence()) {
    if (a.size() != b.size()) return path;
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string d = difference_at(a[i], b[i], path + "." + std::to_string(i), may_change);
      if (!d.empty()) return d;
    }
    return "";
  }
  if (a.IsScalar() && b.IsScalar()) return same_scalar(a.Scalar(), b.Scalar()) ? "" : path;
  return path;
}

YAML::Node at_path(YAML::Node node, const std::string& path) {
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '.')) {
    if (!node) return node;
    if (node.IsSequence()) {
      const size_t i = std::stoul(part);
      node = i < node.size() ? node[i] : YAML::Node();
    } else if (node.IsMap()) {
      node = node[part];
    } else {
      return YAML::Node();
    }
  }
  return node;
}

}  // namespace

std::string first_difference(const YAML::Node& a, const YAML::Node& b, const std::vector<std::string>& may_change) {
  return difference_at(YAML::Clone(a), YAML::Clone(b), "", may_change);
}

void check_resume_config(const std::string& saved_path, const Config& now, const std::vector<std::string>& may_change) {
  Config saved = Config::load(saved_path);
  const std::string key = first_difference(saved.tree(), now.tree(), may_change);
  if (key.empty()) return;
  std::string allowed;
  for (const auto& m : may_change) allowed += (allowed.empty() ? "" : ", ") + m;
  throw ConfigError(located(now.source() + ": key '" + key + "'",
                            "is " + scalar_text(at_path(YAML::Clone(now.tree()), key)) + " but the run being resumed has " +
                                scalar_text(at_path(YAML::Clone(saved.tree()), key)) + " (" + saved_path + ")",
                            "a resumed run keeps its settings (only " + allowed +
                                " may change); use --overwrite or another --run-dir to start over"));
}

ConfigNode Config::root() { return ConfigNode(state_, state_->root, ""); }

void Config::check_all_used() const { collect_unused(state_->root, "", state_->used, state_->source); }

std::string Config::resolved_yaml() const {
  YAML::Emitter out;
  out << state_->root;
  return std::string(out.c_str()) + "\n";
}

ConfigNode::ConfigNode(std::shared_ptr<Config::State> state, YAML::Node node, std::string path)
    : state_(std::move(state)), node_(node), path_(std::move(path)) {}

YAML::Node ConfigNode::lookup(const std::string& key) const {
  const YAML::Node& cnode = node_;  // const access does not insert the key
  return cnode[key];
}

bool ConfigNode::has(const std::string& key) const {
  auto v = lookup(key);
  return v && !v.IsNull();
}

bool ConfigNode::is_list(const std::string& key) const {
  auto v = lookup(key);
  return v && v.IsSequence();
}

bool ConfigNode::is_map(const std::string& key) const {
  auto v = lookup(key);
  return v && v.IsMap();
}

std::vector<std::string> ConfigNode::keys() const {
  std::vector<std::string> out;
  if (!node_ || !node_.IsMap()) return out;
  for (const auto& kv : node_) out.push_back(kv.first.as<std::string>());
  return out;
}

namespace {
void mark_used(const YAML::Node& node, const std::string& path, std::set<std::string>& used) {
  used.insert(path);
  if (node.IsMap())
    for (const auto& kv : node) mark_used(kv.second, path + "." + kv.first.as<std::string>(), used);
  if (node.IsSequence())
    for (size_t i = 0; i < node.size(); ++i) mark_used(node[i], path + "." + std::to_string(i), used);
}
}  // namespace

void ConfigNode::null_error(const std::string& key) const {
  throw ConfigError(located(where(key), "has no value", "write \"\" for an empty text, or leave the key out for its default"));
}

std::string ConfigNode::get_nonempty(const std::string& key, const std::string& fallback) {
  const std::string value = get<std::string>(key, fallback);
  if (value.empty()) throw ConfigError(located(where(key), "is empty", "name a folder, e.g. " + fallback));
  return value;
}

YAML::Node ConfigNode::subtree(const std::string& key) {
  const YAML::Node v = lookup(key);
  if (!v) {
    state_->used.insert(full(key));
    return YAML::Node();
  }
  mark_used(v, full(key), state_->used);
  return YAML::Clone(v);
}

std::string ConfigNode::where(const std::string& key) const {
  auto v = lookup(key);
  return state_->source + ": key '" + full(key) + "'" + (v ? line_of(v) : "");
}

void ConfigNode::type_error(const std::string& key, const char* type) const {
  throw ConfigError(located(where(key), std::string("expected ") + readable_type(type)));
}

std::vector<std::string> ConfigNode::get_list(const std::string& key, const std::vector<std::string>& fallback) {
  state_->used.insert(full(key));
  YAML::Node v = lookup(key);
  if (!v || v.IsNull()) {
    node_[key] = fallback;
    return fallback;
  }
  try {
    if (v.IsScalar()) return {v.as<std::string>()};
    return v.as<std::vector<std::string>>();
  } catch (const YAML::Exception&) {
    throw ConfigError(located(where(key), "expected a string or a list of strings"));
  }
}

std::vector<ConfigNode> ConfigNode::child_list(const std::string& key) {
  state_->used.insert(full(key));
  YAML::Node v = lookup(key);
  std::vector<ConfigNode> out;
  if (!v || v.IsNull()) return out;
  if (!v.IsSequence()) throw ConfigError(located(where(key), "expected a list of sections (- {type: ...})"));
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string path = full(key) + "." + std::to_string(i);
    if (!v[i].IsMap()) throw ConfigError(located(state_->source + ": key '" + path + "'" + line_of(v[i]),
                                                 "expected a section (a YAML map)"));
    state_->used.insert(path);
    out.emplace_back(state_, v[i], path);
  }
  return out;
}

ConfigNode ConfigNode::child(const std::string& key) {
  state_->used.insert(full(key));
  YAML::Node v = lookup(key);
  if (!v || v.IsNull()) {
    node_[key] = YAML::Node(YAML::NodeType::Map);
    // A fresh handle: assigning to `v` would write into the node it refers to, not rebind it.
    return ConfigNode(state_, lookup(key), full(key));
  }
  if (!v.IsMap()) {
    throw ConfigError(located(where(key), "expected a section (a YAML map)"));
  }
  return ConfigNode(state_, v, full(key));
}

}  // namespace kd
