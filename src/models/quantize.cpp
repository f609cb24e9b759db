#include "kd/models/quantize.h"

#include <filesystem>
#include <regex>
#include <set>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/io/int8_rows.h"
#include "kd/io/safetensors.h"
#include "kd/models/classifier_registry.h"
#include "kd/models/int8_kernels.h"
#include "kd/models/text_classifier.h"

namespace fs = std::filesystem;

namespace kd {

namespace {

constexpr int kFormatVersion = 1;
constexpr const char* kMethod = "int8_dynamic";

// Rewrites a float model.safetensors with every float tensor of 2 or more dimensions as int8 rows.
// Returns {int8 tensors, float tensors kept}.
std::pair<int64_t, int64_t> store_int8(const std::string& path) {
  const SafeTensorsFile file(path);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  int64_t quantized = 0, kept = 0;
  for (const auto& name : file.names()) {
    auto t = file.load(name);
    if (file.holds_float(name) && file.info(name).shape.size() >= 2) {
      auto q = quantize_rows(t);
      out.emplace_back(name, q.values);
      out.emplace_back(name + kInt8ScaleSuffix, q.scales);
      ++quantized;
    } else {
      out.emplace_back(name, t);
      ++kept;
    }
  }
  auto metadata = file.metadata();
  metadata["kd.weights"] = "int8 rows (tensor + <name>.int8_scale)";
  save_safetensors(path, out, metadata);
  return {quantized, kept};
}

std::vector<std::pair<std::string, Int8Quantizable*>> int8_parts(torch::nn::Module& module) {
  std::vector<std::pair<std::string, Int8Quantizable*>> parts;
  for (const auto& item : module.named_modules(/*name_prefix=*/"", /*include_self=*/true))
    if (auto* q = dynamic_cast<Int8Quantizable*>(item.value().get())) parts.emplace_back(item.key(), q);
  return parts;
}

// The names of the parts `keep_float` matches; ConfigError when it does not parse or matches none.
std::set<std::string> float_parts(const std::vector<std::pair<std::string, Int8Quantizable*>>& parts,
                                  const std::string& keep_float, const std::string& where) {
  std::set<std::string> keep;
  if (keep_float.empty()) return keep;
  const std::string flag = where + " '" + keep_float + "'";
  std::regex pattern;
  try {
    pattern = std::regex(keep_float, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw ConfigError(located(flag, std::string("not a regular expression: ") + e.what()));
  }
  std::string known;
  size_t listed = 0;
  for (const auto& [name, part] : parts) {
    if (std::regex_search(name, pattern)) keep.insert(name);
    if (known.size() < 120) {
      known += (known.empty() ? "" : ", ") + name;
      ++listed;
    }
  }
  if (keep.empty())
    throw ConfigError(located(flag, "matches none of the model's int8 parts",
                              "their names: " + known + (listed < parts.size() ? ", ..." : "")));
  if (keep.size() == parts.size())
    throw ConfigError(located(flag, "matches every int8 part, so nothing would run in int8", "match fewer"));
  return keep;
}

}  // namespace

int64_t quantize_int8(torch::nn::Module& module, const std::string& keep_float, const std::string& where) {
  const auto parts = int8_parts(module);
  const auto keep = float_parts(parts, keep_float, where);
  module.eval();
  int64_t n = 0;
  for (const auto& [name, part] : parts) {
    if (keep.count(name)) continue;
    part->quantize_int8();
    ++n;
  }
  return n;
}

void require_inference(const torch::nn::Module& module) {
  if (module.is_training())
    throw TrainError(located(module.name(), "an int8 model runs inference only",
                             "train or distil the float model, then kd quantize it"));
}

nlohmann::json write_int8_folder(TextClassifier& model, const std::string& source, const std::string& out,
                                 bool overwrite, const std::string& keep_float) {
  if (fs::exists(fs::path(source) / kQuantizationFile))
    throw FormatError(located(source, "the model is already int8", "quantize the float model it came from"));
  if (same_file(source, out)) throw ConfigError(located(out, "the output folder is the model folder", "name another"));
  if (fs::exists(out) && !overwrite)
    throw ConfigError(located(out, "already exists", "pass --overwrite to replace it, or name another folder"));
  float_parts(int8_parts(model.module()), keep_float, "--float-modules");  // checked before anything is written
  StagedDir staged{fs::path(out)};
  model.save(staged.path().string());
  const auto weights = staged.file("model.safetensors");
  if (!fs::exists(weights))
    throw FormatError(located(source, "model type '" + model.type() + "' does not save model.safetensors",
                              "kd quantize takes the classifier folders kd writes"));
  const auto [quantized, kept] = store_int8(weights);
  nlohmann::json info = {{"format_version", kFormatVersion},
                         {"method", kMethod},
                         {"weights", "int8, symmetric, one scale per output row (embedding tables: per token)"},
                         {"activations", "uint8, one scale and zero point per tensor, computed on every call (7-bit range)"},
                         {"engine", int8::engine()},
                         {"source", fs::absolute(source).lexically_normal().string()},
                         {"model_type", model.type()},
                         {"int8_tensors", quantized},
                         {"float_tensors", kept}};
  if (!keep_float.empty()) info["float_modules"] = keep_float;  // stored int8, computed in float
  write_json_atomic(staged.file(kQuantizationFile), info);
  // Read it back as every command will: a folder that does not load is never committed.
  load_classifier(staged.path().string());
  staged.commit();
  return info;
}

nlohmann::json read_folder_quantization(const std::string& dir) {
  const auto path = (fs::path(dir) / kQuantizationFile).string();
  if (!fs::exists(path)) return nullptr;
  auto info = read_json(path);
  if (!info.is_object() || info.value("method", std::string()) != kMethod)
    throw FormatError(located(path + ": method", "expected \"" + std::string(kMethod) + "\"",
                              "this kd runs int8_dynamic folders written by kd quantize"));
  if (info.value("format_version", int64_t{0}) != kFormatVersion)
    throw FormatError(located(path + ": format_version", "not supported",
                              "this kd reads version " + std::to_string(kFormatVersion)));
  if (const auto it = info.find("float_modules"); it != info.end() && !it->is_string())
    throw FormatError(located(path + ": float_modules", "expected a string (a regex), got " + it->dump()));
  return info;
}

nlohmann::json apply_folder_quantization(TextClassifier& model, const std::string& dir) {
  auto info = read_folder_quantization(dir);
  if (info.is_null()) return info;
  const auto path = (fs::path(dir) / kQuantizationFile).string();
  const auto keep = info.value("float_modules", std::string());
  const int64_t parts = quantize_int8(model.module(), keep, path + ": float_modules");
  if (parts == 0)
    throw FormatError(located(path, "model type '" + model.type() + "' has no part kd runs in int8"));
  info["int8_parts"] = parts;
  return info;
}

}  // namespace kd
