#include <string>
#include <vector>

#include "fuzz_targets.h"
#include "kd/error.h"
#include "kd/io/config.h"

namespace kd::fuzz {

namespace {

// Every typed getter on every key of `node`, and the same for the maps and lists of maps below it, down
// to `depth` levels.
void read_all(ConfigNode node, int depth) {
  for (const auto& key : node.keys()) {
    node.has(key);
    node.where(key);
    try { node.get<std::string>(key, "x"); } catch (const Error&) {}
    try { node.get<int64_t>(key, 0); } catch (const Error&) {}
    try { node.get<double>(key, 0.5); } catch (const Error&) {}
    try { node.get<bool>(key, false); } catch (const Error&) {}
    try { node.get_list(key, {"a"}); } catch (const Error&) {}
    try { node.require<int>(key); } catch (const Error&) {}
    try { node.get_nonempty(key, "x"); } catch (const Error&) {}
    if (depth <= 0) continue;
    try {
      if (node.is_map(key)) read_all(node.child(key), depth - 1);
      if (node.is_list(key))
        for (auto& item : node.child_list(key)) read_all(item, depth - 1);
    } catch (const Error&) {
    }
  }
}

}  // namespace

int config_yaml_input(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::vector<std::vector<std::string>> overrides = {{}, {"train.lr=0.5", "data.text_columns=[a, b]"}};
  for (const auto& o : overrides) {
    try {
      Config config = Config::from_string(text, "fuzz.yaml", o);
      ConfigNode root = config.root();
      // Keys a run reads, with their defaults recorded where absent.
      try { root.get<int64_t>("seed", 42); } catch (const Error&) {}
      try { root.get_nonempty("run_dir", "runs/x"); } catch (const Error&) {}
      try {
        ConfigNode train = root.child("train");
        train.get<double>("lr", 1e-3);
        train.get<int64_t>("epochs", 3);
      } catch (const Error&) {
      }
      try { root.child("data").get_list("text_columns", {"sentence"}); } catch (const Error&) {}
      try { root.subtree("distill"); } catch (const Error&) {}
      read_all(root, 3);
      try { config.check_all_used(); } catch (const Error&) {}
      const std::string resolved = config.resolved_yaml();
      // What a run saves as config.yaml must load again (kd --resume reads it).
      const Config again = Config::from_string(resolved, "resolved.yaml");
      first_difference(config.tree(), again.tree(), {});
    } catch (const Error&) {
    }
  }
  return 0;
}

}  // namespace kd::fuzz

#ifdef KD_FUZZ_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kd::fuzz::config_yaml_input(data, size);
}
#endif
