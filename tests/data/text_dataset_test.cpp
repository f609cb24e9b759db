#include "kd/data/text_dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "kd/error.h"
#include "test_paths.h"

namespace kd {
namespace {

// A tiny vocabulary: ids 0..4 are the special tokens, everything else is a handful of words.
WordPieceTokenizer tiny_tokenizer() {
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat",
                                    "sat",   "on",    "mat",   "dog",   "##s",    ".",     "a"};
  return WordPieceTokenizer(vocab, WordPieceOptions{});
}

TextRow row(std::vector<std::string> texts, std::string label, int64_t index) {
  TextRow r;
  r.texts = std::move(texts);
  r.label = std::move(label);
  r.row = index;
  r.line = index + 2;  // as if below a header
  return r;
}

TEST(TextDatasetTest, TokenizesRowsAndMapsLabels) {
  const auto tok = tiny_tokenizer();
  const std::vector<TextRow> rows = {row({"The cats sat."}, "pos", 0), row({"a dog"}, "neg", 1),
                                     row({"on the mat"}, "", 2)};
  const LabelVocab labels({"neg", "pos"});
  const TextDataset ds(rows, tok, labels, 0, "toy.tsv");
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds.source(), "toy.tsv");
  // [CLS] the cat ##s sat . [SEP]
  EXPECT_EQ(ds[0].encoding.ids, (std::vector<int64_t>{2, 5, 6, 11, 7, 12, 3}));
  EXPECT_EQ(ds[0].label, 1);
  EXPECT_EQ(ds[1].label, 0);
  EXPECT_EQ(ds[2].label, -1);  // unlabelled
  EXPECT_EQ(ds[2].row, 2);
}

TEST(TextDatasetTest, SentencePairsAndTruncation) {
  const auto tok = tiny_tokenizer();
  const std::vector<TextRow> rows = {row({"the cat", "the dog sat"}, "1", 0),
                                     row({"the cat sat on the mat", "a dog sat on a mat"}, "0", 1)};
  const LabelVocab labels({"0", "1"});
  const TextDataset full(rows, tok, labels, 0);
  // [CLS] the cat [SEP] the dog sat [SEP]
  EXPECT_EQ(full[0].encoding.ids, (std::vector<int64_t>{2, 5, 6, 3, 5, 10, 7, 3}));
  EXPECT_EQ(full[0].encoding.type_ids, (std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1}));

  const TextDataset cut(rows, tok, labels, 8);
  for (const auto& ex : cut.examples()) {
    EXPECT_LE(ex.encoding.size(), 8u);
    EXPECT_EQ(ex.encoding.ids.front(), tok.cls_id());
    EXPECT_EQ(ex.encoding.ids.back(), tok.sep_id());
  }
}

TEST(TextDatasetTest, UnknownLabelNamesSourceLine) {
  const auto tok = tiny_tokenizer();
  const std::vector<TextRow> rows = {row({"the cat"}, "0", 0), row({"the dog"}, "7", 1)};
  try {
    TextDataset(rows, tok, LabelVocab({"0", "1"}), 0, "dev.tsv");
    FAIL() << "no exception";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("dev.tsv:3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'7'"), std::string::npos) << msg;
  }
}

TEST(TextDatasetTest, ParallelTokenizationMatchesSerialOrder) {
  const auto tok = tiny_tokenizer();
  const std::vector<std::string> texts = {"the cat", "a dog sat on the mat .", "cats", "the the the", "mat"};
  std::vector<TextRow> rows;
  for (int64_t i = 0; i < 5000; ++i)  // above the threshold where a second thread is used
    rows.push_back(row({texts[static_cast<size_t>(i * 7 % 5)]}, i % 3 ? "1" : "0", i));
  const TextDataset ds(rows, tok, LabelVocab({"0", "1"}), 0);
  ASSERT_EQ(ds.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(ds[i].encoding.ids, tok.encode(rows[i].texts[0]).ids) << i;
    ASSERT_EQ(ds[i].row, static_cast<int64_t>(i));
    ASSERT_EQ(ds[i].label, i % 3 ? 1 : 0);
  }
}

TEST(TextDatasetTest, TokenizesSst2Train) {
  const auto rows = read_table(test::shared_data("sst2/train.tsv"), TableOptions{});
  const auto labels = LabelVocab::build(rows);
  const TextDataset ds(rows, tiny_tokenizer(), labels, 128, "sst2/train.tsv");
  ASSERT_EQ(ds.size(), 67349u);
  for (const auto& ex : ds.examples()) {
    ASSERT_TRUE(ex.label == 0 || ex.label == 1);
    ASSERT_GE(ex.encoding.size(), 2u);
    ASSERT_LE(ex.encoding.size(), 128u);
  }
}

}  // namespace
}  // namespace kd
