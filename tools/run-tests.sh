#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds provision and runs every test suite (both flavours: include/ and the
# single header). Ends with "N passed, N failed, N skipped" counted over
# doctest cases. --quick: the edit loop, the component suites only (one -O0
# program instead of the whole tree); see tests/meson.build.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
bash tools/install-deps.sh
if [[ ! -f "$build/build.ninja" ]]; then
  meson setup "$build" >/dev/null
fi
status=0
if [[ ${1:-} == --quick ]]; then
  # The edit loop: the component suites only, one -O0 program, no single
  # header, no fault, hostile or terminal-output runs (tests/meson.build).
  shift
  ninja -C "$build" tests/tests_quick examples/provision examples/file_server tests/hostile_server
  meson test -C "$build" --no-rebuild --setup quick --suite quick --print-errorlogs "$@" || status=$?
else
  ninja -C "$build"
  meson test -C "$build" --print-errorlogs "$@" || status=$?
fi
python3 tools/test_summary.py "$build/meson-logs/testlog.json"
exit $status
