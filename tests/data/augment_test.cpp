#include "kd/data/augment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "kd/error.h"

namespace kd {
namespace {

// ids: 0 [PAD] 1 [UNK] 2 [CLS] 3 [SEP] 4 [MASK], then words; "##s" (11) continues a word.
WordPieceTokenizer tiny_tokenizer() {
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat",
                                    "sat",   "on",    "mat",   "dog",   "##s",    ".",     "a"};
  return WordPieceTokenizer(vocab, WordPieceOptions{});
}

TextDataset dataset(const WordPieceTokenizer& tok, const std::vector<std::string>& texts) {
  std::vector<TextRow> rows;
  for (size_t i = 0; i < texts.size(); ++i) {
    TextRow r;
    r.texts = {texts[i]};
    r.label = "pos";
    r.row = static_cast<int64_t>(i);
    r.line = r.row + 1;
    rows.push_back(r);
  }
  return TextDataset(rows, tok, LabelVocab({"neg", "pos"}), 0, "toy.tsv");
}

AugmentOptions options(int64_t copies, double mask, double ngram, int64_t max_ngram = 5, uint64_t seed = 7) {
  AugmentOptions o;
  o.copies = copies;
  o.mask_prob = mask;
  o.ngram_prob = ngram;
  o.max_ngram = max_ngram;
  o.seed = seed;
  return o;
}

const std::vector<std::string> kTexts = {"the cats sat on the mat .", "a dog sat", "the dogs sat on a cat ."};

TEST(AugmentTest, DeterministicUnlabelledUniqueRowsAndNoCopyOfTheSource) {
  const auto tok = tiny_tokenizer();
  const auto ds = dataset(tok, kTexts);
  const auto a = augment_examples(ds, tok, options(6, 0.2, 0.3), 1000);
  const auto b = augment_examples(ds, tok, options(6, 0.2, 0.3), 1000);
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());
  std::set<int64_t> rows;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].encoding.ids, b[i].encoding.ids);
    EXPECT_EQ(a[i].label, -1);
    EXPECT_GE(a[i].row, 1000);
    EXPECT_TRUE(rows.insert(a[i].row).second) << "row " << a[i].row << " twice";
    const int64_t source = (a[i].row - 1000) % static_cast<int64_t>(ds.size());
    EXPECT_NE(a[i].encoding.ids, ds[static_cast<size_t>(source)].encoding.ids);
    EXPECT_EQ(a[i].encoding.ids.front(), tok.cls_id());
    EXPECT_EQ(a[i].encoding.ids.back(), tok.sep_id());
    EXPECT_EQ(a[i].encoding.ids.size(), a[i].encoding.type_ids.size());
  }
  // Another seed gives other copies.
  const auto c = augment_examples(ds, tok, options(6, 0.2, 0.3, 5, 8), 1000);
  bool differs = c.size() != a.size();
  for (size_t i = 0; !differs && i < a.size(); ++i) differs = a[i].encoding.ids != c[i].encoding.ids;
  EXPECT_TRUE(differs);
}

TEST(AugmentTest, MaskingReplacesWholeWordsIncludingContinuations) {
  const auto tok = tiny_tokenizer();
  const auto ds = dataset(tok, {"the cats sat"});
  // Every word masked, no n-grams: "cats" (cat ##s) becomes one [MASK], so 3 words -> 3 masks.
  const auto out = augment_examples(ds, tok, options(1, 1.0, 0.0), 0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].encoding.ids, (std::vector<int64_t>{2, 4, 4, 4, 3}));
}

TEST(AugmentTest, NgramSamplingKeepsOneContiguousSpanOfAtMostMaxWords) {
  const auto tok = tiny_tokenizer();
  const auto ds = dataset(tok, {"the cats sat on the mat ."});
  const std::vector<int64_t> inner = {5, 6, 11, 7, 8, 5, 9, 12};  // the cat ##s sat on the mat .
  const auto out = augment_examples(ds, tok, options(40, 0.0, 1.0, 2), 0);
  ASSERT_GT(out.size(), 3u);
  for (const auto& ex : out) {
    const std::vector<int64_t> body(ex.encoding.ids.begin() + 1, ex.encoding.ids.end() - 1);
    ASSERT_FALSE(body.empty());
    EXPECT_NE(body.front(), 11) << "a span never starts inside a word";
    const auto it = std::search(inner.begin(), inner.end(), body.begin(), body.end());
    EXPECT_NE(it, inner.end()) << "not a contiguous span of the source";
    int64_t words = 0;
    for (int64_t id : body) words += id != 11;
    EXPECT_LE(words, 2);
  }
}

TEST(AugmentTest, ZeroCopiesAndPairsAreHandled) {
  const auto tok = tiny_tokenizer();
  const auto ds = dataset(tok, kTexts);
  EXPECT_TRUE(augment_examples(ds, tok, options(0, 0.5, 0.5), 0).empty());
  // A sentence pair is masked on both sides but never cut: both [SEP]s and the type ids stay.
  std::vector<TextRow> rows(1);
  rows[0].texts = {"the cat sat", "a dog"};
  rows[0].label = "neg";
  const TextDataset pairs(rows, tok, LabelVocab({"neg", "pos"}), 0, "pairs.tsv");
  const auto out = augment_examples(pairs, tok, options(1, 1.0, 1.0), 0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].encoding.ids, (std::vector<int64_t>{2, 4, 4, 4, 3, 4, 4, 3}));
  EXPECT_EQ(out[0].encoding.type_ids, (std::vector<int64_t>{0, 0, 0, 0, 0, 1, 1, 1}));
}

