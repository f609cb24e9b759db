#include "kd/data/augment.h"

#include <random>
#include <set>

#include "kd/error.h"
#include "kd/io/config.h"

namespace kd {

namespace {

// Uniform in [0, 1) from the generator's top 53 bits (fixed by the standard, unlike
// std::uniform_real_distribution).
double unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// A word: token positions [begin, end) of one segment's id list.
struct Span {
  size_t begin, end;
};

std::vector<Span> words_of(const std::vector<int64_t>& ids, const std::vector<bool>& continuation) {
  std::vector<Span> words;
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto id = static_cast<size_t>(ids[i]);
    if (!words.empty() && id < continuation.size() && continuation[id])
      words.back().end = i + 1;
    else
      words.push_back({i, i + 1});
  }
  return words;
}

}  // namespace

std::string AugmentOptions::describe() const {
  return "copies=" + std::to_string(copies) + " mask=" + short_number(mask_prob) + " ngram=" +
         short_number(ngram_prob) + " max_ngram=" + std::to_string(max_ngram) + " seed=" + std::to_string(seed);
}

AugmentOptions AugmentOptions::from(ConfigNode s) {
  AugmentOptions o;
  o.copies = s.get<int64_t>("copies", o.copies);
  o.mask_prob = s.get<double>("mask_prob", o.mask_prob);
  o.ngram_prob = s.get<double>("ngram_prob", o.ngram_prob);
  o.max_ngram = s.get<int64_t>("max_ngram", o.max_ngram);
  o.seed = static_cast<uint64_t>(s.get<int64_t>("seed", static_cast<int64_t>(o.seed)));
  if (o.copies < 0 || o.copies > 1000)
    throw ConfigError(located(s.where("copies"), "must be between 0 and 1000, got " + std::to_string(o.copies)));
  auto prob = [&](const char* key, double v) {
    if (!(v >= 0 && v <= 1)) throw ConfigError(located(s.where(key), "must be a probability in [0, 1]"));
  };
  prob("mask_prob", o.mask_prob);
  prob("ngram_prob", o.ngram_prob);
  if (o.max_ngram < 1) throw ConfigError(located(s.where("max_ngram"), "must be >= 1 word"));
  return o;
}

std::vector<TextExample> augment_examples(const TextDataset& data, const WordPieceTokenizer& tokenizer,
                                          const AugmentOptions& options, int64_t row_base) {
  std::vector<TextExample> out;
  if (!options.enabled() || data.size() == 0) return out;
  std::vector<bool> continuation(static_cast<size_t>(tokenizer.vocab_size()));
  const std::string& prefix = tokenizer.options().continuation_prefix;
  for (size_t id = 0; id < continuation.size(); ++id)
    continuation[id] = tokenizer.id_to_token(static_cast<int64_t>(id)).rfind(prefix, 0) == 0;
  const int64_t mask_id = tokenizer.token_to_id(tokenizer.options().mask_token);  // unk when absent
  const int64_t cls = tokenizer.cls_id(), sep = tokenizer.sep_id();
  const auto stride = static_cast<int64_t>(data.size());
  std::mt19937_64 rng(options.seed);
  out.reserve(data.size() * static_cast<size_t>(options.copies));

  for (size_t i = 0; i < data.size(); ++i) {
    const Encoding& enc = data[i].encoding;
    // Segments between the special tokens: [CLS] a [SEP] (b [SEP]).
    std::vector<std::vector<int64_t>> segments(1);
    for (size_t t = 1; t < enc.ids.size(); ++t) {
      if (enc.ids[t] == sep) {
        if (t + 1 < enc.ids.size()) segments.emplace_back();
      } else if (enc.ids[t] != cls) {
        segments.back().push_back(enc.ids[t]);
      }
    }
    std::set<std::vector<int64_t>> seen{enc.ids};
    for (int64_t j = 0; j < options.copies; ++j) {
      Encoding copy;
      copy.ids.push_back(cls);
      copy.type_ids.push_back(0);
      for (size_t s = 0; s < segments.size(); ++s) {
        const std::vector<int64_t>& seg = segments[s];
        std::vector<Span> words = words_of(seg, continuation);
        std::vector<bool> masked(words.size());
        for (size_t w = 0; w < words.size(); ++w) masked[w] = unit(rng) < options.mask_prob;
        size_t first = 0, last = words.size();
        if (segments.size() == 1 && words.size() > 1 && unit(rng) < options.ngram_prob) {
          const auto n = std::min<uint64_t>(1 + uniform_below(rng, static_cast<uint64_t>(options.max_ngram)),
                                            words.size());
          first = static_cast<size_t>(uniform_below(rng, words.size() - n + 1));
          last = first + static_cast<size_t>(n);
        }
        for (size_t w = first; w < last; ++w) {
          if (masked[w]) {
            copy.ids.push_back(mask_id);
            copy.type_ids.push_back(static_cast<int64_t>(s));
            continue;
          }
          for (size_t t = words[w].begin; t < words[w].end; ++t) {
            copy.ids.push_back(seg[t]);
            copy.type_ids.push_back(static_cast<int64_t>(s));
          }
        }
        copy.ids.push_back(sep);
        copy.type_ids.push_back(static_cast<int64_t>(s));
      }
      if (!seen.insert(copy.ids).second) continue;
      TextExample ex;
      ex.encoding = std::move(copy);
      ex.label = -1;
      ex.row = row_base + j * stride + static_cast<int64_t>(i);
      out.push_back(std::move(ex));
    }
  }
  return out;
}

}  // namespace kd
