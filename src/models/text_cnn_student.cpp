// The TextCNN student kind (Kim 2014): its config section and its saved folder.
#include "kd/error.h"
#include "kd/models/student_classifier.h"
#include "kd/models/student_config.h"
#include "kd/models/student_registry.h"
#include "kd/models/text_cnn.h"

namespace kd {

StudentKind text_cnn_student_kind() {
  StudentKind kind;
  kind.make = [](ConfigNode& s, const TextClassifier& teacher) -> std::unique_ptr<TextClassifier> {
    TextCnnOptions o;
    o.vocab_size = teacher.tokenizer().vocab_size();
    o.num_classes = teacher.labels().size();
    o.padding_idx = teacher.tokenizer().pad_id();
    o.embedding_dim = positive_setting(s, "embedding_dim", o.embedding_dim);
    o.kernel_sizes = s.get<std::vector<int64_t>>("kernel_sizes", o.kernel_sizes);
    if (o.kernel_sizes.empty())
      throw ConfigError(located(s.where("kernel_sizes"), "impossible value []", "at least one kernel size"));
    for (auto k : o.kernel_sizes)
      if (k < 1 || k > teacher.max_length())
        throw ConfigError(located(s.where("kernel_sizes"), "impossible value " + std::to_string(k),
                                  "each kernel size between 1 and max_length (" +
                                      std::to_string(teacher.max_length()) + ")"));
    o.filters = positive_setting(s, "filters", o.filters);
    o.dropout = dropout_setting(s, o.dropout);
    const auto plan = plan_embeddings(s, teacher, o.embedding_dim, o.vocab_size);
    o.projection = plan.projection;
    auto student = std::make_unique<StudentClassifier>(std::make_shared<TextCnnImpl>(o), "textcnn",
                                                       teacher.tokenizer(), teacher.labels(), teacher.max_length());
    if (plan.table.defined()) student->init_embeddings(plan.table);
    return student;
  };
  kind.load = [](const std::string& dir) -> std::unique_ptr<TextClassifier> {
    return StudentClassifier::load(dir, [](const nlohmann::json& j, const std::string& where) {
      return std::make_shared<TextCnnImpl>(TextCnnOptions::from_json(j, where));
    });
  };
  return kind;
}

}  // namespace kd
