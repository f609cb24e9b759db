#include "kd/data/table_reader.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string_view>

#include "kd/error.h"
#include "kd/io/atomic_file.h"
#include "kd/util/strings.h"

namespace kd {

namespace {

// One record of a delimited file before columns are resolved.
struct Record {
  std::vector<std::string> fields;
  int64_t line = 0;  // 1-based line where the record starts
};

std::string at_line(const std::string& path, int64_t line) { return path + ":" + std::to_string(line); }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// "'a', 'b'": column names as the file spells them, blanks visible.
std::string quoted_list(std::vector<std::string> v) {
  for (auto& x : v) x = "'" + x + "'";
  return join(v);
}

// Labels are identifiers, so surrounding blanks (e.g. "text", 3) are never meaningful.
std::string trim(std::string_view s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

// Length of the UTF-8 sequence starting at s[i], or 0 if it is malformed (overlong forms,
// surrogates and code points above U+10FFFF are rejected, as the tokenizer would choke on them).
size_t utf8_sequence(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1Fu; }
  else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0Fu; }
  else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07u; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3Fu);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  return n;
}

// Checked once over the whole file so that every later step can assume valid text.
void check_utf8(const std::string& path, const std::string& text) {
  int64_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_sequence(text, i);
    if (n == 0) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(text[i]));
      throw DataError(located(at_line(path, line),
                              "invalid UTF-8 at byte " + std::to_string(i - line_start + 1) + " of the line (" +
                                  hex + ", file offset " + std::to_string(i) + ")",
                              "re-encode the file as UTF-8"));
    }
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
    i += n;
  }
}

// Walks a text line by line (LF-terminated; a final line without LF counts), numbering from 1.
class LineCursor {
 public:
  explicit LineCursor(const std::string& text) : text_(text) {}
  bool next(std::string_view& line) {
    if (pos_ >= text_.size()) return false;
    size_t end = text_.find('\n', pos_);
    if (end == std::string::npos) end = text_.size();
    ++number_;
    line = std::string_view(text_.data() + pos_, end - pos_);
    pos_ = end + 1;
    return true;
  }
  int64_t number() const { return number_; }

 private:
  const std::string& text_;
  size_t pos_ = 0;
  int64_t number_ = 0;
};

