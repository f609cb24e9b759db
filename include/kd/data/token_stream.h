// A text file as one stream of token ids, and fixed-length windows over it: the data of causal-LM
// distillation and perplexity evaluation (wikitext-2 style files: one paragraph or heading per line).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kd/text/bpe_tokenizer.h"

namespace kd {

// Every line of `path` (its newline kept, so paragraphs stay apart) tokenized and concatenated; no
// BOS/EOS is added. Stops after `max_tokens` ids (0: the whole file). IoError for a missing file,
// DataError for an empty result.
std::vector<int64_t> tokenize_text_file(const std::string& path, const BpeTokenizer& tokenizer,
                                        int64_t max_tokens = 0, bool progress = false);

// Non-overlapping windows of `seq_len` ids, (N, seq_len) int64; a last partial window is dropped
// unless `keep_partial`, in which case it is padded with `pad` (positions flagged 0 in the returned
// mask (N, seq_len)).
struct TokenWindows {
  torch::Tensor ids;   // (N, seq_len) int64
  torch::Tensor mask;  // (N, seq_len) int64, 1 = real token
};
TokenWindows make_windows(const std::vector<int64_t>& stream, int64_t seq_len, bool keep_partial = false,
                          int64_t pad = 0);

// FNV-1a 64 (hex) of the ids, for cache keys.
std::string fingerprint_ids(const std::vector<int64_t>& ids);

}  // namespace kd
