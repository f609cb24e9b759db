#!/usr/bin/env bash
# Set-up (if needed), build, then the main job, the whole classic distillation flow on SST-2:
#   1. fine-tune the pretrained MiniLM teacher   (kd train-teacher, configs/sst2_teacher.yaml → runs/sst2-teacher)
#   2. cache its knowledge, distil BiLSTM students and no-teacher baselines over 3 seeds, and report
#                                                (kd distill, configs/sst2_distill.yaml → runs/sst2-distill)
# A stage that finished is kept; an interrupted one is continued (--resume). KD_FRESH=1 starts over.
# Extra arguments go to both kd commands (e.g. --threads 2 --no-progress).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${KD_BUILD:-$ROOT/build}"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
start=$(date +%s)

stage() {  # stage <name> <run_dir> <kd command> <config>
  local name=$1 run=$2 cmd=$3 config=$4 mode=()
  if [ "${KD_FRESH:-0}" = 1 ]; then
    [ -d "$run" ] && mode=(--overwrite)
  elif [ -f "$run/summary.json" ] || [ -f "$run/report.json" ]; then
    echo "[main] $name: done before ($run), kept"; return 0
  elif [ -d "$run/last" ] || [ -f "$run/config.yaml" ]; then
    mode=(--resume)
  fi
  local t0; t0=$(date +%s)
  "$BUILD/kd" "$cmd" --config "$config" "${mode[@]}" "${EXTRA[@]}"
  echo "[main] $name: $(( $(date +%s) - t0 )) s"
}

EXTRA=("$@")
stage "teacher fine-tuning" runs/sst2-teacher train-teacher configs/sst2_teacher.yaml
stage "distillation" runs/sst2-distill distill configs/sst2_distill.yaml
echo "[main] all stages: $(( $(date +%s) - start )) s on $(nproc) cores; report: runs/sst2-distill/report.md"
