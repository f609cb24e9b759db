#!/usr/bin/env bash
# Does llama.cpp run what `kd export --format gguf` writes the way kd runs it? Exports MODEL to F32 GGUF,
# continues PROMPT greedily for 32 tokens with `kd generate` and with llama.cpp (llama-cpp-python), and
# compares the token ids. Exit 0 when all 32 agree, 1 otherwise (the first difference is printed).
#
# Usage: bench/llama_cpp_check.sh [MODEL] [PROMPT]
#   MODEL   a causal-LM folder from kd distill-lm, or a GGUF file (default: the SmolLM2 teacher, whose
#           Q4_1 weights the export writes out as F32)
# llama-cpp-python 0.3.36 is installed into the venv (KD_VENV, default .venv) the first time, built
# from source for a portable x86-64 CPU: AVX, AVX2, FMA, F16C, and AVX-512 where /proc/cpuinfo has it.
# That build takes several minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${KD_VENV:-.venv}
KD=${KD_BUILD:-build}/kd
MODEL=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
PROMPT=${2:-"The capital of France is"}
N=32

if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
  if grep -qw avx512f /proc/cpuinfo; then args="$args -DGGML_AVX512=ON"; fi
  echo "installing llama-cpp-python==0.3.36 (CMAKE_ARGS=$args)"
  CMAKE_ARGS="$args" "$VENV/bin/pip" install --no-cache-dir "llama-cpp-python==0.3.36"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$KD" export --model "$MODEL" --format gguf --type f32 --output "$work/model.gguf" --no-progress
"$VENV/bin/python" -c 'import json, sys; print(json.dumps({"prompt": sys.argv[1]}))' "$PROMPT" >"$work/prompts.jsonl"
"$KD" generate --model "$work/model.gguf" --prompts "$work/prompts.jsonl" --out "$work/kd.jsonl" \
  --max-new-tokens "$N" --ignore-eos --no-progress

"$VENV/bin/python" - "$work/model.gguf" "$PROMPT" "$work/kd.jsonl" "$N" <<'PY'
import json
import sys

from llama_cpp import Llama

path, prompt, kd_out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
kd_ids = json.loads(open(kd_out, encoding="utf-8").readline())["ids"]
llm = Llama(model_path=path, n_ctx=512, n_threads=2, verbose=False)
# kd adds no BOS token, and the file says so (tokenizer.ggml.add_bos_token = false).
prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
ids = []
for tok in llm.generate(prompt_ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
    ids.append(int(tok))
    if len(ids) == n:
        break
text = llm.detokenize(ids).decode("utf-8", errors="replace")
print(f"prompt ids (llama.cpp): {prompt_ids}")
print(f"kd:        {kd_ids}")
print(f"llama.cpp: {ids}  {text!r}")
if ids != kd_ids:
    first = next((i for i, (a, b) in enumerate(zip(ids, kd_ids)) if a != b), min(len(ids), len(kd_ids)))
    sys.exit(f"differ from token {first}: llama.cpp {ids[first:first + 4]} vs kd {kd_ids[first:first + 4]}")
print(f"the same {n} greedy tokens")
PY
