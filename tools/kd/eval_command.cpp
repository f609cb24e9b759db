// kd eval --model DIR --data FILE [--teacher DIR]
// Scores a saved classifier (student or teacher) on a labelled file: accuracy, macro-F1, confusion
// matrix; given a teacher, also how often the two agree and the mean KL(teacher ‖ model) at T = 1.
#include <cstdio>

#include "command.h"
#include "data_flags.h"
#include "kd/data/text_dataset.h"
#include "kd/error.h"
#include "kd/eval/evaluate.h"
#include "kd/io/atomic_file.h"
#include "kd/losses/soft_label_losses.h"
#include "kd/models/classifier_registry.h"
#include "kd/util/log.h"

namespace kd::cli {

namespace {

class EvalCommand : public Command {
 public:
  std::string name() const override { return "eval"; }
  std::string help() const override {
    return "score a saved model on a labelled file (accuracy, macro-F1, confusion; agreement and KL with a teacher)";
  }

  void add_options(CLI::App& app) override {
    app.add_option("-m,--model", model_, "model folder (kd student or teacher, or a transformers classifier)")
        ->required();
    app.add_option("-d,--data", data_, "labelled data file (TSV, CSV or JSONL)")->required();
    app.add_option("--teacher", teacher_, "teacher folder to compare the model with (agreement, KL)");
    app.add_option("--batch-size", batch_size_, "examples per forward pass")->capture_default_str()->check(
        kPositive);
    app.add_option("--out", out_, "also write the figures as JSON to this file");
    flags_.add_to(app);
    common_.add_to(app);
    precision_.add_to(app);
  }

  int run() override {
    common_.apply();
    const torch::Device device = common_.resolve_device();
    precision_.apply(device);
    auto model = load_classifier(model_);
    model->module().to(device);
    auto rows = read_table(data_, flags_.table());
    TextDataset data(rows, model->tokenizer(), model->labels(), model->max_length(), data_);
    auto ev = evaluate(*model, data, batch_size_, /*keep_logits=*/true, !common_.no_progress);
    if (ev.confusion.total() == 0)
      throw DataError(located(data_, "no labelled rows to score", "check --label (the label column)"));
    nlohmann::json out = ev.confusion.to_json();
    out["model"] = model_;
    out["data"] = data_;
    out["labels"] = model->labels().labels();
    out["loss"] = ev.mean_loss;
    out["device"] = device.str();

    std::printf("%s on %s: accuracy %.4f, macro-F1 %.4f (%lld rows)\n", model_.c_str(), data_.c_str(),
                ev.confusion.accuracy(), ev.confusion.macro_f1(), static_cast<long long>(ev.confusion.total()));
    print_confusion(ev.confusion, model->labels());

    if (!teacher_.empty()) {
      auto teacher = load_classifier(teacher_);
      teacher->module().to(device);
      if (teacher->labels().labels() != model->labels().labels())
        throw DataError(located(teacher_, "the teacher's label list differs from the model's",
                                "compare labels.json in both folders"));
      TextDataset tdata(rows, teacher->tokenizer(), teacher->labels(), teacher->max_length(), data_);
      auto tev = evaluate(*teacher, tdata, batch_size_, /*keep_logits=*/true, !common_.no_progress);
      const double agreement =
          (ev.logits.argmax(-1) == tev.logits.argmax(-1)).to(torch::kFloat64).mean().item<double>();
      const double kl = kl_div_loss(ev.logits, tev.logits, 1.0).mean().item<double>();
      out["teacher"] = {{"path", teacher_}, {"accuracy", tev.confusion.accuracy()},
                        {"macro_f1", tev.confusion.macro_f1()}, {"agreement", agreement}, {"kl", kl}};
      std::printf("teacher %s: accuracy %.4f; agreement with the model %.4f, mean KL(teacher || model) %.4f\n",
                  teacher_.c_str(), tev.confusion.accuracy(), agreement, kl);
    }
    if (!out_.empty()) write_json_atomic(out_, out);
    return 0;
  }

 private:
  static void print_confusion(const ConfusionMatrix& c, const LabelVocab& labels) {
    std::printf("confusion (rows: true, columns: predicted)\n%12s", "");
    for (const auto& l : labels.labels()) std::printf(" %10.10s", l.c_str());
    std::printf("\n");
    for (int64_t i = 0; i < labels.size(); ++i) {
      std::printf("%12.12s", labels.name(i).c_str());
      for (int64_t j = 0; j < labels.size(); ++j) std::printf(" %10lld", static_cast<long long>(c.at(i, j)));
      std::printf("\n");
    }
  }

  std::string model_, data_, teacher_, out_;
  int64_t batch_size_ = 128;
  DataFlags flags_;
  CommonOptions common_;
  PrecisionOptions precision_;
};

}  // namespace

std::unique_ptr<Command> make_eval_command() { return std::make_unique<EvalCommand>(); }

}  // namespace kd::cli
