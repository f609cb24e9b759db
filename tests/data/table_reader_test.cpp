#include "kd/data/table_reader.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "kd/error.h"
#include "test_paths.h"

namespace kd {
namespace {

std::string write_temp(const std::string& name, const std::string& bytes) {
  const auto dir = test::temp_dir("table_reader_" + name);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// The message of the expected exception type; fails the test on any other outcome.
template <typename E, typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message should be one line: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no exception thrown";
  return "";
}

TableOptions opts(std::vector<std::string> text, std::string label = "label", bool header = true,
                  TableFormat format = TableFormat::Auto) {
  TableOptions o;
  o.text_columns = std::move(text);
  o.label_column = std::move(label);
  o.header = header;
  o.format = format;
  return o;
}

// ---- the shared real data sets ----

TEST(TableReaderTest, ReadsSst2) {
  const auto train = read_table(test::shared_data("sst2/train.tsv"), opts({"sentence"}));
  const auto dev = read_table(test::shared_data("sst2/dev.tsv"), opts({"sentence"}));
  EXPECT_EQ(train.size(), 67349u);
  EXPECT_EQ(dev.size(), 872u);
  for (const auto& r : dev) {
    ASSERT_EQ(r.texts.size(), 1u);
    EXPECT_TRUE(r.label == "0" || r.label == "1") << r.label;
  }
  EXPECT_EQ(dev[0].texts[0], "one long string of cliches .");
  EXPECT_EQ(dev[0].line, 2);  // line 1 is the header
  EXPECT_EQ(dev.back().row, 871);
  EXPECT_EQ(dev.back().line, 873);
}

TEST(TableReaderTest, ReadsTrec6WithStringLabels) {
  const auto train = read_table(test::shared_data("trec6/train.tsv"), opts({"text"}));
  const auto test_rows = read_table(test::shared_data("trec6/test.tsv"), opts({"text"}));
  EXPECT_EQ(train.size(), 5444u);
  EXPECT_EQ(test_rows.size(), 499u);
  std::set<std::string> labels;
  for (const auto& r : train) labels.insert(r.label);
  EXPECT_EQ(labels, (std::set<std::string>{"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"}));
  EXPECT_EQ(test_rows[0].texts[0], "How far is it from Denver to Aspen ?");
  EXPECT_EQ(test_rows[0].label, "NUM");
}

TEST(TableReaderTest, ReadsAgNewsCsvWithoutHeader) {
  const auto o = opts({"0"}, "1", /*header=*/false);
  const auto train = read_table(test::shared_data("ag_news/train.csv"), o);
  const auto dev = read_table(test::shared_data("ag_news/dev.csv"), o);
  const auto test_rows = read_table(test::shared_data("ag_news/test.csv"), o);
  EXPECT_EQ(train.size(), 5000u);
  EXPECT_EQ(dev.size(), 1000u);
  EXPECT_EQ(test_rows.size(), 1000u);
  EXPECT_EQ(dev[0].texts[0].rfind("BEA buzzing about Beehive BURLINGAME, CALIF.--", 0), 0u);
  EXPECT_EQ(dev[0].label, "3");
  EXPECT_EQ(dev[0].line, 1);
  size_t with_quote = 0;
  for (const auto& r : train) {
    EXPECT_TRUE(r.label.size() == 1 && r.label[0] >= '0' && r.label[0] <= '3') << r.label;
    with_quote += r.texts[0].find('"') != std::string::npos;
  }
  EXPECT_GT(with_quote, 0u);  // "" escapes were decoded
}

// ---- format details ----

TEST(TableReaderTest, TsvStripsCarriageReturnsAndSkipsBlankLines) {
  const auto path = write_temp("crlf.tsv", "sentence\tlabel\r\nhello world\t1\r\n\r\nbye\t0\r\n");
  const auto rows = read_table(path, opts({"sentence"}));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].texts[0], "hello world");
  EXPECT_EQ(rows[0].label, "1");
  EXPECT_EQ(rows[1].texts[0], "bye");
  EXPECT_EQ(rows[1].label, "0");
  EXPECT_EQ(rows[1].line, 4);
  EXPECT_EQ(rows[1].row, 1);
}

