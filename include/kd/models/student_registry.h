// The registry of student architectures the config can name (`student: {type: bilstm, ...}`).
// A student reads the teacher's WordPiece ids (the same batches feed both), keeps the teacher's label
// list and max_length, and may start its word embeddings from teacher.word_embeddings().
#pragma once

#include <functional>
#include <memory>

#include "kd/io/config.h"
#include "kd/models/text_classifier.h"
#include "kd/util/registry.h"

namespace kd {

using StudentFactory =
    std::function<std::unique_ptr<TextClassifier>(ConfigNode& section, const TextClassifier& teacher)>;

// "bilstm", "textcnn".
const Registry<StudentFactory>& student_registry();

// Reads `type` from the section and builds the student; ConfigError naming the key for an unknown
// type or impossible sizes.
std::unique_ptr<TextClassifier> make_student(ConfigNode section, const TextClassifier& teacher);

}  // namespace kd
