#include "kd/data/data_config.h"

#include <algorithm>
#include <random>

#include "kd/data/text_dataset.h"
#include "kd/io/atomic_file.h"
#include "kd/util/log.h"

namespace kd {

DataConfig DataConfig::from(ConfigNode s) {
  DataConfig c;
  c.train = s.require<std::string>("train");
  c.valid = s.get<std::string>("valid", "");
  c.test = s.get<std::string>("test", "");
  c.table.format = parse_table_format(s.get<std::string>("format", "auto"));
  c.table.header = s.get<bool>("header", true);
  c.table.text_columns = s.get_list("text", {"sentence"});
  if (c.table.text_columns.empty() || c.table.text_columns.size() > 2)
    throw ConfigError(located(s.where("text"), "expected one text column, or two for sentence pairs"));
  c.table.label_column = s.get<std::string>("label", "label");
  c.holdout.fraction = s.get<double>("valid_fraction", c.holdout.fraction);
  c.holdout.max_rows = s.get<int64_t>("valid_max_rows", c.holdout.max_rows);
  c.holdout.seed = static_cast<uint64_t>(s.get<int64_t>("split_seed", static_cast<int64_t>(c.holdout.seed)));
  c.holdout.fraction_where = s.where("valid_fraction");
  c.holdout.max_rows_where = s.where("valid_max_rows");
  c.train_max_rows = s.get<int64_t>("train_max_rows", 0);
  if (c.train_max_rows < 0)
    throw ConfigError(located(s.where("train_max_rows"), "must be 0 (every row) or a number of rows"));
  if (c.valid.empty()) (void)holdout_size(1000, c.holdout);  // range errors now, before any data is read
  return c;
}

std::string DataConfig::selection() const {
  if (!valid.empty()) return "file " + valid;
  return strf("slice fraction=%s max_rows=%lld seed=%llu", short_number(holdout.fraction).c_str(),
              static_cast<long long>(holdout.max_rows), static_cast<unsigned long long>(holdout.seed));
}

DataSplits read_splits(const DataConfig& c) {
  DataSplits d;
  auto rows = read_table(c.train, c.table);
  d.train_source = c.train;
  if (c.valid.empty()) {
    std::tie(d.train, d.valid) = hold_out(rows, c.holdout);
    for (const auto& r : d.valid) d.holdout_rows.push_back(r.row);
    d.valid_source = strf("%s (validation slice: %zu rows, seed %llu)", c.train.c_str(), d.valid.size(),
                          static_cast<unsigned long long>(c.holdout.seed));
  } else {
    d.train = std::move(rows);
    d.valid = read_table(c.valid, c.table);
    d.valid_source = c.valid;
    if (same_file(c.valid, c.train))
      d.warnings.push_back("data.valid is the training file " + c.train + ": checkpoints are chosen on rows trained on");
  }
  if (c.train_max_rows > 0 && static_cast<size_t>(c.train_max_rows) < d.train.size()) {
    // A seeded draw of row positions, kept in file order: the same subset for every run of the config.
    std::vector<size_t> pick(d.train.size());
    for (size_t i = 0; i < pick.size(); ++i) pick[i] = i;
    std::mt19937_64 rng(c.holdout.seed + 1);
    seeded_shuffle(pick, rng);
    pick.resize(static_cast<size_t>(c.train_max_rows));
    std::sort(pick.begin(), pick.end());
    std::vector<TextRow> kept;
    kept.reserve(pick.size());
    for (size_t i : pick) kept.push_back(std::move(d.train[i]));
    d.train_source = strf("%s (%zu of its %zu training rows, data.train_max_rows, seed %llu)", c.train.c_str(),
                          kept.size(), d.train.size(), static_cast<unsigned long long>(c.holdout.seed));
    d.train = std::move(kept);
  }
  if (c.test.empty()) {
    d.warnings.push_back("selection on the reported set: no data.test, so the figures are measured on the rows that "
                         "chose the checkpoints (" + d.valid_source + ")");
  } else {
    d.test = read_table(c.test, c.table);
    d.test_source = c.test;
    if (!c.valid.empty() && same_file(c.test, c.valid))
      d.warnings.push_back("selection on the reported set: data.test and data.valid are the same file (" + c.test + ")");
    if (same_file(c.test, c.train))
      d.warnings.push_back("data.test is the training file " + c.train + ": the figures are on rows trained on");
  }
  return d;
}

nlohmann::json DataSplits::to_json() const {
  nlohmann::json j = {{"train", train_source},
                      {"train_rows", train.size()},
                      {"valid", valid_source},
                      {"valid_rows", valid.size()},
                      {"reported", reported_source()},
                      {"reported_rows", reported().size()},
                      {"warnings", warnings}};
  if (!holdout_rows.empty()) {
    j["holdout_row_ids"] = holdout_rows;  // 0-based data rows of the training file, never trained on
  }
  return j;
}

}  // namespace kd
