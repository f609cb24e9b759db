#include "kd/models/model_output.h"

#include "kd/error.h"

namespace kd {

const torch::Tensor& ModelOutput::feature(const std::string& name) const {
  auto it = features.find(name);
  if (it == features.end()) {
    std::string known;
    for (const auto& [k, v] : features) known += (known.empty() ? "" : ", ") + k;
    throw ConfigError(located("feature '" + name + "'", "not produced by the model",
                              known.empty() ? "request features when calling forward"
                                            : "known features: " + known));
  }
  return it->second;
}

}  // namespace kd
