// Knowledge inside the teacher as weighted terms of the distillation objective (`distill.features`):
//
//   hidden_mse     TinyBERT (Jiao et al. 2020): MSE between the hidden states of paired layers, the
//                  embedding output included (pair 0 ↔ 0), through one learned projection when widths differ
//                  (`projection: false`: widths must match, else an error)
//   hidden_cosine  DistilBERT (Sanh et al. 2019): 1 − cosine between the same pairs
//   attention_mse  TinyBERT: MSE between the raw attention scores of paired layers, head to head
//   attention_kl   MiniLM (Wang et al. 2020): KL between the self-attention distributions of one layer pair
//   relation_kl    MiniLMv2 (Wang et al. 2021): KL between the query–query, key–key and value–value
//                  relations of one layer pair, split into `relation_heads` (works across widths and heads;
//                  MiniLM's value relation is relation_kl over [value] with relation_heads = the heads)
//
//   distill:
//     features:
//       - {type: hidden_mse, weight: 1, layers: uniform, embeddings: true}   # weight: a number or a
//                                                  # schedule, e.g. {start: 1, warmup: 0.1} (losses/schedule.h)
//       - {type: attention_mse, weight: 1, layers: uniform}
//       - {type: relation_kl, weight: 1, relations: [query, key, value], relation_heads: 12,
//          student_layer: last, teacher_layer: last}
//
// Layer maps (`layers`), student layer m ← teacher layer n, layers counted from 1 (0 = embedding output):
//   uniform  TinyBERT's m ← m·N/M;  skip  m ← 2m (every other teacher layer, as DistilBERT starts);
//   last     M ← N only;  or an explicit list of [m, n] pairs.
// Padding positions are excluded from every term (losses/feature_losses.h).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kd/io/config.h"
#include "kd/losses/schedule.h"
#include "kd/models/model_output.h"
#include "kd/models/text_classifier.h"
#include "kd/util/registry.h"

namespace kd {

// One term. A module, because a term may own a learned projection that trains with the student.
class FeatureTermImpl : public torch::nn::Module {
 public:
  // Scalar loss from the two models' outputs; mask (B, T), 1 = token.
  virtual torch::Tensor forward(const ModelOutput& student, const ModelOutput& teacher, const torch::Tensor& mask) = 0;
  // The features both models must return for it.
  virtual FeatureRequest needs() const = 0;
  // The teacher's features it reads, by name ("hidden.2", "attn_scores.6"): what a feature cache must hold.
  virtual std::vector<std::string> teacher_features() const = 0;
};

struct FeatureTermContext {
  EncoderShape student, teacher;
};

using FeatureTermFactory =
    std::function<std::shared_ptr<FeatureTermImpl>(ConfigNode& entry, const FeatureTermContext& context)>;

// "attention_kl", "attention_mse", "hidden_cosine", "hidden_mse", "relation_kl".
const Registry<FeatureTermFactory>& feature_term_registry();

// (student layer, teacher layer) pairs from entry[key] (see the header comment); ConfigError naming the
// key for an unknown map, a layer out of range, or a model without Transformer layers.
std::vector<std::pair<int64_t, int64_t>> layer_pairs(ConfigNode& entry, const std::string& key,
                                                     const std::string& fallback, const FeatureTermContext& context);

// Σ weight_i · term_i over the configured terms. Its parameters (projections) train with the student's.
class FeatureObjectiveImpl : public torch::nn::Module {
 public:
  // Reads every entry of `entries` (a `distill.features` list). ConfigError naming the key for an
  // unknown type, a weight < 0, or settings the two models cannot meet (heads, widths, layers).
  FeatureObjectiveImpl(std::vector<ConfigNode> entries, const FeatureTermContext& context);

  // Scalar; 0 without terms. `progress` (fraction of training done) for scheduled weights.
  torch::Tensor forward(const ModelOutput& student, const ModelOutput& teacher, const torch::Tensor& mask,
                        double progress = 0);
  FeatureRequest needs() const;
  // Every term's teacher_features(), sorted, each once.
  std::vector<std::string> teacher_features() const;
  bool empty() const { return terms_.empty(); }
  // "hidden_mse×1 + attention_mse×1", for logs and the report.
  std::string describe() const;

 private:
  std::vector<std::shared_ptr<FeatureTermImpl>> terms_;
  std::vector<Schedule> weights_;
  std::vector<std::string> names_;
};
TORCH_MODULE(FeatureObjective);

}  // namespace kd
