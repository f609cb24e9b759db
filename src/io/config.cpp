#include "kd/io/config.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
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
  for (const auto& o : overrides) apply_override(c.state_->root, o, source);
  return c;
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
