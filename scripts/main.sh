#!/usr/bin/env bash
# Set-up (if needed), build, then the main job: fine-tune the pretrained MiniLM teacher on SST-2.
# Extra arguments go to `kd train-teacher`, e.g. `scripts/main.sh --set train.epochs=2`.
# The run folder is runs/sst2-teacher; an existing run there is continued (--resume) unless
# KD_FRESH=1 asks for a fresh start.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${KD_BUILD:-$ROOT/build}"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
args=(train-teacher --config configs/sst2_teacher.yaml)
if [ -d runs/sst2-teacher/last ]; then
  if [ "${KD_FRESH:-0}" = 1 ]; then args+=(--overwrite); else args+=(--resume); fi
fi
exec "$BUILD/kd" "${args[@]}" "$@"
