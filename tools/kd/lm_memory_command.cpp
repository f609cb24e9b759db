// kd lm-memory [--seq-lens 256,1024] [--batch-size 4] [--chunk 256]
// Peak memory of one distillation step (student forward + token-level KL to a teacher + backward) at
// SmolLM2-like sizes (vocabulary 49152, width 576; random weights, no file needed), with the chunked
// loss and with the plain one that materializes (B, T, V) logits for both models. Each measurement runs
// in a fresh child process (`kd lm-memory --child ...`) so peaks do not mix; the child reports its
// resident set before the step and its peak (VmHWM) after it.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "command.h"
#include "kd/error.h"
#include "kd/losses/chunked_lm_loss.h"
#include "kd/models/llama.h"
#include "kd/util/log.h"

namespace kd::cli {

namespace {

int64_t status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  return 0;
}

class LmMemoryCommand : public Command {
 public:
  std::string name() const override { return "lm-memory"; }
  std::string help() const override {
    return "peak RSS of one LM distillation step, chunked vs. unchunked loss, for several sequence lengths";
  }

  void add_options(CLI::App& app) override {
    app.add_option("--seq-lens", seq_lens_, "sequence lengths to measure")->delimiter(',')->capture_default_str();
    app.add_option("--batch-size", batch_, "sequences per step")->capture_default_str();
    app.add_option("--chunk", chunk_, "tokens per chunk of logits")->capture_default_str();
    app.add_option("--student-layers", student_layers_, "student depth")->capture_default_str();
    app.add_option("--teacher-layers", teacher_layers_, "teacher depth (random weights)")->capture_default_str();
    app.add_option("--child", child_, "internal: measure one setting (chunked | unchunked)");
    common_.add_to(app);
  }

  int run() override {
    common_.apply();
    common_.require_cpu(name());
    if (chunk_ <= 0) throw ConfigError(located("--chunk", "must be positive"));
    if (!child_.empty()) return measure();
    std::cout << strf("%-8s %-6s %-10s %14s %16s %22s\n", "seq_len", "batch", "loss", "peak RSS MiB",
                      "step growth MiB", "one (B,T,V) f32 MiB");
    for (auto t : seq_lens_) {
      for (const char* variant : {"chunked", "unchunked"}) {
        const std::string cmd = strf("/proc/%d/exe lm-memory --child %s --seq-lens %lld --batch-size %lld --chunk %lld "
                                     "--student-layers %lld --teacher-layers %lld --threads %d",
                                     static_cast<int>(getpid()), variant, static_cast<long long>(t),
                                     static_cast<long long>(batch_), static_cast<long long>(chunk_),
                                     static_cast<long long>(student_layers_), static_cast<long long>(teacher_layers_),
                                     torch::get_num_threads());
        FILE* p = popen(cmd.c_str(), "r");
        if (!p) throw IoError("lm-memory: cannot start " + cmd);
        long long before = 0, peak = 0;
        const int got = fscanf(p, "%lld %lld", &before, &peak);
        if (pclose(p) != 0 || got != 2) throw IoError("lm-memory: the measurement failed: " + cmd);
        const double btv = static_cast<double>(batch_) * t * 49152 * 4 / 1048576.0;
        std::cout << strf("%-8lld %-6lld %-10s %14.0f %16.0f %22.0f\n", static_cast<long long>(t),
                          static_cast<long long>(batch_), variant, peak / 1024.0, (peak - before) / 1024.0, btv)
                  << std::flush;
      }
    }
    return 0;
  }

 private:
  int measure() {
    LlamaOptions o;  // SmolLM2-135M sizes
    o.num_layers = teacher_layers_;
    torch::manual_seed(0);
    Llama teacher(o);
    o.num_layers = student_layers_;
    Llama student(o);
    teacher->eval();
    for (auto& p : teacher->parameters()) p.requires_grad_(false);
    const int64_t T = seq_lens_.at(0);
    const auto ids = torch::randint(0, o.vocab_size, {batch_, T}, torch::kInt64);
    const int64_t before = status_kib("VmRSS");
    torch::Tensor loss;
    DivergenceOptions d;
    if (child_ == "chunked") {
      torch::Tensor th;
      {
        torch::NoGradGuard g;
        th = teacher->forward_hidden(ids).reshape({-1, o.hidden_size});  // (B T, H)
      }
      const auto h = student->forward_hidden(ids).reshape({-1, o.hidden_size});
      loss = chunked_token_divergence(h, student->head_weight(), TokenTargets::from_hidden(th, teacher->head_weight()),
                                      torch::ones({h.size(0)}), d, chunk_);
    } else {
      torch::Tensor tl;
      {
        torch::NoGradGuard g;
        tl = teacher->forward(ids).logits;  // (B, T, V)
      }
      loss = token_divergence(student->forward(ids).logits, tl, d).mean();
    }
    loss.backward();
    std::cout << before << " " << status_kib("VmHWM") << "\n";
    return 0;
  }

  std::vector<int64_t> seq_lens_{256, 1024};
  int64_t batch_ = 4, chunk_ = 256, student_layers_ = 3, teacher_layers_ = 30;
  std::string child_;
  CommonOptions common_;
};

}  // namespace

std::unique_ptr<Command> make_lm_memory_command() { return std::make_unique<LmMemoryCommand>(); }

}  // namespace kd::cli
