#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds provision and runs every test suite (both flavours: include/ and the
# single header). Ends with "N passed, N failed" counted over doctest cases.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
bash tools/install-deps.sh
if [[ ! -f "$build/build.ninja" ]]; then
  meson setup "$build" >/dev/null
fi
ninja -C "$build"
status=0
meson test -C "$build" --print-errorlogs "$@" || status=$?
python3 tools/test_summary.py "$build/meson-logs/testlog.json"
exit $status