// TSV in the GLUE layout: no quoting, a tab always separates fields.
std::vector<Record> parse_tsv(const std::string& text) {
  std::vector<Record> records;
  LineCursor lines(text);
  std::string_view row;
  while (lines.next(row)) {
    if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
    if (row.empty()) continue;
    Record r;
    r.line = lines.number();
    size_t start = 0;
    for (;;) {
      const size_t tab = row.find('\t', start);
      r.fields.emplace_back(row.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    records.push_back(std::move(r));
  }
  return records;
}

// RFC 4180: fields may be quoted, "" inside quotes is a quote, quoted fields may hold commas and
// line breaks, records end with LF or CRLF. A stray quote inside an unquoted field is kept as is.
std::vector<Record> parse_csv(const std::string& path, const std::string& text) {
  std::vector<Record> records;
  Record cur;
  std::string field;
  int64_t line = 1;
  size_t i = 0;
  const size_t n = text.size();
  bool record_open = false;  // something (even an empty field before a comma) was read
  auto end_record = [&] {
    cur.fields.push_back(std::move(field));
    field.clear();
    // A blank line is not a record with one empty field.
    if (record_open || !cur.fields.back().empty()) records.push_back(std::move(cur));
    cur = Record{};
    record_open = false;
  };
  while (i < n) {
    if (!record_open && cur.fields.empty() && field.empty()) cur.line = line;
    char c = text[i];
    if (c == '"' && field.empty()) {
      // Quoted field: runs to the next lone quote.
      const int64_t start_line = line;
      ++i;
      for (;;) {
        if (i >= n)
          throw DataError(located(at_line(path, start_line), "unterminated quoted field",
                                  "a field opened with \" on this line never closes"));
        if (text[i] == '"') {
          if (i + 1 < n && text[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        if (text[i] == '\n') ++line;
        field += text[i++];
      }
      record_open = true;
      // After the closing quote only a separator or the end of the record may follow.
      if (i < n && text[i] != ',' && text[i] != '\n' && !(text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') &&
          !(text[i] == '\r' && i + 1 == n))
        throw DataError(located(at_line(path, line), "unexpected character after a closing quote",
                                "quotes inside a quoted field must be doubled (\"\")"));
      continue;
    }
    if (c == ',') {
      cur.fields.push_back(std::move(field));
      field.clear();
      record_open = true;
      ++i;
    } else if (c == '\n' || (c == '\r' && (i + 1 == n || text[i + 1] == '\n'))) {
      end_record();
      i += (c == '\r' && i + 1 < n) ? 2 : 1;
      ++line;
    } else {
      field += c;
      ++i;
    }
  }
  if (record_open || !field.empty() || !cur.fields.empty()) end_record();
  return records;
}

std::vector<TextRow> rows_from_records(const std::string& path, std::vector<Record> records,
                                       const TableOptions& options) {
  std::vector<std::string> names;
  size_t first = 0;
  int64_t header_line = 1;
  if (records.empty()) return {};
  if (options.header) {
    names = records[0].fields;
    header_line = records[0].line;
    first = 1;
  } else {
    for (size_t k = 0; k < records[0].fields.size(); ++k) names.push_back(std::to_string(k));
    header_line = records[0].line;
  }
  auto column = [&](const std::string& name) -> size_t {
    auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end())
      throw DataError(located(at_line(path, header_line), "unknown column '" + name + "' (known: " + quoted_list(names) + ")",
                              options.header ? "set text_columns/label_column, or header: false for files without one"
                                             : "without a header, columns are named by their index"));
    return static_cast<size_t>(it - names.begin());
  };
  std::vector<size_t> text_idx;
  for (const auto& c : options.text_columns) text_idx.push_back(column(c));
  const bool labelled = !options.label_column.empty();
  const size_t label_idx = labelled ? column(options.label_column) : 0;

  std::vector<TextRow> rows;
  rows.reserve(records.size() - first);
  for (size_t k = first; k < records.size(); ++k) {
    Record& r = records[k];
    if (r.fields.size() != names.size())
      throw DataError(located(at_line(path, r.line),
                              "row has " + std::to_string(r.fields.size()) + " field(s), expected " +
                                  std::to_string(names.size()),
                              options.header ? "the header defines the number of columns"
                                             : "without a header, the first row defines the number of columns"));
    TextRow row;
    for (size_t t : text_idx) row.texts.push_back(r.fields[t]);
    if (labelled) row.label = trim(r.fields[label_idx]);
    row.row = static_cast<int64_t>(rows.size());
    row.line = r.line;
    rows.push_back(std::move(row));
  }
  return rows;
}

// One JSON value as text: strings verbatim, numbers as written by the serializer (1 -> "1").
std::string cell_text(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::vector<TextRow> parse_jsonl(const std::string& path, const std::string& text, const TableOptions& options) {
  std::vector<TextRow> rows;
  LineCursor lines(text);
  std::string_view s;
  while (lines.next(s)) {
    const int64_t line = lines.number();
    if (s.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json obj;
    try {
      obj = nlohmann::json::parse(s);
    } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number beyond double
      throw DataError(located(at_line(path, line), "invalid JSON line", e.what()));
    }
    if (!obj.is_object())
      throw DataError(located(at_line(path, line), "JSON line is a " + std::string(obj.type_name()) + ", not an object"));
    auto get = [&](const std::string& key) -> const nlohmann::json& {
      auto it = obj.find(key);
      if (it == obj.end()) {
        std::vector<std::string> keys;
        for (auto& [k, v] : obj.items()) keys.push_back(k);
        throw DataError(located(at_line(path, line), "unknown column '" + key + "' (known: " + quoted_list(keys) + ")",
                                "every line must have the text and label keys"));
      }
      return *it;
    };
    TextRow row;
    for (const auto& c : options.text_columns) {
      const auto& v = get(c);
      if (!v.is_string() && !v.is_number())
        throw DataError(located(at_line(path, line), "column '" + c + "' is a " + v.type_name() + ", not text"));
      row.texts.push_back(cell_text(v));
    }
    if (!options.label_column.empty()) {
      const auto& v = get(options.label_column);
      if (!v.is_null()) {
        if (!v.is_string() && !v.is_number() && !v.is_boolean())
          throw DataError(located(at_line(path, line),
                                  "label '" + options.label_column + "' is a " + v.type_name() + ", not a value"));
        row.label = trim(cell_text(v));
      }
    }
    row.row = static_cast<int64_t>(rows.size());
    row.line = line;
    rows.push_back(std::move(row));
  }
  return rows;
}

TableFormat format_from_extension(const std::string& path) {
  const std::string p = lower(path);
  auto ends = [&](const std::string& e) { return p.size() >= e.size() && p.compare(p.size() - e.size(), e.size(), e) == 0; };
  if (ends(".tsv") || ends(".txt")) return TableFormat::Tsv;
  if (ends(".csv")) return TableFormat::Csv;
  if (ends(".jsonl") || ends(".json") || ends(".ndjson")) return TableFormat::Jsonl;
  throw DataError(located(path, "cannot tell the table format from the file extension",
                          "use .tsv, .csv or .jsonl, or set the format explicitly"));
}

}  // namespace

TableFormat parse_table_format(const std::string& name) {
  const std::string n = lower(name);
  if (n == "auto" || n.empty()) return TableFormat::Auto;
  if (n == "tsv") return TableFormat::Tsv;
  if (n == "csv") return TableFormat::Csv;
  if (n == "jsonl" || n == "json") return TableFormat::Jsonl;
  throw ConfigError(located("format", "unknown table format '" + name + "'", "use auto, tsv, csv or jsonl"));
}

std::vector<TextRow> read_table(const std::string& path, const TableOptions& options) {
  if (options.text_columns.empty() || options.text_columns.size() > 2)
    throw ConfigError(located(path, "text_columns must name one or two columns, got " +
                                        std::to_string(options.text_columns.size())));
  const TableFormat format = options.format == TableFormat::Auto ? format_from_extension(path) : options.format;
  std::string text = read_file(path);  // IoError naming the file if missing
  // A UTF-8 byte-order mark (spreadsheet exports) would otherwise end up in the first column name.
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
  check_utf8(path, text);

  std::vector<TextRow> rows;
  if (format == TableFormat::Jsonl)
    rows = parse_jsonl(path, text, options);
  else
    rows = rows_from_records(path, format == TableFormat::Tsv ? parse_tsv(text) : parse_csv(path, text), options);
  if (rows.empty())
    throw DataError(located(path, "no data rows", options.header ? "the file is empty or holds only a header"
                                                                 : "the file is empty"));
  return rows;
}

}  // namespace kd
