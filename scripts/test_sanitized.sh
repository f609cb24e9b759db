#!/usr/bin/env bash
# The tests under AddressSanitizer + UndefinedBehaviorSanitizer (with LeakSanitizer): a build folder of
# its own, configured with -DKD_SANITIZE=ON (CMakeLists.txt), then ctest on it. Needs scripts/setup.sh to
# have run (the venv with LibTorch, the models).
#   scripts/test_sanitized.sh [CTEST_ARGS]   all of kd and kd_tests; without arguments the `unit` label
#   scripts/test_sanitized.sh --ci           CI's part: the readers and their tests alone (label `sanitize`,
#                                            tests/CMakeLists.txt), a fraction of the build time
#   KD_ASAN_BUILD  build folder        (default: <repo>/build-asan)
#   KD_VENV        venv with torch     (default: <repo>/.venv)
#   KD_JOBS        parallel compiles   (default: nproc)
# Reports abort the process that made them (the test fails, its output shows the report); leaks of LibTorch's
# own start-up and thread pools are suppressed by tests/sanitizers/lsan.supp, kd's are not.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${KD_ASAN_BUILD:-$ROOT/build-asan}"
VENV="${KD_VENV:-$ROOT/.venv}"
JOBS="${KD_JOBS:-$(nproc)}"
prefix="$("$VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DKD_SANITIZE=ON -DCMAKE_PREFIX_PATH="$prefix" \
        -DPython3_EXECUTABLE="$VENV/bin/python" -DKD_PYTHON="$VENV/bin/python" >/dev/null
fi
targets=(kd kd_tests)
if [ "${1:-}" = "--ci" ]; then
  shift
  targets=(kd_reader_tests)
  set -- -L sanitize "$@"
fi
cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}"
# The variables reach every process a test starts (kd, which is instrumented too; Python ignores them).
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:${KD_ASAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$ROOT/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
cd "$BUILD"
if [ $# -eq 0 ]; then set -- -L unit; fi
ctest --output-on-failure --timeout 1200 -j "${KD_TEST_JOBS:-2}" "$@"
