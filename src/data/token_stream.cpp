#include "kd/data/token_stream.h"

#include <fstream>

#include "kd/error.h"
#include "kd/util/fnv1a.h"
#include "kd/util/progress_bar.h"

namespace kd {

std::vector<int64_t> tokenize_text_file(const std::string& path, const BpeTokenizer& tokenizer, int64_t max_tokens,
                                        bool progress) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(located(path, "cannot open the text file"));
  in.seekg(0, std::ios::end);
  const int64_t bytes = static_cast<int64_t>(in.tellg());
  in.seekg(0);
  ProgressBar bar("tokenize " + path.substr(path.find_last_of('/') + 1), bytes, "B", progress);
  std::vector<int64_t> ids;
  std::string line;
  while ((max_tokens <= 0 || static_cast<int64_t>(ids.size()) < max_tokens) && std::getline(in, line)) {
    bar.update(static_cast<int64_t>(line.size()) + 1);
    line += '\n';
    for (auto id : tokenizer.encode(line, /*parse_special=*/false)) ids.push_back(id);
  }
  bar.finish();
  if (max_tokens > 0 && static_cast<int64_t>(ids.size()) > max_tokens) ids.resize(max_tokens);
  if (ids.empty()) throw DataError(located(path, "no tokens in the file"));
  return ids;
}

TokenWindows make_windows(const std::vector<int64_t>& stream, int64_t seq_len, bool keep_partial, int64_t pad) {
  if (seq_len < 2) throw ConfigError(located("seq_len", "must be at least 2, got " + std::to_string(seq_len)));
  const int64_t n = static_cast<int64_t>(stream.size());
  const int64_t full = n / seq_len;
  const int64_t rows = full + ((keep_partial && n % seq_len) ? 1 : 0);
  if (rows == 0)
    throw DataError("token windows: " + std::to_string(n) + " tokens do not fill one window of " +
                    std::to_string(seq_len));
  TokenWindows w;
  w.ids = torch::full({rows, seq_len}, pad, torch::kInt64);
  w.mask = torch::zeros({rows, seq_len}, torch::kInt64);
  const int64_t used = std::min(n, rows * seq_len);
  auto flat_ids = w.ids.view(-1), flat_mask = w.mask.view(-1);
  flat_ids.slice(0, 0, used).copy_(torch::tensor(std::vector<int64_t>(stream.begin(), stream.begin() + used)));
  flat_mask.slice(0, 0, used).fill_(1);
  return w;
}

std::string fingerprint_ids(const std::vector<int64_t>& ids) {
  Fnv1a64 h;
  h.update(ids.data(), ids.size() * sizeof(int64_t));
  return h.hex();
}

}  // namespace kd