TEST(TableReaderTest, TsvWithoutHeaderAndSentencePairs) {
  const auto path = write_temp("pairs.tsv", "a cat\ta dog\tyes\nthe sun\tthe moon\tno");
  const auto rows = read_table(path, opts({"0", "1"}, "2", /*header=*/false));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].texts, (std::vector<std::string>{"the sun", "the moon"}));
  EXPECT_EQ(rows[1].label, "no");
}

TEST(TableReaderTest, EmptyLabelCellOrNoLabelColumnIsUnlabelled) {
  const auto path = write_temp("unlabelled.tsv", "sentence\tlabel\nfirst\t\nsecond\t1\n");
  const auto rows = read_table(path, opts({"sentence"}));
  EXPECT_EQ(rows[0].label, "");
  EXPECT_EQ(rows[1].label, "1");
  const auto none = read_table(path, opts({"sentence"}, ""));
  EXPECT_EQ(none[1].label, "");
}

TEST(TableReaderTest, CsvQuotingFollowsRfc4180) {
  const auto path = write_temp("quoted.csv",
                               "text,label\r\n"
                               "\"a, b\",1\r\n"
                               "\"she said \"\"hi\"\"\",0\r\n"
                               "\"two\r\nlines\",1\r\n"
                               "plain,\"0\"\r\n"
                               "\"\",1");  // no final line break
  const auto rows = read_table(path, opts({"text"}));
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0].texts[0], "a, b");
  EXPECT_EQ(rows[1].texts[0], "she said \"hi\"");
  EXPECT_EQ(rows[2].texts[0], "two\r\nlines");
  EXPECT_EQ(rows[2].line, 4);
  EXPECT_EQ(rows[3].texts[0], "plain");
  EXPECT_EQ(rows[3].label, "0");
  EXPECT_EQ(rows[3].line, 6);  // the quoted line break moved it down one line
  EXPECT_EQ(rows[4].texts[0], "");
}

TEST(TableReaderTest, JsonlNumberAndStringLabels) {
  const auto path = write_temp("rows.jsonl",
                               "{\"sentence\": \"good\", \"label\": 1}\n"
                               "\n"
                               "{\"sentence\": \"bad\", \"label\": \"neg\", \"extra\": [1]}\n"
                               "{\"sentence\": \"meh\", \"label\": null}\n"
                               "{\"sentence\": \"caf\\u00e9\", \"label\": \"\"}\n");
  const auto rows = read_table(path, opts({"sentence"}));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].label, "1");
  EXPECT_EQ(rows[1].label, "neg");
  EXPECT_EQ(rows[1].line, 3);
  EXPECT_EQ(rows[2].label, "");
  EXPECT_EQ(rows[3].texts[0], "caf\xC3\xA9");
  EXPECT_EQ(rows[3].label, "");
}

TEST(TableReaderTest, FormatFromNameAndExtension) {
  EXPECT_EQ(parse_table_format("auto"), TableFormat::Auto);
  EXPECT_EQ(parse_table_format("TSV"), TableFormat::Tsv);
  EXPECT_EQ(parse_table_format("csv"), TableFormat::Csv);
  EXPECT_EQ(parse_table_format("jsonl"), TableFormat::Jsonl);
  EXPECT_THROW(parse_table_format("xml"), ConfigError);
  // An explicit format wins over the extension.
  const auto path = write_temp("data.txt", "a,b\nx,1\n");
  EXPECT_EQ(read_table(path, opts({"a"}, "b", true, TableFormat::Csv)).at(0).label, "1");
}

TEST(TableReaderTest, ByteOrderMarkIsIgnored) {
  const auto path = write_temp("bom.csv", "\xEF\xBB\xBFtext,label\nhi,1\n");
  EXPECT_EQ(read_table(path, opts({"text"})).at(0).texts[0], "hi");
}

// ---- bad input: each names the file and the line ----

