#include <string>
#include <vector>

#include "fuzz_files.h"
#include "fuzz_targets.h"
#include "kd/data/table_reader.h"
#include "kd/error.h"
#include "kd/text/unicode.h"

namespace kd::fuzz {

int table_reader_input(const uint8_t* data, size_t size) {
  static InputFile file("input.table");
  const std::string& path = file.write(data, size);
  TableOptions plain;                    // header, "sentence", "label"
  TableOptions pair;                     // sentence pairs without a label
  pair.text_columns = {"question", "sentence"};
  pair.label_column = "";
  TableOptions headerless;               // columns by index
  headerless.header = false;
  headerless.text_columns = {"1"};
  headerless.label_column = "0";
  for (TableFormat format : {TableFormat::Tsv, TableFormat::Csv, TableFormat::Jsonl}) {
    for (TableOptions options : {plain, pair, headerless}) {
      options.format = format;
      std::vector<TextRow> rows;
      try {
        rows = read_table(path, options);
      } catch (const Error&) {
        continue;
      }
      int64_t last_line = 0;
      for (size_t i = 0; i < rows.size(); ++i) {
        const TextRow& r = rows[i];
        if (r.texts.size() != options.text_columns.size() || r.row != static_cast<int64_t>(i) || r.line <= last_line)
          throw std::logic_error("table: row " + std::to_string(i) + " has the wrong texts, index or line");
        last_line = r.line;
        if (options.label_column.empty() && !r.label.empty())
          throw std::logic_error("table: an unlabelled read returned a label");
        try {
          for (const auto& t : r.texts) unicode::check_utf8(t, "row text");
        } catch (const DataError& e) {
          throw std::logic_error(std::string("table: a row's text is not valid UTF-8: ") + e.what());
        }
      }
    }
  }
  return 0;
}

}  // namespace kd::fuzz

#ifdef KD_FUZZ_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kd::fuzz::table_reader_input(data, size);
}
#endif
