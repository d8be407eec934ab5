#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the test suite under sanitizers, each in its own build folder:
#   asan  AddressSanitizer + UndefinedBehaviorSanitizer  ($ASAN_BUILD_DIR, default build-asan)
#   tsan  ThreadSanitizer: the downloader's pool, the HTTP client's connection
#         pool and the provisioner run on several threads  ($TSAN_BUILD_DIR, default build-tsan)
# Only the include/ flavour of each suite is built and run (the single-header
# flavour is the same code, generated; the normal run covers it), plus the
# fuzz-corpus replays and the ODR test: half the build time of a full run.
#
# Usage: tools/ci-sanitizers.sh [asan] [tsan]   (default: both)
# SANITIZER_SUITES="downloader faults fuzz ..." limits a run to those suites
# (for a quick local check); SANITIZER_SKIP="cli_output ..." leaves those out
# (.ci/run says which and why). NINJA_JOBS caps parallel compiles.
# Prints "N passed, N failed" for each sanitizer, then the total as its last
# line; exits non-zero when any test failed or a build broke.
set -uo pipefail
cd "$(dirname "$0")/.."

kinds=("$@")
(( ${#kinds[@]} )) || kinds=(asan tsan)

# Undefined behaviour fails the test that hits it (by default UBSan reports and goes on).
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# detect_leaks: every test program must free what it allocates, OpenSSL included.
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
# Races are all reported, and the program exits 66 if there was any. tests/tsan.supp
# lists the known reports inside uninstrumented libraries, each with its reason.
export TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp:second_deadlock_stack=1:history_size=4"

# The tests to run in a configured build folder: every test except the
# single-header flavour and the freshness check of the generated header
# (and, with SANITIZER_SUITES, only the suites it names).
wanted_test='
import json, os, sys
suites = os.environ.get("SANITIZER_SUITES", "").split()
skipped = os.environ.get("SANITIZER_SKIP", "").split()
def wanted(name):
    if name.endswith("(single)") or name == "single header is up to date":
        return False
    suite = name.split(" (")[0]
    if suite in skipped:
        return False
    return not suites or suite in suites or (suite == "fuzz corpus" and "fuzz" in suites)
'
selected_tests() {
  meson introspect --tests "$1" | python3 -c "$wanted_test"'
for test in json.load(sys.stdin):
    if wanted(test["name"]):
        print(test["name"])'
}

# The ninja targets those tests need (their programs and declared dependencies).
selected_targets() {
  local build=$1
  meson introspect --tests --targets "$build" | python3 -c "$wanted_test"'
import os
data = json.load(sys.stdin)
build = os.path.realpath(sys.argv[1])
files = {t["id"]: t["filename"] for t in data["targets"]}
needed = set()
for test in data["tests"]:
    if not wanted(test["name"]):
        continue
    ids = list(test.get("depends", []))
    for target in data["targets"]:
        if test["cmd"] and test["cmd"][0] in target["filename"]:
            ids.append(target["id"])
    for target_id in ids:
        for path in files.get(target_id, []):
            if path.startswith(build + "/"):
                needed.add(os.path.relpath(path, build))
print("\n".join(sorted(needed)))' "$build"
}

total_passed=0
total_failed=0
total_skipped=0
status=0
for kind in "${kinds[@]}"; do
  case "$kind" in
    asan) build=${ASAN_BUILD_DIR:-build-asan}; sanitize=address,undefined ;;
    tsan) build=${TSAN_BUILD_DIR:-build-tsan}; sanitize=thread ;;
    *) echo "unknown sanitizer job: $kind (use asan or tsan)" >&2; exit 2 ;;
  esac
  started=$SECONDS
  echo "== $kind: -Db_sanitize=$sanitize in $build"
  if [[ ! -f "$build/build.ninja" ]]; then
    # -O0: compiling is what a sanitizer stage spends its time on (the tests
    # take minutes), and each suite instantiates the whole header-only toolkit.
    # One suite under ASan+UBSan took 36 s of CPU at -O0 against 183 s at -O1
    # (the manuals' suggestion, for run-time speed); the tests run slower but
    # still well inside their timeouts. The normal test run covers -O2.
    # -g keeps reports readable.
    meson setup "$build" -Db_sanitize="$sanitize" -Db_lundef=false -Doptimization=0 -Ddebug=true -Dtest_debug_info=true >/dev/null || { echo "$kind: meson setup failed"; status=1; total_failed=$((total_failed + 1)); continue; }
  fi
  mapfile -t targets < <(selected_targets "$build")
  mapfile -t tests < <(selected_tests "$build")
  if ! ninja -C "$build" ${NINJA_JOBS:+-j "$NINJA_JOBS"} "${targets[@]}"; then
    echo "$kind: the build failed"
    status=1
    total_failed=$((total_failed + 1))
    continue
  fi
  built=$SECONDS
  rm -f "$build/meson-logs/testlog.json"
  meson test -C "$build" --no-rebuild --print-errorlogs --timeout-multiplier 4 "${tests[@]}" || status=1
  summary=$(python3 tools/test_summary.py "$build/meson-logs/testlog.json")
  echo "$summary" | sed '$d'
  line=$(echo "$summary" | tail -n 1)
  echo "$kind: built in $((built - started)) s, tested in $((SECONDS - built)) s"
  echo "$line"
  read -r passed _ failed _ skipped _ <<<"${line//,/}"
  total_passed=$((total_passed + passed))
  total_skipped=$((total_skipped + ${skipped:-0}))
  total_failed=$((total_failed + failed))
done
(( total_failed == 0 )) || status=1
echo "$total_passed passed, $total_failed failed, $total_skipped skipped"
exit $status
