// The Transformer student kind: a BERT encoder with fewer layers and/or a narrower width than its BERT
// teacher, over the same tokenizer and labels, saved as a Hugging Face folder (BertTextClassifier).
//
//   student:
//     type: bert
//     layers: 3              # Transformer layers
//     hidden: 384            # width; default the teacher's
//     heads: 12              # default the teacher's at the teacher's width, else hidden / 64
//     intermediate: 1536     # feed-forward width; default the teacher's ratio times hidden. Smaller
//                            #   than the teacher's at its width: each layer keeps the teacher's neurons
//                            #   of largest weight norm (a pruned copy)
//     init_layers: every_other   # at the teacher's width: which teacher layers the student starts from:
//                            #   every_other (DistilBERT: 0, 2, 4, ...), uniform (TinyBERT's map: layer j of
//                            #   the student from teacher layer (j+1)·N/M − 1), first, or a list [0, 2, 5];
//                            #   random: none. Narrower students always start at random.
//     init_embeddings: teacher_pca   # the teacher's word, position and segment tables (narrower: along
//                            #   the word table's principal axes), or random
//     dropout: 0.1           # hidden and attention dropout
//
// At the teacher's width the student also starts from its pooler and classification head (Sanh et al.
// 2019 initialise DistilBERT from the teacher the same way); the initialised student then predicts much
// as a truncated teacher does.
#include <algorithm>
#include <cmath>
#include <set>

#include "kd/error.h"
#include "kd/models/bert_text_classifier.h"
#include "kd/models/student_config.h"
#include "kd/models/student_registry.h"

