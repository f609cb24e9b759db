#include "kd/models/classifier_registry.h"

#include <filesystem>

#include "kd/io/atomic_file.h"
#include "kd/models/bert_teacher.h"

namespace kd {

namespace {

std::unique_ptr<TextClassifier> make_bert(ConfigNode& s, const LabelVocab& labels) {
  BertTeacherOptions o;
  o.path = s.require<std::string>("path");
  o.max_length = s.get<int64_t>("max_length", 128);
  o.classifier_dropout = s.get<double>("classifier_dropout", -1.0);
  return BertTeacher::from_pretrained(o, labels);
}

const Registry<ClassifierLoader>& loader_registry() {
  static const Registry<ClassifierLoader> r = [] {
    Registry<ClassifierLoader> reg("model");
    reg.add("bert", [](const std::string& dir) -> std::unique_ptr<TextClassifier> { return BertTeacher::load(dir); });
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
  return loader_registry().get(type, info.string())(dir);
}

}  // namespace kd
