#include "kd/data/holdout.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "expect_error.h"
#include "kd/data/data_config.h"
#include "kd/error.h"
#include "test_paths.h"

namespace kd {
namespace {

using test::expect_error;

// n rows; row i has label labels[i % labels.size()] unless `counts` says how many of each.
std::vector<TextRow> rows_with(const std::vector<std::pair<std::string, int>>& counts) {
  std::vector<TextRow> rows;
  int64_t i = 0;
  for (const auto& [label, n] : counts)
    for (int k = 0; k < n; ++k, ++i) rows.push_back({{"text " + std::to_string(i)}, label, i, i + 2});
  // Interleave classes as a real file would: sort by a scrambled key.
  std::stable_sort(rows.begin(), rows.end(), [](const TextRow& a, const TextRow& b) {
    return (a.row * 7919) % 1009 < (b.row * 7919) % 1009;
  });
  for (size_t r = 0; r < rows.size(); ++r) rows[r].row = static_cast<int64_t>(r), rows[r].line = static_cast<int64_t>(r) + 2;
  return rows;
}

std::map<std::string, int> class_counts(const std::vector<TextRow>& rows) {
  std::map<std::string, int> c;
  for (const auto& r : rows) ++c[r.label];
  return c;
}

HoldoutOptions opts(double fraction, int64_t max_rows = 2000, uint64_t seed = 13) {
  HoldoutOptions o;
  o.fraction = fraction;
  o.max_rows = max_rows;
  o.seed = seed;
  return o;
}

TEST(HoldoutTest, SizeIsTheFractionCapped) {
  EXPECT_EQ(holdout_size(1000, opts(0.05)), 50);
  EXPECT_EQ(holdout_size(67349, opts(0.05)), 2000);  // SST-2: 3,367 capped at 2,000
  EXPECT_EQ(holdout_size(5444, opts(0.05)), 272);    // TREC-6
  EXPECT_EQ(holdout_size(100, opts(0.5, 10)), 10);
}

TEST(HoldoutTest, StratifiedDisjointDeterministicAndInFileOrder) {
  const auto rows = rows_with({{"a", 700}, {"b", 250}, {"c", 50}});
  const auto [train, slice] = hold_out(rows, opts(0.1));
  ASSERT_EQ(slice.size(), 100u);
  ASSERT_EQ(train.size(), 900u);
  // Each class gives its share: 70, 25, 5.
  EXPECT_EQ(class_counts(slice), (std::map<std::string, int>{{"a", 70}, {"b", 25}, {"c", 5}}));
  std::set<int64_t> ids;
  for (const auto& r : train) ids.insert(r.row);
  for (const auto& r : slice) EXPECT_TRUE(ids.insert(r.row).second) << "row " << r.row << " is on both sides";
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_TRUE(std::is_sorted(slice.begin(), slice.end(), [](const TextRow& x, const TextRow& y) { return x.row < y.row; }));
  EXPECT_EQ(slice[0].line, slice[0].row + 2);

  const auto again = hold_out(rows, opts(0.1)).second;
  ASSERT_EQ(again.size(), slice.size());
  for (size_t i = 0; i < slice.size(); ++i) EXPECT_EQ(again[i].row, slice[i].row);
  const auto other = hold_out(rows, opts(0.1, 2000, 14)).second;
  bool differs = false;
  for (size_t i = 0; i < slice.size(); ++i) differs |= other[i].row != slice[i].row;
  EXPECT_TRUE(differs) << "another seed should draw another slice";
}

TEST(HoldoutTest, LargestRemaindersFillTheSliceExactly) {
  const auto rows = rows_with({{"a", 34}, {"b", 33}, {"c", 33}});
  const auto slice = hold_out(rows, opts(0.1)).second;
  EXPECT_EQ(slice.size(), 10u);  // 3.4 + 3.3 + 3.3: the extra row goes to the largest remainder
  EXPECT_EQ(class_counts(slice), (std::map<std::string, int>{{"a", 4}, {"b", 3}, {"c", 3}}));
}

TEST(HoldoutTest, ASingletonClassStaysInTraining) {
  const auto rows = rows_with({{"a", 5}, {"rare", 1}});
  const auto [train, slice] = hold_out(rows, opts(0.5));  // 3 of 6: "rare" would be owed 0.5
  EXPECT_EQ(class_counts(train).count("rare"), 1u);
  EXPECT_EQ(slice.size(), 3u);
}

TEST(HoldoutTest, BadSizesAreOneLineErrorsNamingTheKey) {
  const auto rows = rows_with({{"a", 10}, {"b", 10}});
  expect_error<ConfigError>([&] { hold_out(rows, opts(0.0)); }, {"data.valid_fraction"});
  expect_error<ConfigError>([&] { hold_out(rows, opts(1.0)); }, {"data.valid_fraction"});
  expect_error<ConfigError>([&] { hold_out(rows, opts(-0.5)); }, {"data.valid_fraction"});
  expect_error<ConfigError>([&] { hold_out(rows, opts(0.1, 0)); }, {"data.valid_max_rows"});
  expect_error<ConfigError>([&] { hold_out(rows, opts(0.01)); }, {"nothing to validate on"});  // rounds to 0 rows
  // Every class at its limit: one training row left per class is all a slice of 19 could leave.
  expect_error<DataError>([&] { hold_out(rows, opts(0.95)); }, {"no training row"});
  // A class with a single row cannot give one to the slice and keep one.
  expect_error<DataError>([&] { hold_out(rows_with({{"a", 1}, {"b", 1}}), opts(0.5)); }, {"no training row"});
}

std::string write_tmp(const std::string& name, const std::string& text) {
  static const std::filesystem::path dir = test::temp_dir("HoldoutTest");
  const std::string path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

TEST(HoldoutTest, DataConfigHoldsOutTheSliceAndWarnsAboutSelectionOnTheReportedSet) {
  std::string tsv = "sentence\tlabel\n";
  for (int i = 0; i < 100; ++i) tsv += "row " + std::to_string(i) + "\t" + std::to_string(i % 2) + "\n";
  const std::string train = write_tmp("train.tsv", tsv);
  const std::string test = write_tmp("test.tsv", "sentence\tlabel\nx\t0\ny\t1\n");

  auto cfg = Config::from_string("train: " + train + "\ntest: " + test + "\nvalid_fraction: 0.1\n");
  const DataConfig c = DataConfig::from(cfg.root());
  const DataSplits d = read_splits(c);
  EXPECT_EQ(d.valid.size(), 10u);
  EXPECT_EQ(d.train.size(), 90u);
  EXPECT_EQ(d.holdout_rows.size(), 10u);
  EXPECT_EQ(d.test.size(), 2u);
  EXPECT_TRUE(d.warnings.empty());
  EXPECT_EQ(d.reported_source(), test);
  EXPECT_EQ(d.to_json().at("holdout_row_ids").size(), 10u);

  auto same = Config::from_string("train: " + train + "\nvalid: " + test + "\ntest: " + test + "\n");
  const DataSplits s = read_splits(DataConfig::from(same.root()));
  ASSERT_EQ(s.warnings.size(), 1u);
  EXPECT_NE(s.warnings[0].find("selection on the reported set"), std::string::npos);

  auto no_test = Config::from_string("train: " + train + "\n");
  const DataSplits n = read_splits(DataConfig::from(no_test.root()));
  ASSERT_EQ(n.warnings.size(), 1u);
  EXPECT_NE(n.warnings[0].find("selection on the reported set"), std::string::npos);
  EXPECT_EQ(&n.reported(), &n.valid);

  // Range errors come from the config, before any data is read.
  auto bad = Config::from_string("train: /nonexistent.tsv\nvalid_max_rows: 0\n");
  expect_error<ConfigError>([&] { DataConfig::from(bad.root()); }, {"valid_max_rows"});
}

TEST(HoldoutTest, TrainMaxRowsKeepsASeededSubsetInFileOrderAndTheSameSlice) {
  std::string tsv = "sentence\tlabel\n";
  for (int i = 0; i < 100; ++i) tsv += "row " + std::to_string(i) + "\t" + std::to_string(i % 2) + "\n";
  const std::string train = write_tmp("train_cap.tsv", tsv);
  const std::string base = "train: " + train + "\nvalid_fraction: 0.1\n";
  auto full_cfg = Config::from_string(base);
  const DataSplits full = read_splits(DataConfig::from(full_cfg.root()));
  auto cap_cfg = Config::from_string(base + "train_max_rows: 30\n");
  const DataSplits cap = read_splits(DataConfig::from(cap_cfg.root()));
  ASSERT_EQ(cap.train.size(), 30u);
  EXPECT_EQ(cap.holdout_rows, full.holdout_rows) << "the validation slice is the full run's";
  std::set<int64_t> full_rows;
  for (const auto& r : full.train) full_rows.insert(r.row);
  for (size_t i = 0; i < cap.train.size(); ++i) {
    EXPECT_TRUE(full_rows.count(cap.train[i].row)) << "a kept row is a training row of the full run";
    if (i > 0) {
      EXPECT_LT(cap.train[i - 1].row, cap.train[i].row) << "file order";
    }
  }
  // Not simply the first 30 rows, and the same 30 on every read.
  EXPECT_GT(cap.train.back().row, 40);
  const DataSplits again = read_splits(DataConfig::from(cap_cfg.root()));
  for (size_t i = 0; i < cap.train.size(); ++i) EXPECT_EQ(again.train[i].row, cap.train[i].row);
  EXPECT_NE(cap.train_source.find("30 of its 90 training rows"), std::string::npos) << cap.train_source;
  // A cap above the row count keeps every row.
  auto big = Config::from_string(base + "train_max_rows: 1000\n");
  EXPECT_EQ(read_splits(DataConfig::from(big.root())).train.size(), 90u);
  auto bad = Config::from_string("train: " + train + "\ntrain_max_rows: -1\n");
  expect_error<ConfigError>([&] { DataConfig::from(bad.root()); }, {"train_max_rows"});
}

}  // namespace
}  // namespace kd
