// kd cache --teacher DIR --data FILE --out FILE [--text COL...] [--label COL] [--top-k K] [--fp16] ...
// Runs a frozen teacher once over a data file and stores its logits (knowledge_cache.h), so that
// distillation reads them instead of re-running the teacher every epoch.
#include <filesystem>
#include <iostream>

#include "command.h"
#include "data_flags.h"
#include "kd/data/text_dataset.h"
#include "kd/error.h"
#include "kd/io/file_lock.h"
#include "kd/knowledge/knowledge_cache.h"
#include "kd/models/classifier_registry.h"
#include "kd/util/log.h"

namespace fs = std::filesystem;

namespace kd::cli {

namespace {

class CacheCommand : public Command {
 public:
  std::string name() const override { return "cache"; }
  std::string help() const override {
    return "run a frozen teacher once over a data file and store its logits for offline distillation";
  }

  void add_options(CLI::App& app) override {
    app.add_option("--teacher", teacher_, "teacher classifier folder (e.g. <run_dir>/best of train-teacher)")
        ->required();
    app.add_option("--data", data_, "data file (TSV, CSV or JSONL)")->required();
    app.add_option("-o,--out", out_, "cache file to write (safetensors)")->required();
    flags_.label.clear();  // a label column only adds the teacher's accuracy to the summary
    flags_.add_to(app);
    app.add_option("--top-k", top_k_, "store only the k largest logits per row (0 = all classes)")
        ->capture_default_str()
        ->check(kNonNegative);
    app.add_flag("--fp16", fp16_, "store logits in half precision");
    app.add_option("--batch-size", batch_size_, "examples per teacher forward pass")
        ->capture_default_str()
        ->check(kPositive);
    app.add_option("--max-length", max_length_, "tokens per example (0 = the teacher's max_length)")
        ->capture_default_str()
        ->check(kNonNegative);
    app.add_flag("--overwrite", overwrite_, "replace an existing --out file");
    common_.add_to(app);
    precision_.add_to(app);
  }

  int run() override {
    common_.apply();
    // Cheap checks first: none of them should wait for the teacher to load or run.
    const torch::Device device = common_.resolve_device();
    precision_.apply(device);
    if (fs::exists(out_) && !overwrite_)
      throw ConfigError(located(out_, "already exists", "pass --overwrite to replace it"));
    const fs::path parent = fs::path(out_).parent_path();
    if (!parent.empty() && !fs::is_directory(parent))
      throw IoError(located(out_, "folder '" + parent.string() + "' does not exist", "create it first"));
    // Two `kd cache` runs writing one file: the second is refused (kd/io/file_lock.h).
    const FileLock lock(out_ + ".lock", "cache file");
    if (!fs::exists(data_)) throw IoError(located(data_, "no such file"));
    if (max_length_ != 0 && max_length_ < 3)
      throw ConfigError(located("--max-length", "must be 0 (the teacher's) or at least 3, got " +
                                                    std::to_string(max_length_)));
    const TableOptions table = flags_.table();
    std::vector<TextRow> rows = read_table(data_, table);

    log_info("loading teacher " + teacher_);
    auto teacher = load_classifier(teacher_);
    teacher->module().to(device);
    if (top_k_ > teacher->labels().size())
      throw ConfigError(located("--top-k", std::to_string(top_k_) + " exceeds the teacher's " +
                                               std::to_string(teacher->labels().size()) + " classes",
                                "use 0 to keep all logits"));
    const CacheKey key = make_cache_key(teacher_, *teacher, data_, table, top_k_, fp16_, max_length_);
    TextDataset dataset(rows, teacher->tokenizer(), teacher->labels(), key.max_length, data_);
    rows.clear();

    log_info(strf("running the teacher over %zu rows (max_length %lld, batch %lld, %d threads, device %s)",
                  dataset.size(), static_cast<long long>(key.max_length), static_cast<long long>(batch_size_),
                  torch::get_num_threads(), device.str().c_str()));
    const CacheWriteResult r = write_knowledge_cache(out_, *teacher, dataset, key, batch_size_, !common_.no_progress);
    std::string accuracy = "no labelled rows";
    if (r.labelled > 0)
      accuracy = strf("teacher accuracy %.4f (%lld/%lld labelled rows)",
                      static_cast<double>(r.correct) / static_cast<double>(r.labelled),
                      static_cast<long long>(r.correct), static_cast<long long>(r.labelled));
    const std::string stored = top_k_ > 0 ? strf("top-%lld", static_cast<long long>(top_k_)) : "all logits";
    std::cout << strf("cached %lld rows x %lld classes (%s, %s) to %s: %llu bytes in %.1f s; %s",
                      static_cast<long long>(r.rows), static_cast<long long>(r.num_classes), key.dtype.c_str(),
                      stored.c_str(), out_.c_str(), static_cast<unsigned long long>(r.bytes), r.seconds, accuracy.c_str())
              << std::endl;
    return 0;
  }

 private:
  std::string teacher_, data_, out_;
  DataFlags flags_;
  bool fp16_ = false, overwrite_ = false;
  int64_t top_k_ = 0, batch_size_ = 128, max_length_ = 0;
  CommonOptions common_;
  PrecisionOptions precision_;
};

}  // namespace

std::unique_ptr<Command> make_cache_command() { return std::make_unique<CacheCommand>(); }

}  // namespace kd::cli
