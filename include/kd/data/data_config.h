// The `data:` section of an experiment config and the rows it names.
//   data:
//     train: ../shared/data/sst2/train.tsv
//     valid: ""                             # chooses checkpoints; empty: a stratified slice of train
//     valid_fraction: 0.05                  # the slice: this share of the training rows,
//     valid_max_rows: 2000                  #   capped at this many,
//     split_seed: 13                        #   drawn with this seed
//     train_max_rows: 0                     # 0: every training row; else a random subset of this many
//                                           #   (drawn with split_seed after the slice is held out, so the
//                                           #   slice is the full run's): quick runs and ablations
//     test: ../shared/data/sst2/dev.tsv     # the reported figures, evaluated once with the chosen model
//     format: auto                          # tsv, csv, jsonl
//     header: true
//     text: [sentence]                      # one column, or two for sentence pairs
//     label: label
// Selection and reporting are kept apart: the validation rows choose checkpoints (and so flatter
// whatever is measured on them); the test rows are scored once, at the end. A config without a test
// file, or whose test file is its validation file, still runs, with a warning carried into the report.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kd/data/holdout.h"
#include "kd/data/table_reader.h"
#include "kd/io/config.h"

namespace kd {

struct DataConfig {
  std::string train;
  std::string valid;  // empty: `holdout` slice of train
  std::string test;   // empty: figures are reported on the validation rows (with a warning)
  TableOptions table;
  HoldoutOptions holdout;
  int64_t train_max_rows = 0;  // 0: all

  static DataConfig from(ConfigNode section);
  // How the validation rows are chosen, in words that change when the rows do (for cache keys and
  // the report): "file <path>" or "slice fraction=0.05 max_rows=2000 seed=13".
  std::string selection() const;
};

struct DataSplits {
  std::vector<TextRow> train, valid, test;
  std::string train_source, valid_source, test_source;  // file names, for messages and the report
  std::vector<int64_t> holdout_rows;  // row ids of train held out as the validation slice (empty with a file)
  std::vector<std::string> warnings;  // e.g. selection on the reported set

  bool has_test() const { return !test_source.empty(); }
  // The rows the figures are reported on: test, or valid when there is no test file.
  const std::vector<TextRow>& reported() const { return has_test() ? test : valid; }
  const std::string& reported_source() const { return has_test() ? test_source : valid_source; }
  // What chose and what is reported, for summary.json and report.json.
  nlohmann::json to_json() const;
};

// Reads train, valid (or holds a slice of train out) and test; then keeps train_max_rows of the
// training rows (in file order) when set.
DataSplits read_splits(const DataConfig& config);

}  // namespace kd
