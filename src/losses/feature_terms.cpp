#include "kd/losses/feature_terms.h"

#include <cmath>
#include <set>

#include "kd/error.h"
#include "kd/losses/feature_losses.h"

namespace kd {

namespace {

std::string layer_name(const char* kind, int64_t layer) { return std::string(kind) + "." + std::to_string(layer); }

// The teacher side of layer pairs: kind.n for each (m, n).
std::vector<std::string> teacher_layers(const char* kind, const std::vector<std::pair<int64_t, int64_t>>& pairs) {
  std::vector<std::string> names;
  for (const auto& [m, n] : pairs) names.push_back(layer_name(kind, n));
  return names;
}

void require_encoders(ConfigNode& e, const FeatureTermContext& c) {
  if (c.student.layers < 1 || c.teacher.layers < 1)
    throw ConfigError(located(e.where("type"), "this term pairs Transformer layers",
                              "both the student and the teacher must be Transformers (student type: bert)"));
}

Schedule weight_of(ConfigNode& e) {
  return Schedule::from(e, "weight", 1.0, {0, 1e300, false, "a weight must be a finite number >= 0"});
}

// One layer of a model from entry[key]: "last" or a number 1..layers.
int64_t one_layer(ConfigNode& e, const std::string& key, int64_t layers) {
  const auto v = e.get<std::string>(key, "last");
  if (v == "last") return layers;
  int64_t n = 0;
  try {
    size_t used = 0;
    n = std::stoll(v, &used);
    if (used != v.size()) n = 0;
  } catch (const std::exception&) {
  }
  if (n < 1 || n > layers)
    throw ConfigError(located(e.where(key), "layer '" + v + "' does not exist",
                              "last, or a layer from 1 to " + std::to_string(layers)));
  return n;
}

// TinyBERT / DistilBERT: hidden states of paired layers.
class HiddenTerm : public FeatureTermImpl {
 public:
  HiddenTerm(std::vector<std::pair<int64_t, int64_t>> pairs, bool cosine, int64_t student_width, int64_t teacher_width)
      : pairs_(std::move(pairs)), cosine_(cosine) {
    // One projection for every pair, as TinyBERT's W_h: the student's space is one space.
    if (student_width != teacher_width)
      projection_ = register_module("projection", torch::nn::Linear(student_width, teacher_width));
  }
  torch::Tensor forward(const ModelOutput& s, const ModelOutput& t, const torch::Tensor& mask) override {
    torch::Tensor total;
    for (const auto& [m, n] : pairs_) {
      auto x = s.feature(layer_name("hidden", m));  // (B, T, Hs)
      if (projection_) x = projection_(x);          // (B, T, Ht)
      const auto& y = t.feature(layer_name("hidden", n));  // (B, T, Ht)
      auto l = cosine_ ? hidden_cosine(x, y, mask) : hidden_mse(x, y, mask);
      total = total.defined() ? total + l : l;
    }
    return total;
  }
  FeatureRequest needs() const override { return {true, false, false, false}; }
  std::vector<std::string> teacher_features() const override { return teacher_layers("hidden", pairs_); }

 private:
  std::vector<std::pair<int64_t, int64_t>> pairs_;
  bool cosine_;
  torch::nn::Linear projection_{nullptr};
};

// TinyBERT: raw attention scores of paired layers, head to head.
class AttentionMseTerm : public FeatureTermImpl {
 public:
  explicit AttentionMseTerm(std::vector<std::pair<int64_t, int64_t>> pairs) : pairs_(std::move(pairs)) {}
  torch::Tensor forward(const ModelOutput& s, const ModelOutput& t, const torch::Tensor& mask) override {
    torch::Tensor total;
    for (const auto& [m, n] : pairs_) {
      auto l = attention_score_mse(s.feature(layer_name("attn_scores", m)), t.feature(layer_name("attn_scores", n)), mask);
      total = total.defined() ? total + l : l;
    }
    return total;
  }
  FeatureRequest needs() const override { return {false, false, true, false}; }
  std::vector<std::string> teacher_features() const override { return teacher_layers("attn_scores", pairs_); }

