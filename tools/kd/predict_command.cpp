// kd predict --model DIR [--input FILE]
// Labels text lines (stdin or a file; for sentence-pair models the two texts are separated by a tab)
// with a saved student or teacher, in input order: "label<TAB>probability" or, with --jsonl, one JSON
// object per line with every class's probability.
#include <cstdio>
#include <fstream>
#include <iostream>

#include "command.h"
#include "kd/data/text_dataset.h"
#include "kd/error.h"
#include "kd/eval/evaluate.h"
#include "kd/models/classifier_registry.h"
#include "kd/text/unicode.h"

namespace kd::cli {

namespace {

class PredictCommand : public Command {
 public:
  std::string name() const override { return "predict"; }
  std::string help() const override { return "label text lines from stdin or a file with a saved model"; }

  void add_options(CLI::App& app) override {
    app.add_option("-m,--model", model_, "model folder (kd student or teacher)")->required();
    app.add_option("-i,--input", input_, "text file, one example per line (default: stdin)");
    app.add_flag("--jsonl", jsonl_, "print one JSON object per line: text, label, probabilities");
    app.add_option("--batch-size", batch_size_, "lines per forward pass")->capture_default_str()->check(
        kPositive);
    common_.add_to(app);
  }

  int run() override {
    common_.apply();
    const torch::Device device = common_.resolve_device();
    model_ptr_ = load_classifier(model_);
    model_ptr_->module().to(device);
    std::ifstream file;
    if (!input_.empty()) {
      file.open(input_);
      if (!file) throw IoError(located(input_, "cannot open the input file"));
    }
    std::istream& in = input_.empty() ? std::cin : file;
    const std::string source = input_.empty() ? "<stdin>" : input_;
    std::vector<TextRow> rows;
    std::string line;
    int64_t line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (unicode::find_invalid_utf8(line) != std::string::npos)
        throw DataError(located(source + ":" + std::to_string(line_no), "invalid UTF-8"));
      TextRow row;
      row.line = line_no;
      row.row = line_no - 1;
      const auto tab = line.find('\t');
      if (tab == std::string::npos) {
        row.texts = {line};
      } else {
        row.texts = {line.substr(0, tab), line.substr(tab + 1)};
      }
      rows.push_back(std::move(row));
      // Flush in batches, so piped input is answered as it comes.
      if (static_cast<int64_t>(rows.size()) == batch_size_) flush(rows, source);
    }
    flush(rows, source);
    return 0;
  }

 private:
  void flush(std::vector<TextRow>& rows, const std::string& source) {
    if (rows.empty()) return;
    TextClassifier& model = *model_ptr_;
    TextDataset data(rows, model.tokenizer(), model.labels(), model.max_length(), source);
    auto ev = evaluate(model, data, batch_size_, /*keep_logits=*/true, false);
    auto probs = torch::softmax(ev.logits.to(torch::kFloat64), -1).contiguous();  // (N, C)
    auto p = probs.accessor<double, 2>();
    for (size_t i = 0; i < rows.size(); ++i) {
      int64_t best = 0;
      for (int64_t c = 1; c < probs.size(1); ++c)
        if (p[i][c] > p[i][best]) best = c;
      if (jsonl_) {
        nlohmann::json j = {{"text", rows[i].texts.size() == 1 ? nlohmann::json(rows[i].texts[0])
                                                                : nlohmann::json(rows[i].texts)},
                            {"label", model.labels().name(best)}};
        nlohmann::json pr = nlohmann::json::object();
        for (int64_t c = 0; c < probs.size(1); ++c) pr[model.labels().name(c)] = p[i][c];
        j["probabilities"] = pr;
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s\t%.4f\n", model.labels().name(best).c_str(), p[i][best]);
      }
    }
    std::fflush(stdout);
    rows.clear();
  }

  std::string model_, input_;
  bool jsonl_ = false;
  int64_t batch_size_ = 64;
  std::unique_ptr<TextClassifier> model_ptr_;
  CommonOptions common_;
};

}  // namespace

std::unique_ptr<Command> make_predict_command() { return std::make_unique<PredictCommand>(); }

}  // namespace kd::cli
