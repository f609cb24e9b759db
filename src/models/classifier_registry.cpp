#include "kd/models/classifier_registry.h"

#include <filesystem>

#include "kd/io/atomic_file.h"
#include "kd/models/bert_text_classifier.h"
#include "kd/models/quantize.h"
#include "kd/models/student_config.h"
#include "kd/models/student_registry.h"

namespace kd {

namespace {

std::unique_ptr<TextClassifier> make_bert(ConfigNode& s, const LabelVocab& labels) {
  BertTextClassifierOptions o;
  o.path = s.require<std::string>("path");
  o.max_length = s.get<int64_t>("max_length", 128);
  o.classifier_dropout = s.get<double>("classifier_dropout", -1.0);
  if (s.has("dropout")) o.dropout = dropout_setting(s, 0.1);
  return BertTextClassifier::from_pretrained(o, labels);
}

const Registry<ClassifierLoader>& loader_registry() {
  static const Registry<ClassifierLoader> r = [] {
    Registry<ClassifierLoader> reg("model");
    reg.add("bert", [](const std::string& dir) -> std::unique_ptr<TextClassifier> { return BertTextClassifier::load(dir); });
    for (const auto& [type, kind] : student_registry().entries())
      if (kind.load) reg.add(type, kind.load);
    return reg;
  }();
  return r;
}

}  // namespace

const Registry<ClassifierFactory>& teacher_registry() {
  static const Registry<ClassifierFactory> r = [] {
    Registry<ClassifierFactory> reg("teacher");
    reg.add("bert", make_bert);
    return reg;
  }();
  return r;
}

std::unique_ptr<TextClassifier> make_teacher(ConfigNode section, const LabelVocab& labels) {
  const auto type = section.get<std::string>("type", "bert");
  return teacher_registry().get(type, section.where("type"))(section, labels);
}

std::unique_ptr<TextClassifier> load_classifier(const std::string& dir) {
  std::string type = "bert";
  const auto info = std::filesystem::path(dir) / "kd.json";
  if (std::filesystem::exists(info)) type = read_json(info.string()).value("type", std::string("bert"));
  // The type comes from a file, not the config: an unknown one is a malformed folder.
  const auto& loaders = loader_registry();
  const ClassifierLoader* loader = nullptr;
  try {
    loader = &loaders.get(type, info.string());
  } catch (const ConfigError&) {
    throw FormatError(located(info.string() + ": type", "unknown model type '" + type + "'",
                              "known types: " + loaders.known()));
  }
  auto model = (*loader)(dir);
  apply_folder_quantization(*model, dir);
  return model;
}

}  // namespace kd