 private:
  std::vector<std::pair<int64_t, int64_t>> pairs_;
};

// MiniLM: the self-attention distributions of one layer pair.
class AttentionKlTerm : public FeatureTermImpl {
 public:
  AttentionKlTerm(int64_t student_layer, int64_t teacher_layer) : m_(student_layer), n_(teacher_layer) {}
  torch::Tensor forward(const ModelOutput& s, const ModelOutput& t, const torch::Tensor& mask) override {
    return attention_kl(s.feature(layer_name("attn_scores", m_)), t.feature(layer_name("attn_scores", n_)), mask);
  }
  FeatureRequest needs() const override { return {false, false, true, false}; }
  std::vector<std::string> teacher_features() const override { return {layer_name("attn_scores", n_)}; }

 private:
  int64_t m_, n_;
};

// MiniLMv2: query–query, key–key, value–value relations of one layer pair.
class RelationTerm : public FeatureTermImpl {
 public:
  RelationTerm(std::vector<std::string> relations, int64_t heads, int64_t student_layer, int64_t teacher_layer)
      : relations_(std::move(relations)), heads_(heads), m_(student_layer), n_(teacher_layer) {}
  torch::Tensor forward(const ModelOutput& s, const ModelOutput& t, const torch::Tensor& mask) override {
    torch::Tensor total;
    for (const auto& r : relations_) {
      auto l = relation_kl(s.feature(layer_name(r.c_str(), m_)), t.feature(layer_name(r.c_str(), n_)), mask, heads_);
      total = total.defined() ? total + l : l;
    }
    return total;
  }
  FeatureRequest needs() const override { return {false, false, false, true}; }
  std::vector<std::string> teacher_features() const override {
    std::vector<std::string> names;
    for (const auto& r : relations_) names.push_back(layer_name(r.c_str(), n_));
    return names;
  }

