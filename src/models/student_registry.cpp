#include "kd/models/student_registry.h"

#include <sstream>

#include "kd/error.h"
#include "kd/models/student_classifier.h"

namespace kd {

namespace {

template <typename T>
void check(bool ok, ConfigNode& s, const std::string& key, const T& value, const std::string& hint) {
  if (!ok) {
    std::ostringstream v;
    v << value;
    throw ConfigError(located(s.where(key), "impossible value " + v.str(), hint));
  }
}

int64_t positive(ConfigNode& s, const std::string& key, int64_t fallback) {
  const auto v = s.get<int64_t>(key, fallback);
  check(v >= 1, s, key, v, "must be at least 1");
  return v;
}

double dropout_rate(ConfigNode& s, double fallback) {
  const auto v = s.get<double>("dropout", fallback);
  check(v >= 0 && v < 1, s, "dropout", v, "a probability in [0, 1)");
  return v;
}

// The embedding width and starting table the student takes from the config's `init_embeddings`:
// "teacher" copies the teacher's word embeddings (V, E_t); when embedding_dim differs from E_t the
// table stays E_t wide and a learned projection E_t -> embedding_dim follows it. "random" keeps the
// module's own initialisation.
struct EmbeddingPlan {
  int64_t projection = 0;
  torch::Tensor table;  // undefined: random
};

EmbeddingPlan plan_embeddings(ConfigNode& s, const TextClassifier& teacher, int64_t embedding_dim, int64_t vocab) {
  const auto init = s.get<std::string>("init_embeddings", "teacher");
  EmbeddingPlan plan;
  if (init == "random") return plan;
  if (init != "teacher" && init != "teacher_pca")
    throw ConfigError(located(s.where("init_embeddings"), "unknown value '" + init + "'",
                              "teacher, teacher_pca or random"));
  // On the CPU whatever the teacher runs on: the student is built there (seeded CPU RNG), and the PCA
  // below then gives the same table on every device.
  plan.table = teacher.word_embeddings().detach();
  if (plan.table.defined()) plan.table = plan.table.to(torch::kCPU);
  if (!plan.table.defined())
    throw ConfigError(located(s.where("init_embeddings"), "the teacher (" + teacher.type() + ") has no word embeddings",
                              "use init_embeddings: random"));
  if (plan.table.size(0) < vocab)
    throw ConfigError(located(s.where("init_embeddings"), "the teacher's embedding table has fewer rows than its vocabulary"));
  if (init == "teacher_pca" && plan.table.size(1) != embedding_dim) {
    // A narrower table than the teacher's: the teacher's vectors along their top `embedding_dim`
    // principal axes. It keeps most of the table's variance at a fraction of the size, where a learned
    // projection would keep the full-width table (and its bytes) in the student.
    if (embedding_dim > plan.table.size(1))
      throw ConfigError(located(s.where("embedding_dim"), "teacher_pca cannot widen the teacher's " +
                                                              std::to_string(plan.table.size(1)) + "-wide table",
                                "use init_embeddings: teacher (learned projection) or a smaller embedding_dim"));
    auto t = plan.table.slice(0, 0, vocab).to(torch::kFloat64);               // (V, E_t)
    auto centred = t - t.mean(0, /*keepdim=*/true);
    auto vh = std::get<2>(torch::linalg_svd(centred, /*full_matrices=*/false));  // (E_t, E_t)
    plan.table = centred.matmul(vh.slice(0, 0, embedding_dim).t()).to(torch::kFloat32);  // (V, E)
    return plan;
  }
  if (plan.table.size(1) != embedding_dim) plan.projection = plan.table.size(1);
  return plan;
}

std::unique_ptr<TextClassifier> finish(std::unique_ptr<StudentClassifier> student, const EmbeddingPlan& plan) {
  if (plan.table.defined()) student->init_embeddings(plan.table);
  return student;
}

std::unique_ptr<TextClassifier> make_bilstm(ConfigNode& s, const TextClassifier& teacher) {
  BiLstmOptions o;
  o.vocab_size = teacher.tokenizer().vocab_size();
  o.num_classes = teacher.labels().size();
  o.padding_idx = teacher.tokenizer().pad_id();
  o.embedding_dim = positive(s, "embedding_dim", o.embedding_dim);
  o.hidden = positive(s, "hidden", o.hidden);
  o.layers = positive(s, "layers", o.layers);
  o.pooling = s.get<std::string>("pooling", o.pooling);
  if (o.pooling != "max" && o.pooling != "mean" && o.pooling != "last")
    throw ConfigError(located(s.where("pooling"), "unknown pooling '" + o.pooling + "'", "max, mean or last"));
  o.dropout = dropout_rate(s, o.dropout);
  const auto plan = plan_embeddings(s, teacher, o.embedding_dim, o.vocab_size);
  o.projection = plan.projection;
  return finish(std::make_unique<StudentClassifier>(o, teacher.tokenizer(), teacher.labels(), teacher.max_length()),
                plan);
}

std::unique_ptr<TextClassifier> make_text_cnn(ConfigNode& s, const TextClassifier& teacher) {
  TextCnnOptions o;
  o.vocab_size = teacher.tokenizer().vocab_size();
  o.num_classes = teacher.labels().size();
  o.padding_idx = teacher.tokenizer().pad_id();
  o.embedding_dim = positive(s, "embedding_dim", o.embedding_dim);
  o.kernel_sizes = s.get<std::vector<int64_t>>("kernel_sizes", o.kernel_sizes);
  check(!o.kernel_sizes.empty(), s, "kernel_sizes", "[]", "at least one kernel size");
  for (auto k : o.kernel_sizes)
    check(k >= 1 && k <= teacher.max_length(), s, "kernel_sizes", k,
          "each kernel size between 1 and max_length (" + std::to_string(teacher.max_length()) + ")");
  o.filters = positive(s, "filters", o.filters);
  o.dropout = dropout_rate(s, o.dropout);
  const auto plan = plan_embeddings(s, teacher, o.embedding_dim, o.vocab_size);
  o.projection = plan.projection;
  return finish(std::make_unique<StudentClassifier>(o, teacher.tokenizer(), teacher.labels(), teacher.max_length()),
                plan);
}

}  // namespace

const Registry<StudentFactory>& student_registry() {
  static const Registry<StudentFactory> r = [] {
    Registry<StudentFactory> reg("student");
    reg.add("bilstm", make_bilstm);
    reg.add("textcnn", make_text_cnn);
    return reg;
  }();
  return r;
}

std::unique_ptr<TextClassifier> make_student(ConfigNode section, const TextClassifier& teacher) {
  const auto type = section.require<std::string>("type");
  return student_registry().get(type, section.where("type"))(section, teacher);
}

}  // namespace kd
