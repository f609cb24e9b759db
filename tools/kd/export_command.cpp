// kd export --model DIR --format gguf --type f32|f16|q8_0|q4_0 --output FILE.gguf
// A causal LM (a student folder from kd distill-lm, or a GGUF file) in a format other tools load: GGUF
// for llama.cpp (kd/models/causal_lm_gguf.h).
#include <filesystem>
#include <iostream>

#include "command.h"
#include "kd/error.h"
#include "kd/models/causal_lm_gguf.h"
#include "kd/util/log.h"

namespace kd::cli {

namespace {

class ExportCommand : public Command {
 public:
  std::string name() const override { return "export"; }
  std::string help() const override { return "write a causal LM in a format other tools load (GGUF for llama.cpp)"; }

  void add_options(CLI::App& app) override {
    app.add_option("-m,--model", model_, "causal LM: a model folder (as kd distill-lm writes) or a GGUF file")->required();
    app.add_option("--format", format_, "output format (gguf)")->capture_default_str();
    app.add_option("--type", type_, "tensor type of the matrices: f32, f16, q8_0 or q4_0 (norms stay f32)")
        ->capture_default_str();
    app.add_option("-o,--output", output_, "file to write (its folder must exist)")->required();
    common_.add_to(app);
  }

  int run() override {
    common_.apply();
    common_.require_cpu(name());
    if (format_ != "gguf") throw ConfigError(located("--format " + format_, "unknown export format", "known: gguf"));
    const auto type = parse_gguf_export_type(type_);
    export_causal_lm_gguf(model_, output_, type);
    std::cout << strf("wrote %s (%s, %.1f MB)\n", output_.c_str(), type_.c_str(),
                      static_cast<double>(std::filesystem::file_size(output_)) / 1e6);
    return 0;
  }

 private:
  std::string model_, output_, format_ = "gguf", type_ = "f32";
  CommonOptions common_;
};

}  // namespace

std::unique_ptr<Command> make_export_command() { return std::make_unique<ExportCommand>(); }

}  // namespace kd::cli
