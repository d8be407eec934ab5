#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds provision and runs every test suite (both flavours: include/ and the
# single header). Ends with "N passed, N failed, N skipped" counted over
# doctest cases. --quick: the edit loop, the component suites only, at -O0 in
# a build folder of its own (build-quick); see tests/meson.build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
status=0
if [[ ${1:-} == --quick ]]; then
  # The edit loop: the component suites only, in a build folder of its own at
  # -O0 without debug information (the CLI too), no single header, no fault,
  # hostile or terminal-output runs (tests/meson.build).
  shift
  build=${QUICK_BUILD_DIR:-build-quick}
  if [[ ! -f "$build/build.ninja" ]]; then
    meson setup "$build" -Dquick_loop=true -Doptimization=0 -Ddebug=false >/dev/null
  fi
  ninja -C "$build" tests/tests_quick examples/provision examples/file_server tests/hostile_server
  meson test -C "$build" --no-rebuild --setup quick --suite quick --print-errorlogs "$@" || status=$?
  log=$build/meson-logs/testlog-quick.json
else
  build=${BUILD_DIR:-build}
  if [[ ! -f "$build/build.ninja" ]]; then
    meson setup "$build" >/dev/null
  fi
  ninja -C "$build"
  # --no-rebuild: ninja has just built what the tests need.
  meson test -C "$build" --no-rebuild --print-errorlogs "$@" || status=$?
  log=$build/meson-logs/testlog.json
fi
python3 tools/test_summary.py "$log"
exit $status
