#include "kd/data/augment.h"

#include <algorithm>
#include <random>
#include <set>

#include "kd/error.h"
#include "kd/io/config.h"
#include "kd/util/fnv1a.h"

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
  std::string s = "copies=" + std::to_string(copies) + " mask=" + short_number(mask_prob) + " ngram=" +
                  short_number(ngram_prob) + " max_ngram=" + std::to_string(max_ngram) + " seed=" + std::to_string(seed);
  // Only when on, so caches made before swapping existed keep their key.
  if (swap_prob > 0) s += " swap=" + short_number(swap_prob) + " neighbours=" + std::to_string(neighbours);
  return s;
}

AugmentOptions AugmentOptions::from(ConfigNode s) {
  AugmentOptions o;
  o.copies = s.get<int64_t>("copies", o.copies);
  o.mask_prob = s.get<double>("mask_prob", o.mask_prob);
  o.ngram_prob = s.get<double>("ngram_prob", o.ngram_prob);
  o.max_ngram = s.get<int64_t>("max_ngram", o.max_ngram);
  o.swap_prob = s.get<double>("swap_prob", o.swap_prob);
  o.neighbours = s.get<int64_t>("neighbours", o.neighbours);
  o.seed = static_cast<uint64_t>(s.get<int64_t>("seed", static_cast<int64_t>(o.seed)));
  if (o.copies < 0 || o.copies > 1000)
    throw ConfigError(located(s.where("copies"), "must be between 0 and 1000, got " + std::to_string(o.copies)));
  auto prob = [&](const char* key, double v) {
    if (!(v >= 0 && v <= 1)) throw ConfigError(located(s.where(key), "must be a probability in [0, 1]"));
  };
  prob("mask_prob", o.mask_prob);
  prob("ngram_prob", o.ngram_prob);
  prob("swap_prob", o.swap_prob);
  if (o.max_ngram < 1) throw ConfigError(located(s.where("max_ngram"), "must be >= 1 word"));
  if (o.neighbours < 1 || o.neighbours > 1000)
    throw ConfigError(located(s.where("neighbours"), "must be between 1 and 1000 words"));
  return o;
}

std::string WordNeighbours::fingerprint() const {
  std::vector<int64_t> ids;
  ids.reserve(of.size());
  for (const auto& [id, list] : of) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  Fnv1a64 h;
  for (int64_t id : ids) {
    const auto& list = of.at(id);
    const int64_t n = static_cast<int64_t>(list.size());
    h.update(&id, sizeof id);
    h.update(&n, sizeof n);
    h.update(list.data(), list.size() * sizeof(int64_t));
  }
  return h.hex();
}

bool swappable_word(const std::string& token, const std::string& continuation_prefix) {
  if (token.size() < 2 || (!continuation_prefix.empty() && token.rfind(continuation_prefix, 0) == 0)) return false;
  return std::all_of(token.begin(), token.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); });
}

WordNeighbours nearest_words(const torch::Tensor& table, const WordPieceTokenizer& tokenizer, const TextDataset& data,
                             int64_t k) {
  const int64_t vocab = tokenizer.vocab_size();
  if (table.dim() != 2 || table.size(0) < vocab)
    throw Error("nearest_words: the embedding table has " + std::to_string(table.dim() == 2 ? table.size(0) : 0) +
                " rows for a vocabulary of " + std::to_string(vocab));
  const std::string& prefix = tokenizer.options().continuation_prefix;
  std::vector<uint8_t> candidate(static_cast<size_t>(vocab));  // bytes: also the mask tensor's storage
  for (int64_t id = 0; id < vocab; ++id)
    candidate[static_cast<size_t>(id)] = swappable_word(tokenizer.id_to_token(id), prefix) ? 1 : 0;
  std::set<int64_t> wanted;  // ordered, so the queries (and their float sums) are the same on every run
  for (size_t i = 0; i < data.size(); ++i)
    for (int64_t id : data[i].encoding.ids)
      if (id >= 0 && id < vocab && candidate[static_cast<size_t>(id)]) wanted.insert(id);

  WordNeighbours out;
  if (wanted.empty()) return out;
  torch::NoGradGuard no_grad;
  const torch::Tensor unit = torch::nn::functional::normalize(
      table.slice(0, 0, vocab).detach().to(torch::kCPU, torch::kFloat),
      torch::nn::functional::NormalizeFuncOptions().dim(1));  // (V, H)
  const torch::Tensor blocked =
      torch::from_blob(candidate.data(), {vocab}, torch::kUInt8).eq(0);  // (V,) a new tensor, not a view
  const std::vector<int64_t> queries(wanted.begin(), wanted.end());
  const int64_t take = std::min<int64_t>(k + 1, vocab);  // + 1: the word itself
  constexpr int64_t kChunk = 1024;  // rows of (chunk, V) similarities at a time: 125 MB for 30k words
  for (size_t start = 0; start < queries.size(); start += kChunk) {
    const size_t end = std::min(queries.size(), start + kChunk);
    const torch::Tensor q = torch::tensor(std::vector<int64_t>(queries.begin() + static_cast<long>(start),
                                                               queries.begin() + static_cast<long>(end)));
    torch::Tensor sim = unit.index_select(0, q).matmul(unit.t());  // (n, V)
    sim.masked_fill_(blocked, -2.0);                               // cosine >= -1: never chosen
    sim.scatter_(1, q.unsqueeze(1), -2.0);                         // nor the word itself
    const torch::Tensor top = std::get<1>(sim.topk(take - 1, 1)).contiguous();  // (n, k)
    const torch::Tensor score = sim.gather(1, top).contiguous();                  // (n, k)
    const auto ids = top.accessor<int64_t, 2>();
    const auto scores = score.accessor<float, 2>();
    for (int64_t r = 0; r < ids.size(0); ++r) {
      std::vector<int64_t>& list = out.of[queries[start + static_cast<size_t>(r)]];
      for (int64_t c = 0; c < ids.size(1); ++c)
        if (scores[r][c] > -2.0f) list.push_back(ids[r][c]);  // fewer candidates than k: the rest were blocked
    }
  }
  return out;
}

std::vector<TextExample> augment_examples(const TextDataset& data, const WordPieceTokenizer& tokenizer,
                                          const AugmentOptions& options, int64_t row_base,
                                          const WordNeighbours* neighbours) {
  std::vector<TextExample> out;
  if (!options.enabled() || data.size() == 0) return out;
  if (options.swaps() && neighbours == nullptr)
    throw Error("augment_examples: swap_prob > 0 needs the teacher's word neighbours");
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
          // Drawn only when swapping is on, so copies made without it stay as they were.
          if (options.swaps() && words[w].end - words[w].begin == 1 && unit(rng) < options.swap_prob) {
            const auto it = neighbours->of.find(seg[words[w].begin]);
            if (it != neighbours->of.end() && !it->second.empty()) {
              copy.ids.push_back(it->second[uniform_below(rng, it->second.size())]);
              copy.type_ids.push_back(static_cast<int64_t>(s));
              continue;
            }
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
