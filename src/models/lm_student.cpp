#include "kd/models/lm_student.h"

#include <cmath>

#include "kd/error.h"

namespace kd {

std::vector<int64_t> LmStudentOptions::resolved_layers(int64_t teacher_count) const {
  if (num_layers <= 0)
    throw ConfigError(located("student.num_layers", "must be positive, got " + std::to_string(num_layers)));
  if (num_layers >= teacher_count)
    throw ConfigError(located("student.num_layers",
                              "a student of " + std::to_string(num_layers) + " layers is not smaller than the teacher (" +
                                  std::to_string(teacher_count) + " layers)",
                              "choose fewer layers than the teacher"));
  if (init != "teacher" && init != "random")
    throw ConfigError(located("student.init", "unknown initialization '" + init + "'", "known: teacher, random"));
  if (!teacher_layers.empty()) {
    if (static_cast<int64_t>(teacher_layers.size()) != num_layers)
      throw ConfigError(located("student.teacher_layers", "lists " + std::to_string(teacher_layers.size()) +
                                                              " layers for a student of " + std::to_string(num_layers)));
    for (auto l : teacher_layers)
      if (l < 0 || l >= teacher_count)
        throw ConfigError(located("student.teacher_layers", "layer " + std::to_string(l) +
                                                                " does not exist in a teacher of " +
                                                                std::to_string(teacher_count) + " layers (0-based)"));
    return teacher_layers;
  }
  std::vector<int64_t> out;
  for (int64_t i = 0; i < num_layers; ++i)
    out.push_back(num_layers == 1 ? 0
                                  : static_cast<int64_t>(std::llround(static_cast<double>(i) * (teacher_count - 1) /
                                                                      (num_layers - 1))));
  return out;
}

Llama make_lm_student(const Llama& teacher, const LmStudentOptions& options) {
  const auto& to = teacher->options();
  const auto layers = options.resolved_layers(to.num_layers);
  LlamaOptions so = to;
  so.num_layers = options.num_layers;
  torch::manual_seed(options.seed);
  Llama student(so);
  if (options.init == "random") return student;

  torch::NoGradGuard no_grad;
  auto src = teacher->named_parameters();
  for (auto& p : student->named_parameters()) {
    std::string name = p.key();
    if (name.rfind("layers.", 0) == 0) {
      const auto dot = name.find('.', 7);
      const int64_t i = std::stoll(name.substr(7, dot - 7));
      name = "layers." + std::to_string(layers[i]) + name.substr(dot);
    }
    const auto* from = src.find(name);
    if (!from || from->sizes() != p.value().sizes())
      throw ConfigError("student: teacher parameter '" + name + "' is missing or has another shape");
    p.value().copy_(*from);
  }
  return student;
}

int64_t count_parameters(const Llama& model) {
  int64_t n = 0;
  for (const auto& p : model->parameters()) n += p.numel();
  return n;
}

int64_t count_non_embedding_parameters(const Llama& model) {
  int64_t n = count_parameters(model) - model->embed_tokens->weight.numel();
  if (model->lm_head) n -= model->lm_head->weight.numel();
  return n;
}

}  // namespace kd
