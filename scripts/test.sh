#!/usr/bin/env bash
# Set-up (if needed), build, then the default test run: unit, parity and e2e labels; `slow` is left out.
# Extra arguments go to ctest, e.g. `scripts/test.sh -L parity`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${KD_BUILD:-$ROOT/build}"
"$ROOT/scripts/setup.sh"
cd "$BUILD"
ctest --output-on-failure --timeout 1200 -LE slow -j "${KD_TEST_JOBS:-2}" "$@"