namespace kd {

namespace {

// Teacher layer (0-based) each student layer starts from.
std::vector<int64_t> layer_map(ConfigNode& s, int64_t student_layers, int64_t teacher_layers) {
  const std::string key = "init_layers";
  std::vector<int64_t> map;
  std::string how = "every_other";
  if (s.is_list(key)) {
    map = s.get<std::vector<int64_t>>(key, {});
    how = "list";
  } else {
    how = s.get<std::string>(key, student_layers * 2 - 1 <= teacher_layers ? "every_other" : "uniform");
  }
  if (how == "random") return {};
  if (how == "every_other") {
    for (int64_t j = 0; j < student_layers; ++j) map.push_back(2 * j);
  } else if (how == "uniform") {
    for (int64_t j = 0; j < student_layers; ++j) map.push_back((j + 1) * teacher_layers / student_layers - 1);
  } else if (how == "first") {
    for (int64_t j = 0; j < student_layers; ++j) map.push_back(j);
  } else if (how != "list") {
    throw ConfigError(located(s.where(key), "unknown value '" + how + "'",
                              "every_other, uniform, first, random or a list of teacher layers"));
  }
  if (static_cast<int64_t>(map.size()) != student_layers)
    throw ConfigError(located(s.where(key), std::to_string(map.size()) + " teacher layers for " +
                                                std::to_string(student_layers) + " student layers",
                              "one teacher layer per student layer"));
  for (auto i : map)
    if (i < 0 || i >= teacher_layers)
      throw ConfigError(located(s.where(key), "teacher layer " + std::to_string(i) + " does not exist",
                                "the teacher has layers 0.." + std::to_string(teacher_layers - 1)));
  return map;
}

// The feed-forward neurons a student layer with `keep` < the teacher's intermediate size inherits from
// teacher layer `layer`: the `keep` of largest ‖w_in‖·‖w_out‖ (the neuron's input row times its output
// column: how much it can move the residual stream), in the teacher's order. Magnitude pruning of whole
// neurons, as in the structured pruning literature (Michel et al. 2019 do the same for heads).
torch::Tensor kept_neurons(const torch::OrderedDict<std::string, torch::Tensor>& teacher, int64_t layer, int64_t keep) {
  const std::string at = "bert.encoder.layer." + std::to_string(layer);
  const auto w_in = teacher[at + ".intermediate.dense.weight"].detach();  // (I, H)
  const auto w_out = teacher[at + ".output.dense.weight"].detach();       // (H, I)
  const auto score = w_in.norm(2, {1}) * w_out.norm(2, {0});               // (I)
  return std::get<0>(std::get<1>(score.topk(keep)).sort());                // (keep) ascending
}

// Copies teacher parameters into the student: encoder layer j from teacher layer map[j] (its
// feed-forward neurons chosen by kept_neurons when the student's are fewer), every other parameter of
// the same name and shape (embeddings, pooler, head).
void copy_from_teacher(torch::nn::Module& student, torch::nn::Module& teacher, const std::vector<int64_t>& map,
                       int64_t intermediate) {
  const std::string prefix = "bert.encoder.layer.";
  auto from = teacher.named_parameters();
  torch::NoGradGuard no_grad;
  for (auto& p : student.named_parameters()) {
    std::string name = p.key();
    torch::Tensor neurons;  // (intermediate) teacher neurons this parameter keeps; undefined: all
    if (name.rfind(prefix, 0) == 0) {
      const auto dot = name.find('.', prefix.size());
      const auto j = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
      const int64_t layer = map[static_cast<size_t>(j)];
      name = prefix + std::to_string(layer) + name.substr(dot);
      const std::string rest = name.substr(name.find('.', prefix.size()));
      const bool ffn_in = rest.rfind(".intermediate.dense.", 0) == 0, ffn_out = rest == ".output.dense.weight";
      if ((ffn_in || ffn_out) && from[name].size(ffn_in ? 0 : 1) != intermediate)
        neurons = kept_neurons(from, layer, intermediate);
      if (neurons.defined()) {
        const auto src = from[name].detach().index_select(ffn_in ? 0 : 1, neurons);
        p.value().copy_(src.to(p.value().device()));
        continue;
      }
    }
    const auto* src = from.find(name);
    if (src == nullptr || src->sizes() != p.value().sizes())
      throw Error("bert student: teacher parameter " + name + " missing or of another shape");
    p.value().copy_(src->detach().to(p.value().device()));
  }
}

std::unique_ptr<TextClassifier> make_bert_student(ConfigNode& s, const TextClassifier& base) {
  auto* teacher = dynamic_cast<const BertTextClassifier*>(&base);
  if (teacher == nullptr)
    throw ConfigError(located(s.where("type"), "a bert student needs a BERT teacher, not " + base.type()));
  auto& tmodel = const_cast<BertTextClassifier*>(teacher)->model();
  const BertOptions& t = tmodel->bert->options();
  BertOptions o = t;
  o.num_hidden_layers = positive_setting(s, "layers", std::max<int64_t>(1, t.num_hidden_layers / 2));
  o.hidden_size = positive_setting(s, "hidden", t.hidden_size);
  const bool same_width = o.hidden_size == t.hidden_size;
  const int64_t default_heads = same_width ? t.num_attention_heads : std::max<int64_t>(1, o.hidden_size / 64);
  o.num_attention_heads = positive_setting(s, "heads", default_heads);
  if (o.hidden_size % o.num_attention_heads != 0)
    throw ConfigError(located(s.where("heads"), std::to_string(o.num_attention_heads) + " heads do not divide hidden " +
                                                    std::to_string(o.hidden_size)));
  o.intermediate_size = positive_setting(s, "intermediate", t.intermediate_size * o.hidden_size / t.hidden_size);
  o.hidden_dropout_prob = o.attention_probs_dropout_prob = dropout_setting(s, t.hidden_dropout_prob);

  // Teacher layers fit a student of the teacher's width and heads; a smaller feed-forward keeps the
  // teacher's most important neurons (kept_neurons).
  const bool same_shape = same_width && o.num_attention_heads == t.num_attention_heads &&
                          o.intermediate_size <= t.intermediate_size;
  std::vector<int64_t> map;
  if (same_shape) {
    map = layer_map(s, o.num_hidden_layers, t.num_hidden_layers);
  } else if (s.is_list("init_layers") || (s.has("init_layers") && s.get<std::string>("init_layers", "") != "random")) {
    throw ConfigError(located(s.where("init_layers"), "the student's layers differ in shape from the teacher's",
                              "init_layers needs the teacher's hidden and heads and at most its intermediate; use random"));
  }
  auto student = BertTextClassifier::create(o, teacher->tokenizer(), teacher->labels(), teacher->max_length());
  auto& smodel = student->model();
  if (!map.empty()) {
    copy_from_teacher(*smodel, *tmodel, map, o.intermediate_size);
    // Layers copied from the teacher read the teacher's embedding space: a random table would not fit.
    if (s.get<std::string>("init_embeddings", "teacher_pca") == "random")
      throw ConfigError(located(s.where("init_embeddings"), "layers from the teacher need its embeddings",
                                "use init_layers: random with init_embeddings: random"));
    return student;
  }
  const auto plan = plan_embeddings(s, *teacher, o.hidden_size, teacher->tokenizer().vocab_size(), "hidden", "teacher_pca");
  if (plan.projection > 0)
    throw ConfigError(located(s.where("init_embeddings"), "a narrower bert student has no embedding projection",
                              "use teacher_pca (the teacher's tables along their principal axes) or random"));
  if (plan.table.defined()) {
    torch::NoGradGuard no_grad;
    auto& emb = *smodel->bert->named_children()["embeddings"];
    auto params = emb.named_parameters();
    params["word_embeddings.weight"].slice(0, 0, plan.table.size(0)).copy_(plan.table);
    // Positions and segments too (along the same axes when narrower, so that the sum the LayerNorm
    // reads is the teacher's sum seen along those axes).
    auto tparams = tmodel->bert->named_children()["embeddings"]->named_parameters();
    for (const char* name : {"position_embeddings.weight", "token_type_embeddings.weight"}) {
      auto table = tparams[name].detach().to(torch::kCPU);
      params[name].copy_(plan.axes.defined() ? table.matmul(plan.axes) : table);
    }
  }
  return student;
}

}  // namespace

StudentKind bert_student_kind() {
  StudentKind kind;
  kind.make = make_bert_student;
  return kind;  // saved as a "bert" folder: load_classifier reads it with BertTextClassifier::load
}

}  // namespace kd
