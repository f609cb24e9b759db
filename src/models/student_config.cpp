#include "kd/models/student_config.h"

#include <sstream>

#include "kd/error.h"

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

}  // namespace

int64_t positive_setting(ConfigNode& s, const std::string& key, int64_t fallback) {
  const auto v = s.get<int64_t>(key, fallback);
  check(v >= 1, s, key, v, "must be at least 1");
  return v;
}

double dropout_setting(ConfigNode& s, double fallback) {
  const auto v = s.get<double>("dropout", fallback);
  check(v >= 0 && v < 1, s, "dropout", v, "a probability in [0, 1)");
  return v;
}

EmbeddingPlan plan_embeddings(ConfigNode& s, const TextClassifier& teacher, int64_t embedding_dim, int64_t vocab,
                              const std::string& width_key, const std::string& fallback) {
  const auto init = s.get<std::string>("init_embeddings", fallback);
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
      throw ConfigError(located(s.where(width_key), "teacher_pca cannot widen the teacher's " +
                                                              std::to_string(plan.table.size(1)) + "-wide table",
                                "use init_embeddings: teacher (learned projection) or a smaller " + width_key));
    auto t = plan.table.slice(0, 0, vocab).to(torch::kFloat64);  // (V, E_t)
    auto mean = t.mean(0, /*keepdim=*/true);                      // (1, E_t)
    auto vh = std::get<2>(torch::linalg_svd(t - mean, /*full_matrices=*/false));  // (E_t, E_t)
    auto axes = vh.slice(0, 0, embedding_dim).t();                // (E_t, E)
    plan.table = (t - mean).matmul(axes).to(torch::kFloat32);     // (V, E)
    plan.axes = axes.to(torch::kFloat32);
    plan.mean = mean.squeeze(0).to(torch::kFloat32);
    return plan;
  }
  if (plan.table.size(1) != embedding_dim) plan.projection = plan.table.size(1);
  return plan;
}

}  // namespace kd
