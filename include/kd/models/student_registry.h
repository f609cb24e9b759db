// The registry of student kinds the config can name (`student: {type: bilstm, ...}`). A student reads
// the teacher's WordPiece ids (the same batches feed both), keeps the teacher's label list and
// max_length, and may start from the teacher's weights (its word embeddings, or for a Transformer
// student its layers).
//
// Each kind lives in one file, src/models/<kind>_student.cpp, which reads the kind's config section and
// (for kinds with their own folder format) its saved folder; student_registry.cpp lists the kinds.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "kd/io/config.h"
#include "kd/models/text_classifier.h"
#include "kd/util/registry.h"

namespace kd {

struct StudentKind {
  // Builds the student from its config section; ConfigError naming the key for impossible sizes.
  std::function<std::unique_ptr<TextClassifier>(ConfigNode& section, const TextClassifier& teacher)> make;
  // Loads a folder whose kd.json names this kind; empty when the kind saves in another model type's
  // format (the Transformer student is saved as a "bert" folder).
  std::function<std::unique_ptr<TextClassifier>(const std::string& dir)> load;
};

// "bilstm", "textcnn", "bert".
const Registry<StudentKind>& student_registry();

// Reads `type` from the section and builds the student; ConfigError naming the key for an unknown
// type or impossible sizes.
std::unique_ptr<TextClassifier> make_student(ConfigNode section, const TextClassifier& teacher);

}  // namespace kd
