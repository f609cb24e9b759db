// Reads labelled (or unlabelled) text rows from TSV, CSV (RFC 4180 quoting) or JSONL files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kd {

enum class TableFormat { Auto, Tsv, Csv, Jsonl };  // Auto: from the extension (.tsv .csv .jsonl/.json)

struct TableOptions {
  TableFormat format = TableFormat::Auto;
  // Header row present (TSV/CSV). Without a header, columns are named by their 0-based index ("0", "1").
  bool header = true;
  std::vector<std::string> text_columns = {"sentence"};  // one, or two for sentence pairs
  std::string label_column = "label";                    // empty: the rows carry no label
};

struct TextRow {
  std::vector<std::string> texts;  // one per text column, valid UTF-8
  std::string label;               // as written in the file; empty when unlabelled
  int64_t row = 0;                 // 0-based index among data rows
  int64_t line = 0;                // 1-based line in the file where the row starts (for errors)
};

// Throws IoError (missing file), DataError naming file:line for: unknown column (listing the known
// ones), ragged row, unterminated quote, invalid UTF-8, invalid JSON line, and an empty data set.
std::vector<TextRow> read_table(const std::string& path, const TableOptions& options);

TableFormat parse_table_format(const std::string& name);  // "auto", "tsv", "csv", "jsonl"

}  // namespace kd
