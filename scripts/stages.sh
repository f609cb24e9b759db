# Sourced by scripts/main.sh and scripts/students.sh: set-up and build (if needed), then one kd run per
# stage, kept when it finished before, continued when it was interrupted. Sets ROOT, BUILD, `start` (the
# clock) and EXTRA (the sourcing script's arguments, passed to every stage's kd command), and works from ROOT.
#   KD_BUILD    build folder (default: <repo>/build)
#   KD_FRESH=1  starts every stage over (--overwrite)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${KD_BUILD:-$ROOT/build}"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
start=$(date +%s)
EXTRA=("$@")

# stage <name> <run_dir> <kd command> <config> [more kd arguments]
# A run counts as finished when its folder holds what the command writes last: summary.json (train-teacher),
# report.json (distill), or an ablation.json with every variant finished (ablate rewrites it after each).
finished() {
  local run=$1
  [ -f "$run/summary.json" ] || [ -f "$run/report.json" ] ||
    { [ -f "$run/ablation.json" ] && ! grep -q '"finished": false' "$run/ablation.json"; }
}

stage() {
  local name=$1 run=$2 cmd=$3 config=$4 mode=()
  shift 4
  if [ "${KD_FRESH:-0}" = 1 ]; then
    [ -d "$run" ] && mode=(--overwrite)
  elif finished "$run"; then
    echo "[stage] $name: done before ($run), kept"; return 0
  elif [ -d "$run/last" ] || [ -f "$run/config.yaml" ] || [ -f "$run/ablation.yaml" ]; then
    mode=(--resume)
  fi
  local t0; t0=$(date +%s)
  "$BUILD/kd" "$cmd" --config "$config" "$@" "${mode[@]}" "${EXTRA[@]}"
  echo "[stage] $name: $(( $(date +%s) - t0 )) s"
}
