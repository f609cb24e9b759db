#include "kd/data/holdout.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "kd/data/text_dataset.h"
#include "kd/error.h"

namespace kd {

int64_t holdout_size(int64_t n, const HoldoutOptions& o) {
  if (!(o.fraction > 0.0 && o.fraction < 1.0))
    throw ConfigError(located(o.fraction_where, "must be in (0, 1), got " + std::to_string(o.fraction)));
  if (o.max_rows < 1)
    throw ConfigError(located(o.max_rows_where, "must be >= 1, got " + std::to_string(o.max_rows)));
  return std::min<int64_t>(std::llround(o.fraction * static_cast<double>(n)), o.max_rows);
}

std::pair<std::vector<TextRow>, std::vector<TextRow>> hold_out(const std::vector<TextRow>& rows,
                                                               const HoldoutOptions& o) {
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t k = holdout_size(n, o);
  if (k <= 0 || k >= n)
    throw ConfigError(located(o.fraction_where,
                              "a validation slice of " + std::to_string(k) + " of the " + std::to_string(n) +
                                  " training rows leaves " + (k <= 0 ? "nothing to validate on" : "nothing to train on"),
                              "set data.valid to a validation file, or change data.valid_fraction / valid_max_rows"));

  // Rows by class, classes in name order (so the allocation does not depend on file order).
  std::map<std::string, std::vector<size_t>> by_class;
  for (size_t i = 0; i < rows.size(); ++i) by_class[rows[i].label].push_back(i);

  // Largest-remainder allocation of the k slice rows in proportion to the class sizes; ties go to the
  // larger class, then to the class first in name order.
  struct Share {
    const std::string* label;
    int64_t size, take;
    double remainder;
  };
  std::vector<Share> shares;
  int64_t given = 0;
  for (const auto& [label, idx] : by_class) {
    const double exact = static_cast<double>(k) * static_cast<double>(idx.size()) / static_cast<double>(n);
    const auto take = static_cast<int64_t>(std::floor(exact));
    shares.push_back({&label, static_cast<int64_t>(idx.size()), take, exact - static_cast<double>(take)});
    given += take;
  }
  std::vector<size_t> order(shares.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (shares[a].remainder != shares[b].remainder) return shares[a].remainder > shares[b].remainder;
    return shares[a].size > shares[b].size;
  });
  // A class whose share would be all its rows passes its extra row on: a class with one row in a
  // small set stays in training rather than failing the split.
  while (given < k) {
    bool placed = false;
    for (size_t j = 0; j < order.size() && given < k; ++j) {
      Share& s = shares[order[j]];
      if (s.take + 1 >= s.size) continue;
      ++s.take;
      ++given;
      placed = true;
    }
    if (!placed)
      throw DataError(located(o.fraction_where,
                              "a validation slice of " + std::to_string(k) + " rows would leave some class with no training row",
                              "lower data.valid_fraction, or give a validation file as data.valid"));
  }

  std::vector<char> in_slice(rows.size(), 0);
  std::mt19937_64 rng(o.seed);
  size_t c = 0;
  for (auto& [label, idx] : by_class) {
    const Share& s = shares[c++];
    if (s.take >= s.size)
      throw DataError(located(o.fraction_where,
                              "the validation slice would take all " + std::to_string(s.size) + " training row(s) of class '" +
                                  label + "'",
                              "lower data.valid_fraction, or give a validation file as data.valid"));
    std::vector<size_t> pick = idx;
    seeded_shuffle(pick, rng);
    for (int64_t t = 0; t < s.take; ++t) in_slice[pick[static_cast<size_t>(t)]] = 1;
  }

  std::pair<std::vector<TextRow>, std::vector<TextRow>> out;
  out.first.reserve(static_cast<size_t>(n - k));
  out.second.reserve(static_cast<size_t>(k));
  for (size_t i = 0; i < rows.size(); ++i) (in_slice[i] ? out.second : out.first).push_back(rows[i]);
  return out;
}

}  // namespace kd