TEST(TableReaderTest, MissingFileIsIoError) {
  const auto dir = test::temp_dir("table_reader_missing");
  const std::string path = (dir / "nope.tsv").string();
  const auto msg = error_of<IoError>([&] { read_table(path, opts({"sentence"})); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST(TableReaderTest, UnknownColumnListsKnownOnes) {
  const auto path = write_temp("cols.tsv", "text\tlabel\nhi\t1\n");
  const auto msg = error_of<DataError>([&] { read_table(path, opts({"sentence"})); });
  EXPECT_NE(msg.find(path + ":1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'sentence'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'text', 'label'"), std::string::npos) << msg;

  const auto no_header = error_of<DataError>([&] { read_table(path, opts({"0"}, "label", false)); });
  EXPECT_NE(no_header.find("'0', '1'"), std::string::npos) << no_header;
}

TEST(TableReaderTest, RowWithTooFewFields) {
  const auto path = write_temp("ragged.tsv", "sentence\tlabel\nfine\t1\nno label here\n");
  const auto msg = error_of<DataError>([&] { read_table(path, opts({"sentence"})); });
  EXPECT_NE(msg.find(path + ":3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1 field"), std::string::npos) << msg;
}

TEST(TableReaderTest, UnterminatedQuoteNamesWhereTheFieldStarted) {
  const auto path = write_temp("open.csv", "text,label\nok,1\n\"never closed,0\nmore,1\n");
  const auto msg = error_of<DataError>([&] { read_table(path, opts({"text"})); });
  EXPECT_NE(msg.find(path + ":3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unterminated"), std::string::npos) << msg;
}

TEST(TableReaderTest, TextAfterClosingQuote) {
  const auto path = write_temp("after.csv", "text,label\n\"a\"b,1\n");
  const auto msg = error_of<DataError>([&] { read_table(path, opts({"text"})); });
  EXPECT_NE(msg.find(path + ":2"), std::string::npos) << msg;
}

TEST(TableReaderTest, InvalidUtf8NamesLineAndByte) {
  const auto path = write_temp("latin1.tsv", "sentence\tlabel\nok\t1\ncaf\xE9 noir\t0\n");
  const auto msg = error_of<DataError>([&] { read_table(path, opts({"sentence"})); });
  EXPECT_NE(msg.find(path + ":3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("byte 4"), std::string::npos) << msg;
  // Overlong encodings and surrogates are invalid too.
  const auto overlong = write_temp("overlong.tsv", "sentence\tlabel\n\xC0\xAF\t1\n");
  EXPECT_NE(error_of<DataError>([&] { read_table(overlong, opts({"sentence"})); }).find(overlong + ":2"),
            std::string::npos);
  const auto surrogate = write_temp("surrogate.tsv", "sentence\tlabel\n\xED\xA0\x80\t1\n");
  EXPECT_NE(error_of<DataError>([&] { read_table(surrogate, opts({"sentence"})); }).find(surrogate + ":2"),
            std::string::npos);
}

TEST(TableReaderTest, InvalidJsonLine) {
  const auto path = write_temp("bad.jsonl", "{\"sentence\": \"a\", \"label\": 1}\n{\"sentence\": \"b\", label: 0}\n");
  const auto msg = error_of<DataError>([&] { read_table(path, opts({"sentence"})); });
  EXPECT_NE(msg.find(path + ":2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid JSON"), std::string::npos) << msg;

  const auto array = write_temp("array.jsonl", "[1, 2]\n");
  EXPECT_NE(error_of<DataError>([&] { read_table(array, opts({"sentence"})); }).find(array + ":1"),
            std::string::npos);
}

TEST(TableReaderTest, JsonlMissingKeyListsKeys) {
  const auto path = write_temp("keys.jsonl", "{\"sentence\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": 0}\n");
  const auto msg = error_of<DataError>([&] { read_table(path, opts({"sentence"})); });
  EXPECT_NE(msg.find(path + ":2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'label', 'text'"), std::string::npos) << msg;
}

TEST(TableReaderTest, EmptyDataSet) {
  const auto header_only = write_temp("header_only.tsv", "sentence\tlabel\n");
  const auto msg = error_of<DataError>([&] { read_table(header_only, opts({"sentence"})); });
  EXPECT_NE(msg.find(header_only), std::string::npos) << msg;
  EXPECT_NE(msg.find("no data rows"), std::string::npos) << msg;
  const auto empty = write_temp("empty.jsonl", "\n\n");
  EXPECT_NE(error_of<DataError>([&] { read_table(empty, opts({"sentence"})); }).find(empty), std::string::npos);
  const auto empty_csv = write_temp("empty.csv", "");
  EXPECT_NE(error_of<DataError>([&] { read_table(empty_csv, opts({"0"}, "", false)); }).find(empty_csv),
            std::string::npos);
}

}  // namespace
}  // namespace kd
