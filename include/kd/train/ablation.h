// `kd ablate`: what each kind of knowledge buys. An ablation file names one distillation experiment
// (`base:`, a kd distill config) and variants of it, each the base with a patch. Every variant is a whole
// kd distill run in its own folder under run_dir (same data, budget, seeds and selection split unless its
// patch changes them), and ablation.md / ablation.json put them in one table (eval/ablation_report.h).
//
//   base: configs/sst2_bert_small_distill.yaml
//   run_dir: runs/sst2-ablation
//   with:                         # applied to the base for every variant: the common budget
//     data: {train_max_rows: 16000}
//     report: {seeds: [1, 2], baseline: false}
//   variants:                     # in order; each is judged against the one before (cumulative ablations)
//     - name: logits only         # no patch: the base (with `with:`)
//     - name: + hidden states
//       with: {distill: {features: [{type: hidden_mse, layers: uniform, embeddings: true}]}}
//
// A patch merges key by key into the base's maps; any other value (a list, a number) replaces the base's,
// and `null` removes the key. Run folder:
//   ablation.yaml                 the ablation file as resolved
//   <i>-<name>/                   variant i's kd distill run folder (its config.yaml is the whole experiment)
//   ablation.json, ablation.md    the table, rewritten after each variant
#pragma once

#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include <memory>
#include <string>
#include <vector>

#include "kd/eval/ablation_report.h"
#include "kd/io/config.h"

namespace kd {

class DistillPipeline;

// `patch` merged into a copy of `base` (the rule above).
YAML::Node merge_config(const YAML::Node& base, const YAML::Node& patch);

struct AblationVariant {
  std::string name;     // as the table names it
  std::string folder;   // under run_dir: "<i>-<name in lower case, other characters as ->"
  YAML::Node with;      // its patch; null: none
  std::string changes;  // the patch as one line of YAML; "" without
};

struct AblationOptions {
  std::string source;   // the ablation file
  std::string base;     // the kd distill config each variant changes
  std::string run_dir;
  YAML::Node with;      // the patch every variant shares; null: none
  std::vector<AblationVariant> variants;

  // From an ablation file. ConfigError naming the key: no base or run_dir, no variants, a name empty or
  // given twice, a patch that is not a map, a patch that sets run_dir (each variant's is its folder).
  static AblationOptions from(Config& config);
  // Variant i's whole kd distill config: base, `with`, its patch, run_dir = its folder. IoError naming
  // the base when it is missing.
  Config variant_config(size_t i) const;
};

class Ablation {
 public:
  // Builds every variant's pipeline first (DistillPipeline::from_config: teachers loaded, sizes checked,
  // every key used), so that a mistake in the last variant fails before anything is written. With
  // `resume`, a variant whose folder holds a config.yaml continues where it stopped.
  Ablation(AblationOptions options, torch::Device device, bool resume, bool progress);
  ~Ablation();

  // What kd writes directly under run_dir (what --overwrite may remove).
  std::vector<std::string> outputs() const;
  // Runs the variants in order, each finished part kept, and writes the table after each.
  AblationReport run();

 private:
  AblationOptions options_;
  bool resume_;
  std::vector<std::unique_ptr<Config>> configs_;
  std::vector<std::unique_ptr<DistillPipeline>> pipelines_;
};

}  // namespace kd
