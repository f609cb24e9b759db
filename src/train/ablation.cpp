#include "kd/train/ablation.h"

#include <cctype>
#include <filesystem>
#include <map>
#include <set>

#include "kd/eval/distill_report.h"
#include "kd/io/atomic_file.h"
#include "kd/train/distill_pipeline.h"
#include "kd/util/log.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

// "+ hidden states" -> "hidden-states".
std::string slug(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c))
      out += static_cast<char>(std::tolower(c));
    else if (!out.empty() && out.back() != '-')
      out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

// Every collection in `node` written inline (the file's block style would break a table cell).
void set_flow(YAML::Node node) {
  if (node.IsMap() || node.IsSequence()) node.SetStyle(YAML::EmitterStyle::Flow);
  if (node.IsMap())
    for (auto kv : node) set_flow(kv.second);
  if (node.IsSequence())
    for (auto item : node) set_flow(item);
}

std::string one_line(const YAML::Node& node) {
  if (!node || node.IsNull()) return "";
  YAML::Node copy = YAML::Clone(node);
  set_flow(copy);
  YAML::Emitter e;
  e << copy;
  return e.c_str();
}

// A patch: absent or null (none), else a map; ConfigError naming `where` otherwise, or when it sets run_dir.
YAML::Node read_patch(ConfigNode& node, const std::string& key) {
  const std::string where = node.where(key);
  YAML::Node patch = node.subtree(key);
  if (!patch || patch.IsNull()) return YAML::Node();
  if (!patch.IsMap())
    throw ConfigError(located(where, "must be a map of config sections", "e.g. with: {distill: {alpha: 0.9}}"));
  if (patch["run_dir"])
    throw ConfigError(located(where, "sets run_dir", "each variant runs in its own folder under the ablation's run_dir"));
  return patch;
}

}  // namespace

YAML::Node merge_config(const YAML::Node& base, const YAML::Node& patch) {
  if (!patch || patch.IsNull()) return YAML::Clone(base);  // no patch
  if (!patch.IsMap() || !base || !base.IsMap()) return YAML::Clone(patch);
  YAML::Node out = YAML::Clone(base);
  for (const auto& kv : patch) {
    const std::string key = kv.first.as<std::string>();
    if (kv.second.IsNull()) {
      out.remove(key);
    } else {
      const YAML::Node old = out[key];
      out[key] = old && old.IsMap() && kv.second.IsMap() ? merge_config(old, kv.second) : YAML::Clone(kv.second);
    }
  }
  return out;
}

AblationOptions AblationOptions::from(Config& config) {
  AblationOptions o;
  ConfigNode root = config.root();
  o.source = config.source();
  o.base = root.require<std::string>("base");
  o.run_dir = root.require<std::string>("run_dir");
  if (o.run_dir.empty()) throw ConfigError(located(root.where("run_dir"), "is empty", "name the ablation's folder"));
  o.with = read_patch(root, "with");
  if (!root.is_list("variants"))
    throw ConfigError(located(root.where("variants"), "must be a list of variants", "e.g. [{name: logits only}, ...]"));
  auto list = root.child_list("variants");
  if (list.size() < 2)
    throw ConfigError(located(root.where("variants"), "needs at least two variants", "an ablation compares variants"));
  std::set<std::string> names, folders;
  for (size_t i = 0; i < list.size(); ++i) {
    ConfigNode& v = list[i];
    AblationVariant a;
    a.name = v.require<std::string>("name");
    if (a.name.empty() || !names.insert(a.name).second)
      throw ConfigError(located(v.where("name"), a.name.empty() ? "is empty" : "'" + a.name + "' is given twice",
                                "each variant needs its own name"));
    const std::string s = slug(a.name);
    a.folder = std::to_string(i + 1) + (s.empty() ? "" : "-" + s);
    a.with = read_patch(v, "with");
    a.changes = one_line(a.with);
    o.variants.push_back(std::move(a));
  }
  return o;
}

Config AblationOptions::variant_config(size_t i) const {
  const AblationVariant& v = variants.at(i);
  if (!fs::exists(base))
    throw IoError(located(source + ": key 'base'", "no such config file: " + base, "paths are relative to where kd runs"));
  YAML::Node merged = merge_config(merge_config(Config::load(base).tree(), with), v.with);
  merged["run_dir"] = (fs::path(run_dir) / v.folder).string();
  YAML::Emitter e;
  e << merged;
  return Config::from_string(e.c_str(), base + ", as variant '" + v.name + "' of " + source);
}

Ablation::Ablation(AblationOptions options, torch::Device device, bool resume, bool progress)
    : options_(std::move(options)), resume_(resume) {
  for (size_t i = 0; i < options_.variants.size(); ++i) {
    log_info("checking variant '" + options_.variants[i].name + "'");
    configs_.push_back(std::make_unique<Config>(options_.variant_config(i)));
    const fs::path folder = fs::path(options_.run_dir) / options_.variants[i].folder;
    const bool continues = resume && fs::exists(folder / "config.yaml");
    pipelines_.push_back(DistillPipeline::from_config(*configs_.back(), device, continues, progress));
    if (continues) check_resume_config((folder / "config.yaml").string(), *configs_.back(), distill_resumable_keys());
  }
}

Ablation::~Ablation() = default;

std::vector<std::string> Ablation::outputs() const {
  std::vector<std::string> out = {"ablation.yaml", "ablation.json", "ablation.md"};
  for (const auto& v : options_.variants) out.push_back(v.folder);
  return out;
}

AblationReport Ablation::run() {
  AblationReport report;
  report.source = options_.source;
  report.base = options_.base;
  report.run_dir = options_.run_dir;
  report.common_changes = one_line(options_.with);
  report.cpu = cpu_model_name();
  report.threads = torch::get_num_threads();
  // Time already spent on each variant by the runs this one resumes.
  std::map<std::string, double> spent;
  const fs::path previous = fs::path(options_.run_dir) / "ablation.json";
  if (resume_ && fs::exists(previous))
    for (const auto& v : read_json(previous.string()).value("variants", nlohmann::json::array()))
      if (v.contains("folder") && v.value("wall_seconds", 0.0) > 0) spent[v["folder"]] = v["wall_seconds"];
  for (const auto& v : options_.variants) {
    AblationRow row;
    row.name = v.name;
    row.folder = v.folder;
    row.changes = v.changes;
    row.wall_seconds = spent.count(v.folder) ? spent[v.folder] : 0;
    report.rows.push_back(std::move(row));
  }
  for (size_t i = 0; i < pipelines_.size(); ++i) {
    const AblationVariant& v = options_.variants[i];
    const fs::path folder = fs::path(options_.run_dir) / v.folder;
    log_info(strf("variant %zu of %zu, '%s', in %s", i + 1, pipelines_.size(), v.name.c_str(), folder.c_str()));
    fs::create_directories(folder);
    write_file_atomic((folder / "config.yaml").string(), configs_[i]->resolved_yaml());
    const DistillSummary s = pipelines_[i]->run();
    report.rows[i].wall_seconds += s.wall_seconds;
    report.date = utc_now_iso();
    report.read_results();
    write_ablation_report(options_.run_dir, report);
  }
  return report;
}

}  // namespace kd
