#include "kd/data/label_vocab.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "kd/error.h"
#include "test_paths.h"

namespace kd {
namespace {

std::vector<TextRow> rows_with(const std::vector<std::string>& labels) {
  std::vector<TextRow> rows;
  for (size_t i = 0; i < labels.size(); ++i) {
    TextRow r;
    r.texts = {"x"};
    r.label = labels[i];
    r.row = static_cast<int64_t>(i);
    r.line = static_cast<int64_t>(i) + 2;
    rows.push_back(r);
  }
  return rows;
}

TEST(LabelVocabTest, IntegerLabelsAreOrderedNumerically) {
  const auto v = LabelVocab::build(rows_with({"10", "2", "0", "2", "-1", "1"}));
  EXPECT_EQ(v.labels(), (std::vector<std::string>{"-1", "0", "1", "2", "10"}));
  EXPECT_EQ(v.id("2"), 3);
  EXPECT_EQ(v.id("10"), 4);
  EXPECT_EQ(v.name(0), "-1");
}

TEST(LabelVocabTest, OtherLabelsAreSortedAsStrings) {
  const auto v = LabelVocab::build(rows_with({"pos", "neg", "10", "2", "neutral"}));
  EXPECT_EQ(v.labels(), (std::vector<std::string>{"10", "2", "neg", "neutral", "pos"}));
  EXPECT_TRUE(v.contains("neg"));
  EXPECT_FALSE(v.contains("Neg"));
}

TEST(LabelVocabTest, UnlabelledRowsAreIgnored) {
  const auto v = LabelVocab::build(rows_with({"", "1", "", "0"}));
  EXPECT_EQ(v.labels(), (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(LabelVocab::build(rows_with({"", ""})).size(), 0);
}

TEST(LabelVocabTest, RealDataSets) {
  TableOptions o;
  const auto sst2 = LabelVocab::build(read_table(test::shared_data("sst2/dev.tsv"), o));
  EXPECT_EQ(sst2.labels(), (std::vector<std::string>{"0", "1"}));
  o.text_columns = {"text"};
  const auto trec = LabelVocab::build(read_table(test::shared_data("trec6/test.tsv"), o));
  EXPECT_EQ(trec.labels(), (std::vector<std::string>{"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"}));
}

TEST(LabelVocabTest, UnknownLabelNamesPlaceAndKnownLabels) {
  const LabelVocab v({"neg", "pos"});
  try {
    v.id("neutral", "dev.tsv:17");
    FAIL() << "no exception";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("dev.tsv:17"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'neutral'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'neg', 'pos'"), std::string::npos) << msg;
  }
}

TEST(LabelVocabTest, DuplicateLabelsAreRejected) { EXPECT_THROW(LabelVocab({"a", "b", "a"}), DataError); }

TEST(LabelVocabTest, SaveAndLoadRoundTrip) {
  const auto dir = test::temp_dir("label_vocab_roundtrip");
  const std::string path = (dir / "labels.json").string();
  const LabelVocab v({"neg", "pos", "caf\xC3\xA9"});
  v.save(path);
  const auto loaded = LabelVocab::load(path);
  EXPECT_EQ(loaded.labels(), v.labels());
  EXPECT_EQ(loaded.id("pos"), 1);
  // Atomic write: no temporary file is left next to the target.
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1u);
}

TEST(LabelVocabTest, LoadErrorsNameTheFile) {
  const auto dir = test::temp_dir("label_vocab_bad");
  const std::string missing = (dir / "missing.json").string();
  try {
    LabelVocab::load(missing);
    FAIL() << "no exception";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  const std::string bad = (dir / "bad.json").string();
  std::ofstream(bad) << "[\"a\",\n 3]\n";
  try {
    LabelVocab::load(bad);
    FAIL() << "no exception";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
  const std::string syntax = (dir / "syntax.json").string();
  std::ofstream(syntax) << "[\"a\",\n \"b\"\n";
  try {
    LabelVocab::load(syntax);
    FAIL() << "no exception";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(syntax + ":"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kd
