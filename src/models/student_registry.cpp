#include "kd/models/student_registry.h"

namespace kd {

// One per file: src/models/<kind>_student.cpp.
StudentKind bilstm_student_kind();
StudentKind text_cnn_student_kind();
StudentKind bert_student_kind();

const Registry<StudentKind>& student_registry() {
  static const Registry<StudentKind> r = [] {
    Registry<StudentKind> reg("student");
    reg.add("bilstm", bilstm_student_kind());
    reg.add("textcnn", text_cnn_student_kind());
    reg.add("bert", bert_student_kind());
    return reg;
  }();
  return r;
}

std::unique_ptr<TextClassifier> make_student(ConfigNode section, const TextClassifier& teacher) {
  const auto type = section.require<std::string>("type");
  return student_registry().get(type, section.where("type")).make(section, teacher);
}

}  // namespace kd
