// The BiLSTM student kind (Tang et al. 2019): its config section and its saved folder.
#include "kd/error.h"
#include "kd/models/bilstm.h"
#include "kd/models/student_classifier.h"
#include "kd/models/student_config.h"
#include "kd/models/student_registry.h"

namespace kd {

StudentKind bilstm_student_kind() {
  StudentKind kind;
  kind.make = [](ConfigNode& s, const TextClassifier& teacher) -> std::unique_ptr<TextClassifier> {
    BiLstmOptions o;
    o.vocab_size = teacher.tokenizer().vocab_size();
    o.num_classes = teacher.labels().size();
    o.padding_idx = teacher.tokenizer().pad_id();
    o.embedding_dim = positive_setting(s, "embedding_dim", o.embedding_dim);
    o.hidden = positive_setting(s, "hidden", o.hidden);
    o.layers = positive_setting(s, "layers", o.layers);
    o.pooling = s.get<std::string>("pooling", o.pooling);
    if (o.pooling != "max" && o.pooling != "mean" && o.pooling != "last")
      throw ConfigError(located(s.where("pooling"), "unknown pooling '" + o.pooling + "'", "max, mean or last"));
    o.dropout = dropout_setting(s, o.dropout);
    const auto plan = plan_embeddings(s, teacher, o.embedding_dim, o.vocab_size);
    o.projection = plan.projection;
    auto student = std::make_unique<StudentClassifier>(std::make_shared<BiLstmImpl>(o), "bilstm", teacher.tokenizer(),
                                                       teacher.labels(), teacher.max_length());
    if (plan.table.defined()) student->init_embeddings(plan.table);
    return student;
  };
  kind.load = [](const std::string& dir) -> std::unique_ptr<TextClassifier> {
    return StudentClassifier::load(dir, [](const nlohmann::json& j, const std::string& where) {
      return std::make_shared<BiLstmImpl>(BiLstmOptions::from_json(j, where));
    });
  };
  return kind;
}

}  // namespace kd
