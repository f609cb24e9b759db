// The flags that say how to read a data file (columns, format, header), declared once for every command
// that reads one (cache, eval, predict).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "kd/data/table_reader.h"

namespace kd::cli {

struct DataFlags {
  std::vector<std::string> text = {"sentence"};
  std::string label = "label";
  std::string format = "auto";
  bool no_header = false;

  void add_to(CLI::App& app, bool with_label = true) {
    app.add_option("--text", text, "text column(s): one, or two for sentence pairs")
        ->capture_default_str()
        ->expected(1, 2);
    if (with_label)
      app.add_option("--label", label, "label column (\"\" = unlabelled rows)")->capture_default_str();
    app.add_option("--format", format, "auto (from the extension), tsv, csv, jsonl")
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "tsv", "csv", "jsonl"}));
    app.add_flag("--no-header", no_header, "TSV/CSV without a header row: columns are named 0, 1, ...");
  }

  TableOptions table() const {
    TableOptions t;
    t.format = parse_table_format(format);
    t.header = !no_header;
    t.text_columns = text;
    t.label_column = label;
    return t;
  }
};

}  // namespace kd::cli
