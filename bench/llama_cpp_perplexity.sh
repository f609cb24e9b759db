#!/usr/bin/env bash
# Does llama.cpp score what `kd export --format gguf --type q8_0` writes the way kd scores it? Exports MODEL
# to a Q8_0 GGUF, then computes the perplexity of the first TOKENS tokens of a wikitext-2 file with
# `kd perplexity` (which reads the Q8_0 weights dequantized to float32) and with llama.cpp
# (llama-cpp-python, Q8_0 kernels), over the same text cut into the same non-overlapping windows
# of SEQ tokens, the first token of each window unscored (the two tokenizations must give as many tokens).
# Exit 0 when the two perplexities agree within 1%.
#
# Usage: bench/llama_cpp_perplexity.sh [MODEL] [TEXT] [TOKENS] [SEQ]
#   MODEL   a causal-LM folder from kd distill-lm, or a GGUF file (default: the SmolLM2 teacher)
#   TEXT    default ../shared/data/wikitext2/wiki.test.tokens; TOKENS default 4096; SEQ default 512
# Needs llama-cpp-python in the venv (bench/llama_cpp_check.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${KD_VENV:-.venv}
KD=${KD_BUILD:-build}/kd
MODEL=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
TEXT=${2:-../shared/data/wikitext2/wiki.test.tokens}
TOKENS=${3:-4096}
SEQ=${4:-512}
THREADS=${KD_THREADS:-2}

"$VENV/bin/python" -c "import llama_cpp" 2>/dev/null || { echo "llama-cpp-python is missing: run bench/llama_cpp_check.sh first" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$KD" export --model "$MODEL" --format gguf --type q8_0 --output "$work/model.gguf" --no-progress
"$KD" perplexity --model "$work/model.gguf" --data "$TEXT" --max-tokens "$TOKENS" --seq-len "$SEQ" \
  --threads "$THREADS" --no-progress | tee "$work/kd.txt"

"$VENV/bin/python" - "$work/model.gguf" "$TEXT" "$TOKENS" "$SEQ" "$THREADS" "$work/kd.txt" <<'PY'
import math
import re
import sys

import numpy as np
from llama_cpp import Llama

path, text, tokens, seq, threads, kd_txt = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
m = re.search(r"perplexity ([0-9.]+) over (\d+) scored tokens \((\d+) tokens", open(kd_txt).read())
kd_ppl, kd_scored, kd_tokens = float(m.group(1)), int(m.group(2)), int(m.group(3))
llm = Llama(model_path=path, n_ctx=seq, n_batch=seq, n_threads=threads, logits_all=True, verbose=False)
# As kd's tokenize_text_file: every line with its newline, no BOS, special tokens not parsed.
ids = []
with open(text, encoding="utf-8") as f:
    for line in f:
        if len(ids) >= tokens:
            break
        ids += llm.tokenize(line.encode("utf-8"), add_bos=False, special=False)
ids = ids[:tokens]
nll, scored = 0.0, 0
for w in range(len(ids) // seq):
    window = ids[w * seq:(w + 1) * seq]
    llm.reset()
    llm.eval(window)
    logits = np.asarray(llm.scores[:seq], dtype=np.float64)  # (seq, vocab): row t predicts token t + 1
    logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    for t in range(seq - 1):
        nll += logz[t] - logits[t, window[t + 1]]
        scored += 1
ppl = math.exp(nll / scored)
diff = abs(ppl - kd_ppl) / kd_ppl
print(f"llama.cpp: perplexity {ppl:.4f} over {scored} scored tokens ({len(ids)} tokens, windows of {seq})")
print(f"kd:        perplexity {kd_ppl:.4f} over {kd_scored} scored tokens ({kd_tokens} tokens)")
if (len(ids), scored) != (kd_tokens, kd_scored):
    sys.exit(f"the token streams differ: llama.cpp {len(ids)} tokens, kd {kd_tokens}")
print(f"relative difference {100 * diff:.3f}% (target: within 1%): {'met' if diff <= 0.01 else 'NOT met'}")
sys.exit(0 if diff <= 0.01 else 1)
PY
