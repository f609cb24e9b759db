// kd quantize --model DIR --output DIR [--type int8] [--float-modules REGEX] [--overwrite]
// A classifier folder (teacher or any student) as an int8 folder that every command loads like the
// float one (kd/models/quantize.h). Causal LMs are quantized by kd export --format gguf --type q8_0.
#include <filesystem>
#include <iostream>

#include "command.h"
#include "kd/error.h"
#include "kd/eval/model_profile.h"
#include "kd/models/causal_lm.h"
#include "kd/models/classifier_registry.h"
#include "kd/models/quantize.h"
#include "kd/util/log.h"

namespace fs = std::filesystem;

namespace kd::cli {

namespace {

class QuantizeCommand : public Command {
 public:
  std::string name() const override { return "quantize"; }
  std::string help() const override {
    return "write a classifier folder with int8 weights that every kd command runs with int8 kernels";
  }

  void add_options(CLI::App& app) override {
    app.add_option("-m,--model", model_, "classifier folder (a teacher or student as kd writes it)")->required();
    app.add_option("-o,--output", output_, "folder to write")->required();
    app.add_option("--type", type_, "int8: int8 weights with per-row scales, activations quantized per call")
        ->capture_default_str();
    app.add_option("--float-modules", float_modules_,
                   "regex over part names (e.g. 'layer\\.[0-9]+\\.output\\.dense$'): those parts keep int8 weights on disk "
                   "but compute in float32 (no activation rounding)");
    app.add_flag("--overwrite", overwrite_, "replace --output if it exists");
    common_.add_to(app);
  }

  int run() override {
    common_.apply();
    common_.require_cpu(name());
    if (type_ != "int8") throw ConfigError(located("--type " + type_, "unknown quantization type", "known: int8"));
    if (!fs::is_directory(model_) && !fs::is_regular_file(model_))
      throw IoError(located("--model " + model_, "no such folder"));
    if (is_causal_lm_path(model_))  // pointed to the command that quantizes it
      throw ConfigError(located("--model " + model_, "kd quantize takes classifier folders; this is a causal LM",
                                "use kd export --format gguf --type q8_0"));
    auto model = load_classifier(model_);
    const auto info = write_int8_folder(*model, model_, output_, overwrite_, float_modules_);
    std::cout << strf("wrote %s (int8 on the %s engine, %lld matrices: %.1f MB, from %.1f MB)\n", output_.c_str(),
                      info.value("engine", std::string("?")).c_str(), static_cast<long long>(info.value("int8_tensors", 0)),
                      static_cast<double>(folder_bytes(output_)) / 1e6,
                      static_cast<double>(folder_bytes(model_)) / 1e6);
    return 0;
  }

 private:
  std::string model_, output_, type_ = "int8", float_modules_;
  bool overwrite_ = false;
  CommonOptions common_;
};

}  // namespace

std::unique_ptr<Command> make_quantize_command() { return std::make_unique<QuantizeCommand>(); }

}  // namespace kd::cli
