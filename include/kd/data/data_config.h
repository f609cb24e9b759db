// The `data:` section of an experiment config and the rows it names.
//   data:
//     train: ../shared/data/sst2/train.tsv
//     valid: ../shared/data/sst2/dev.tsv   # empty: split valid_fraction off train
//     format: auto                          # tsv, csv, jsonl
//     header: true
//     text: [sentence]                      # one column, or two for sentence pairs
//     label: label
#pragma once

#include <string>
#include <vector>

#include "kd/data/table_reader.h"
#include "kd/io/config.h"

namespace kd {

struct DataConfig {
  std::string train;
  std::string valid;
  TableOptions table;
  double valid_fraction = 0.1;
  uint64_t split_seed = 13;

  static DataConfig from(ConfigNode section);
};

struct DataSplits {
  std::vector<TextRow> train, valid;
  std::string train_source, valid_source;  // file names, for messages
};

// Reads train (and valid, or splits it off train).
DataSplits read_splits(const DataConfig& config);

}  // namespace kd
