// The flags of the commands that write a run folder from an experiment config (train-teacher, distill),
// declared once: --config, --set, --run-dir, --resume | --overwrite; and the rule that an existing run is
// only continued or replaced when the user says which.
#pragma once

#include <CLI/CLI.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "kd/error.h"
#include "kd/io/config.h"

namespace kd::cli {

struct RunFolderFlags {
  std::string config;
  std::vector<std::string> overrides;
  std::string run_dir;
  bool resume = false, overwrite = false;

  void add_to(CLI::App& app, const std::string& set_example, const std::string& resume_help) {
    app.add_option("-c,--config", config, "experiment YAML file")->required()->check(CLI::ExistingFile);
    app.add_option("--set", overrides, "override a config value, e.g. --set " + set_example + " (repeatable)");
    app.add_option("--run-dir", run_dir, "run folder (overrides the config's run_dir)");
    auto* r = app.add_flag("--resume", resume, resume_help);
    app.add_flag("--overwrite", overwrite, "start over in a run folder that already holds a run")->excludes(r);
  }

  // The config with the --set overrides and --run-dir applied.
  Config load() {
    if (!run_dir.empty()) overrides.push_back("run_dir=" + run_dir);
    return Config::load(config, overrides);
  }

  // `has_run`: the folder already holds a run. Without --resume or --overwrite that is an error; with
  // --overwrite the given entries of the folder (all of them when `entries` is empty) are removed.
  void prepare(const std::filesystem::path& run, bool has_run, const std::vector<std::string>& entries = {}) const {
    namespace fs = std::filesystem;
    if (has_run && !resume && !overwrite)
      throw ConfigError(located(run.string(), "run folder already holds a run",
                                "pass --resume to continue it or --overwrite to start over"));
    if (!overwrite || !fs::exists(run)) return;
    if (entries.empty()) {
      for (const auto& entry : fs::directory_iterator(run)) fs::remove_all(entry.path());
    } else {
      for (const auto& e : entries) fs::remove_all(run / e);
    }
  }
};

}  // namespace kd::cli
