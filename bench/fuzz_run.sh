#!/usr/bin/env bash
# Runs every libFuzzer target of build-fuzz (fuzz/README.md) one after the other, each for a fixed time,
# with ASan and UBSan set to abort on the first report and LeakSanitizer on (libFuzzer checks each input
# that allocated more than it freed; tests/sanitizers/lsan.supp lists what is not kd's). Builds nothing.
#
#   bench/fuzz_run.sh [BUILD_FUZZ_DIR [SECONDS_PER_TARGET [OUT_DIR]]]
#
# Defaults: build-fuzz, 600 s, <BUILD_FUZZ_DIR>/runs. Each target's corpus starts from the driver's seeds
# (build/test_tmp/fuzz_seeds/<target>/, written by `kd_tests --gtest_filter='FuzzDriverTest.*'`; another
# folder with KD_FUZZ_SEEDS) plus small real files; it grows in OUT_DIR/<target>/corpus, crashes land in
# OUT_DIR/<target>/crashes, libFuzzer's output in OUT_DIR/<target>/log.txt. KD_FUZZ_TARGETS="a b" runs
# only those. The summary table goes to OUT_DIR/summary.txt and stdout. Exit status 1 when any target crashed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build-fuzz}" && pwd)
secs=${2:-600}
out=${3:-$build/runs}
seeds=${KD_FUZZ_SEEDS:-$root/build/test_tmp/fuzz_seeds}
targets=${KD_FUZZ_TARGETS:-"gguf_fuzz bpe_tokenizer_fuzz tokenizer_json_fuzz safetensors_fuzz wordpiece_vocab_fuzz
  config_yaml_fuzz table_reader_fuzz knowledge_cache_fuzz lm_topk_cache_fuzz feature_cache_fuzz"}
model=$root/models/all-MiniLM-L6-v2
data=${KD_SHARED_DATA:-$root/../shared/data}

out=$(realpath -m "$out")
if git -C "$root" ls-files --error-unmatch "$out" >/dev/null 2>&1; then
  echo "fuzz_run.sh: $out is tracked by git; give an output folder outside the sources" >&2; exit 2
fi
mkdir -p "$out"

# Per target: the seed folder the driver writes, and -max_len.
seed_name() { local t=${1%_fuzz}; echo "$t"; }
max_len() {
  case $1 in
    gguf_fuzz) echo 65536 ;;
    safetensors_fuzz | knowledge_cache_fuzz | feature_cache_fuzz | wordpiece_vocab_fuzz) echo 16384 ;;
    *) echo 8192 ;;
  esac
}

# Small real files as extra seeds (never a whole large file).
real_seeds() {
  local t=$1 dir=$2
  case $t in
    safetensors_fuzz)  # the model's header alone (8-byte length + JSON): 90 MB of weights stay out
      if [ -f "$model/model.safetensors" ]; then
        python3 - "$model/model.safetensors" "$dir/minilm_header.safetensors" <<'PY'
import struct, sys
with open(sys.argv[1], 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    head = f.read(n) if n < (1 << 20) else b''
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(head)) + head)
PY
      fi ;;
    wordpiece_vocab_fuzz)
      [ -f "$model/vocab.txt" ] && head -n 1500 "$model/vocab.txt" > "$dir/minilm_vocab_head.txt" ;;
    config_yaml_fuzz)
      for f in "$root"/configs/*.yaml; do [ "$(stat -c %s "$f")" -le 8192 ] && cp "$f" "$dir/"; done ;;
    table_reader_fuzz)
      for f in "$data"/sst2/dev.tsv "$data"/*/dev.csv "$data"/*/dev.jsonl; do
        [ -f "$f" ] && head -n 40 "$f" > "$dir/$(basename "$(dirname "$f")")_$(basename "$f")"
      done ;;
  esac
  return 0
}

summary=$out/summary.txt
{
  echo "# bench/fuzz_run.sh $(date -u +%Y-%m-%dT%H:%MZ), $secs s per target, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
  printf '%-22s %8s %12s %8s %8s\n' target seconds executions corpus crashes
} > "$summary"
failed=0
for t in $targets; do
  bin=$build/fuzz/$t
  if [ ! -x "$bin" ]; then echo "fuzz_run.sh: $bin not built" >&2; failed=1; continue; fi
  dir=$out/$t
  mkdir -p "$dir/corpus" "$dir/crashes" "$dir/seeds"
  s=$(seed_name "$t")
  [ -d "$seeds/$s" ] && cp -n "$seeds/$s"/* "$dir/seeds/" 2>/dev/null || true
  real_seeds "$t" "$dir/seeds"
  start=$(date +%s.%N)
  set +e
  (cd "$dir/crashes" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1:symbolize=1 \
    LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
    "$bin" "$dir/corpus" "$dir/seeds" -max_len="$(max_len "$t")" -rss_limit_mb=4096 -timeout=30 \
      -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$dir/crashes/" > "$dir/log.txt" 2>&1)
  rc=$?
  set -e
  took=$(echo "$(date +%s.%N) - $start" | bc)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$dir/log.txt" | tail -1 | grep -o '[0-9]*$' || true)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$dir/log.txt" | tail -1 | tr -d '#' || true)
  corpus=$(find "$dir/corpus" -type f | wc -l)
  crashes=$(find "$dir/crashes" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ] || failed=1
  printf '%-22s %8.0f %12s %8s %8s\n' "$t" "$took" "${execs:-?}" "$corpus" "$crashes" >> "$summary"
  tail -n 1 "$summary"
done
echo "summary: $summary"
cat "$summary"
exit $failed