 private:
  std::vector<std::string> relations_;
  int64_t heads_, m_, n_;
};

std::shared_ptr<FeatureTermImpl> make_hidden(ConfigNode& e, const FeatureTermContext& c, bool cosine) {
  require_encoders(e, c);
  auto pairs = layer_pairs(e, "layers", "uniform", c);
  if (e.get<bool>("embeddings", true)) pairs.insert(pairs.begin(), {0, 0});
  // `projection: false` says the widths are meant to match: a mismatch is then a mistake, not a layer to learn.
  if (!e.get<bool>("projection", true) && c.student.hidden != c.teacher.hidden)
    throw ConfigError(located(e.where("projection"),
                              "the student is " + std::to_string(c.student.hidden) + " wide, the teacher " +
                                  std::to_string(c.teacher.hidden),
                              "hidden states of different widths need the learned projection (projection: true)"));
  return std::make_shared<HiddenTerm>(std::move(pairs), cosine, c.student.hidden, c.teacher.hidden);
}

void require_same_heads(ConfigNode& e, const FeatureTermContext& c) {
  if (c.student.heads != c.teacher.heads)
    throw ConfigError(located(e.where("type"),
                              "the student has " + std::to_string(c.student.heads) + " attention heads, the teacher " +
                                  std::to_string(c.teacher.heads),
                              "head-to-head attention terms need equal head counts; relation_kl works across them"));
}

}  // namespace

std::vector<std::pair<int64_t, int64_t>> layer_pairs(ConfigNode& e, const std::string& key, const std::string& fallback,
                                                     const FeatureTermContext& c) {
  require_encoders(e, c);
  const int64_t M = c.student.layers, N = c.teacher.layers;
  std::vector<std::pair<int64_t, int64_t>> pairs;
  if (e.is_list(key)) {
    for (const auto& p : e.get<std::vector<std::vector<int64_t>>>(key, {})) {
      if (p.size() != 2) throw ConfigError(located(e.where(key), "expected [student layer, teacher layer] pairs"));
      if (p[0] < 1 || p[0] > M || p[1] < 1 || p[1] > N)
        throw ConfigError(located(e.where(key), "pair [" + std::to_string(p[0]) + ", " + std::to_string(p[1]) +
                                                    "] is out of range",
                                  "student layers 1.." + std::to_string(M) + ", teacher layers 1.." + std::to_string(N)));
      pairs.emplace_back(p[0], p[1]);
    }
    if (pairs.empty()) throw ConfigError(located(e.where(key), "needs at least one pair"));
    return pairs;
  }
  const auto how = e.get<std::string>(key, fallback);
  if (how == "uniform") {
    if (M > N) throw ConfigError(located(e.where(key), "uniform needs no more student layers than teacher layers"));
    for (int64_t m = 1; m <= M; ++m) pairs.emplace_back(m, m * N / M);
  } else if (how == "skip") {
    if (2 * M > N) throw ConfigError(located(e.where(key), "skip needs at least twice as many teacher layers"));
    for (int64_t m = 1; m <= M; ++m) pairs.emplace_back(m, 2 * m);
  } else if (how == "last") {
    pairs.emplace_back(M, N);
  } else {
    throw ConfigError(located(e.where(key), "unknown layer map '" + how + "'",
                              "uniform, skip, last, or a list of [student layer, teacher layer] pairs"));
  }
  return pairs;
}

const Registry<FeatureTermFactory>& feature_term_registry() {
  static const Registry<FeatureTermFactory> r = [] {
    Registry<FeatureTermFactory> reg("feature term");
    reg.add("hidden_mse", [](ConfigNode& e, const FeatureTermContext& c) { return make_hidden(e, c, false); });
    reg.add("hidden_cosine", [](ConfigNode& e, const FeatureTermContext& c) { return make_hidden(e, c, true); });
    reg.add("attention_mse", [](ConfigNode& e, const FeatureTermContext& c) -> std::shared_ptr<FeatureTermImpl> {
      require_encoders(e, c);
      require_same_heads(e, c);
      return std::make_shared<AttentionMseTerm>(layer_pairs(e, "layers", "uniform", c));
    });
    reg.add("attention_kl", [](ConfigNode& e, const FeatureTermContext& c) -> std::shared_ptr<FeatureTermImpl> {
      require_encoders(e, c);
      require_same_heads(e, c);
      return std::make_shared<AttentionKlTerm>(one_layer(e, "student_layer", c.student.layers),
                                               one_layer(e, "teacher_layer", c.teacher.layers));
    });
    reg.add("relation_kl", [](ConfigNode& e, const FeatureTermContext& c) -> std::shared_ptr<FeatureTermImpl> {
      require_encoders(e, c);
      auto relations = e.get_list("relations", {"query", "key", "value"});
      for (const auto& r : relations)
        if (r != "query" && r != "key" && r != "value")
          throw ConfigError(located(e.where("relations"), "unknown relation '" + r + "'", "query, key or value"));
      const int64_t heads = e.get<int64_t>("relation_heads", c.teacher.heads);
      if (heads < 1 || c.student.hidden % heads != 0 || c.teacher.hidden % heads != 0)
        throw ConfigError(located(e.where("relation_heads"), std::to_string(heads) + " relation heads",
                                  "must divide both widths (student " + std::to_string(c.student.hidden) + ", teacher " +
                                      std::to_string(c.teacher.hidden) + ")"));
      return std::make_shared<RelationTerm>(relations, heads, one_layer(e, "student_layer", c.student.layers),
                                            one_layer(e, "teacher_layer", c.teacher.layers));
    });
    return reg;
  }();
  return r;
}

FeatureObjectiveImpl::FeatureObjectiveImpl(std::vector<ConfigNode> entries, const FeatureTermContext& context) {
  for (auto& e : entries) {
    const auto type = e.require<std::string>("type");
    const auto& make = feature_term_registry().get(type, e.where("type"));
    weights_.push_back(weight_of(e));
    terms_.push_back(register_module("term" + std::to_string(terms_.size()), make(e, context)));
    names_.push_back(type);
  }
}

torch::Tensor FeatureObjectiveImpl::forward(const ModelOutput& student, const ModelOutput& teacher,
                                            const torch::Tensor& mask, double progress) {
  torch::Tensor total;
  for (size_t i = 0; i < terms_.size(); ++i) {
    const double w = weights_[i].at(progress);
    if (w == 0) continue;
    auto l = terms_[i]->forward(student, teacher, mask) * w;
    total = total.defined() ? total + l : l;
  }
  return total.defined() ? total : torch::zeros({}, student.logits.options());
}

FeatureRequest FeatureObjectiveImpl::needs() const {
  FeatureRequest r;
  for (const auto& t : terms_) r |= t->needs();
  return r;
}

std::vector<std::string> FeatureObjectiveImpl::teacher_features() const {
  std::set<std::string> names;
  for (const auto& t : terms_)
    for (auto& n : t->teacher_features()) names.insert(std::move(n));
  return {names.begin(), names.end()};
}

std::string FeatureObjectiveImpl::describe() const {
  std::string s;
  for (size_t i = 0; i < terms_.size(); ++i) {
    const auto& w = weights_[i];
    s += (s.empty() ? "" : " + ") + names_[i] + "×" + (w.is_constant() ? w.describe() : "(" + w.describe() + ")");
  }
  return s.empty() ? "none" : s;
}

}  // namespace kd