// Directions chosen so the nearest words are clear: dog is nearest cat, mat nearest dog, and so on.
// "##s" and [MASK] point exactly where cat does, to show that they are never candidates.
torch::Tensor toy_table() {
  std::vector<float> v = {
      0, 0, 1,   0, 0, 1,     0, 0, 1,  0, 0, 1,   0, 1, 0,    // [PAD] [UNK] [CLS] [SEP] [MASK]
      1, 0, 0,   0, 1, 0,     0, 0, 1,  1, 0.1, 0, 0, 0.5, 0.5, // the cat sat on mat
      0, 0.9, 0.1, 0, 1, 0,   0, 1, 0,  0, 1, 0};              // dog ##s . a
  return torch::tensor(v).reshape({14, 3});
}

TEST(AugmentTest, SwappableWordsAreWholeWordsOfLetters) {
  EXPECT_TRUE(swappable_word("cat", "##"));
  EXPECT_TRUE(swappable_word("Oil", "##"));
  for (const char* no : {"a", "##s", "[CLS]", "[unused0]", "1999", "u.s", "café", ".."})
    EXPECT_FALSE(swappable_word(no, "##")) << no;
}

TEST(AugmentTest, NearestWordsAreByCosineAndSkipTheWordItselfPiecesAndSpecials) {
  const auto tok = tiny_tokenizer();
  const auto ds = dataset(tok, kTexts);
  const WordNeighbours n = nearest_words(toy_table(), tok, ds, 2);
  EXPECT_EQ(n.of.size(), 6u);  // the cat sat on mat dog: "a", "." and "##s" are not words to swap
  EXPECT_EQ(n.of.at(6), (std::vector<int64_t>{10, 9}));   // cat: dog, mat (not ##s or [MASK])
  EXPECT_EQ(n.of.at(10), (std::vector<int64_t>{6, 9}));   // dog: cat, mat
  EXPECT_EQ(n.of.at(7), (std::vector<int64_t>{9, 10}));   // sat: mat, dog
  EXPECT_EQ(n.of.at(5).front(), 8);                       // the: on
  EXPECT_EQ(n.fingerprint(), nearest_words(toy_table(), tok, ds, 2).fingerprint());
  EXPECT_NE(n.fingerprint(), nearest_words(toy_table(), tok, ds, 1).fingerprint());
  EXPECT_THROW(nearest_words(torch::zeros({5, 3}), tok, ds, 2), Error);  // fewer rows than the vocabulary
}

TEST(AugmentTest, SwappingReplacesOneTokenWordsWithANeighbour) {
  const auto tok = tiny_tokenizer();
  const auto ds = dataset(tok, kTexts);
  const WordNeighbours n = nearest_words(toy_table(), tok, ds, 1);
  AugmentOptions o = options(1, 0.0, 0.0);
  o.swap_prob = 1.0;
  o.neighbours = 1;
  const auto out = augment_examples(ds, tok, o, 0, &n);
  ASSERT_EQ(out.size(), 3u);
  // the cats sat on the mat . -> on cats mat the on dog . ("cats" is two pieces: kept; "." is kept)
  EXPECT_EQ(out[0].encoding.ids, (std::vector<int64_t>{2, 8, 6, 11, 9, 5, 8, 10, 12, 3}));
  EXPECT_EQ(out[1].encoding.ids, (std::vector<int64_t>{2, 13, 6, 9, 3}));  // a dog sat -> a cat mat
  EXPECT_THROW(augment_examples(ds, tok, o, 0), Error);                    // swapping needs neighbours

  // With swap_prob 0 the copies are those made without neighbours: the draws are not consumed.
  const auto plain = augment_examples(ds, tok, options(6, 0.2, 0.3), 0);
  AugmentOptions off = options(6, 0.2, 0.3);
  off.neighbours = 1;
  const auto with = augment_examples(ds, tok, off, 0, &n);
  ASSERT_EQ(plain.size(), with.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(plain[i].encoding.ids, with[i].encoding.ids);
}

TEST(AugmentTest, ConfigIsValidatedAndDescribed) {
  auto cfg = Config::from_string("augment: {copies: 4, mask_prob: 0.15}\n", "a.yaml");
  const auto o = AugmentOptions::from(cfg.root().child("augment"));
  EXPECT_EQ(o.describe(), "copies=4 mask=0.15 ngram=0.25 max_ngram=5 seed=7");
  auto swap = Config::from_string("augment: {copies: 4, swap_prob: 0.3, neighbours: 10}\n", "a.yaml");
  EXPECT_EQ(AugmentOptions::from(swap.root().child("augment")).describe(),
            "copies=4 mask=0.1 ngram=0.25 max_ngram=5 seed=7 swap=0.3 neighbours=10");
  for (const char* bad : {"augment: {copies: -1}", "augment: {mask_prob: 1.5}", "augment: {ngram_prob: -0.1}",
                          "augment: {max_ngram: 0}", "augment: {swap_prob: 2}", "augment: {neighbours: 0}"}) {
    auto c = Config::from_string(bad, "a.yaml");
    EXPECT_THROW(AugmentOptions::from(c.root().child("augment")), ConfigError) << bad;
  }
}

}  // namespace
}  // namespace kd
