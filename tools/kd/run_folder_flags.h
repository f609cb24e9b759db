// The flags of the commands that write a run folder from an experiment config (train-teacher, distill),
// declared once: --config, --set, --run-dir, --resume | --overwrite; and the rule that an existing run is
// only continued or replaced when the user says which.
#pragma once

#include <CLI/CLI.hpp>
#include <fnmatch.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kd/error.h"
#include "kd/io/config.h"
#include "kd/io/file_lock.h"

namespace kd::cli {

struct RunFolderFlags {
  std::string config;
  std::vector<std::string> overrides;
  std::string run_dir;
  bool resume = false, overwrite = false;
  std::unique_ptr<FileLock> lock;  // taken by prepare()

  void add_to(CLI::App& app, const std::string& set_example, const std::string& resume_help) {
    // A missing file is kd's IoError (exit code 3), as for every other file.
    app.add_option("-c,--config", config, "experiment YAML file")->required();
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
  // --overwrite the entries of the folder that match one of `outputs` (file-name patterns, fnmatch: what
  // the command writes there) are removed, and with them the temporary files of killed writers. Nothing
  // else is touched: the folder may hold the user's own files (a config, data, notes).
  //
  // First the folder's lock (`.kd.lock`, see kd/io/file_lock.h), held until the command ends: a second kd
  // process on the same folder is refused before it reads or removes anything.
  void prepare(const std::filesystem::path& run, bool has_run, const std::vector<std::string>& outputs) {
    namespace fs = std::filesystem;
    fs::create_directories(run);
    lock = std::make_unique<FileLock>((run / ".kd.lock").string(), "run folder");
    // With the lock held no other kd process writes here: a half-written file or staging folder
    // (`*.tmp-<pid>`) is what a killed process left, and goes before anything reads the folder.
    std::vector<fs::path> stale;
    for (auto it = fs::recursive_directory_iterator(run); it != fs::recursive_directory_iterator(); ++it)
      if (fnmatch("*.tmp-*", it->path().filename().c_str(), 0) == 0) {
        stale.push_back(it->path());
        it.disable_recursion_pending();
      }
    for (const auto& path : stale) fs::remove_all(path);
    if (has_run && !resume && !overwrite)
      throw ConfigError(located(run.string(), "run folder already holds a run",
                                "pass --resume to continue it or --overwrite to start over"));
    if (!overwrite) return;
    std::vector<fs::path> doomed;
    for (const auto& entry : fs::directory_iterator(run)) {
      const std::string name = entry.path().filename().string();
      bool ours = false;  // killed writers' temporary files went above
      for (const auto& pattern : outputs) ours = ours || fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
      if (ours) doomed.push_back(entry.path());
    }
    for (const auto& path : doomed) fs::remove_all(path);
  }
};

}  // namespace kd::cli
