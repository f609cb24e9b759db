#include "kd/data/text_dataset.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <optional>
#include <string_view>
#include <thread>

#include "kd/error.h"

namespace kd {

namespace {

// Below this many rows a second thread costs more to start than it saves.
constexpr size_t kParallelMinRows = 2048;
// The project runs on small machines where two test processes already share two cores.
constexpr unsigned kMaxThreads = 2;

std::string row_place(const std::string& source, const TextRow& row) {
  if (source.empty()) return "row " + std::to_string(row.row);
  return source + ":" + std::to_string(row.line);
}

}  // namespace

TextDataset::TextDataset(const std::vector<TextRow>& rows, const WordPieceTokenizer& tokenizer,
                         const LabelVocab& labels, int64_t max_length, const std::string& source)
    : source_(source) {
  if (max_length < 0)
    throw ConfigError(located("max_length", "must be >= 0 (0 = no truncation), got " + std::to_string(max_length)));
  examples_.resize(rows.size());

  // Labels first and serially: an unknown label should fail before minutes of tokenization, and
  // the first bad row in file order is the one reported.
  for (size_t i = 0; i < rows.size(); ++i) {
    const TextRow& r = rows[i];
    if (r.texts.empty() || r.texts.size() > 2)
      throw DataError(located(row_place(source, r), "a row must have one or two texts, got " +
                                                        std::to_string(r.texts.size())));
    examples_[i].label = r.label.empty() ? -1 : labels.id(r.label, row_place(source, r));
    examples_[i].row = r.row;
  }

  // Each thread fills a contiguous slice of examples_, so the result does not depend on scheduling.
  // encode() is const and keeps no shared mutable state, so concurrent calls are safe.
  auto encode_range = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const TextRow& r = rows[i];
      std::optional<std::string_view> second;
      if (r.texts.size() > 1) second = std::string_view(r.texts[1]);
      examples_[i].encoding = tokenizer.encode(r.texts[0], second, max_length);
    }
  };

  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const size_t threads = rows.size() < kParallelMinRows ? 1 : std::min<size_t>(hw, kMaxThreads);
  if (threads <= 1) {
    encode_range(0, rows.size());
    return;
  }
  std::vector<std::exception_ptr> errors(threads);
  std::vector<std::thread> pool;
  const size_t chunk = (rows.size() + threads - 1) / threads;
  for (size_t t = 0; t < threads; ++t) {
    const size_t begin = std::min(rows.size(), t * chunk), end = std::min(rows.size(), begin + chunk);
    pool.emplace_back([&, t, begin, end] {
      try {
        encode_range(begin, end);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  // The earliest slice's error is the first bad row in file order, as in the serial path.
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace kd
