// A validation slice held out of the training rows, for choosing checkpoints when the user gives no
// validation file. Stratified: each class gives its share of the slice (largest remainders), so a
// small class is neither left out of validation nor emptied out of training. The slice is never
// trained on; its row ids are recorded with the run.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kd/data/table_reader.h"

namespace kd {

struct HoldoutOptions {
  double fraction = 0.05;    // of the training rows ...
  int64_t max_rows = 2000;   // ... capped at this many
  uint64_t seed = 13;
  // Config keys named in errors (e.g. "train.yaml: key 'data.valid_fraction' (line 7)").
  std::string fraction_where = "data.valid_fraction", max_rows_where = "data.valid_max_rows";
};

// min(round(fraction · n), max_rows): the slice size for n training rows.
int64_t holdout_size(int64_t n, const HoldoutOptions& options);

// Splits `rows` into (train, slice). Both keep file order, and each row keeps its `row` and `line`.
// Throws ConfigError (naming the key) for a fraction outside (0, 1), max_rows < 1, or a slice of
// 0 rows or of every row; DataError (naming the class) when the slice would take every training
// row of a class.
std::pair<std::vector<TextRow>, std::vector<TextRow>> hold_out(const std::vector<TextRow>& rows,
                                                               const HoldoutOptions& options);

}  // namespace kd
