#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets of tests/fuzz/ with clang (-Dfuzzing=true, in
# $FUZZ_BUILD_DIR, default build-fuzz), replays every seed corpus and past
# crash (the "fuzz" test suite), then fuzzes each target for a bounded time.
#
# Usage: tools/ci-fuzz.sh [SECONDS_PER_TARGET]   (default 25; 0 only replays)
#        tools/ci-fuzz.sh --runs N [--seed S]    N inputs per target from random
#                                                seed S (default 1): what CI runs
#        tools/ci-fuzz.sh --runs N --seeds A-B   the same once per seed A..B: a
#                                                wider search (RELIABILITY.md)
#        FUZZ_TARGETS="config url" limits any of these to some targets.
# A time bound fuzzes whatever the machine's speed allows, so two runs try
# different inputs. A run count with a fixed seed starts from the same seeds and
# the same random choices each time, so CI tries (nearly: libFuzzer follows the
# coverage it sees, and timing-dependent paths can differ) the same inputs on
# every run: a finding there comes from the change under test, not from luck.
# --runs is also capped at 120 s per target, so a slow machine still ends; a
# target stopped by that cap before it ran N inputs fails.
# NINJA_JOBS caps parallel compiles.
#
# New inputs go to $FUZZ_BUILD_DIR/fuzz-work/<target>/ (never into the seed
# folders); a crash is saved as $FUZZ_BUILD_DIR/fuzz-artifacts/<target>-crash-*
# and fails the run: reproduce it with `<fuzzer> <file>`, fix it, and keep the
# file as tests/fuzz/regressions/<target>/<what-it-was> so every test run
# replays it from then on.
#
# Each replay and each timed run counts as one test; the last line is
# "N passed, N failed", and the exit status is non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=25
runs=0
first_seed=1
last_seed=1
case "${1:-}" in
  --runs)
    runs=${2:?--runs needs a count}
    case "${3:-}" in
      --seed) first_seed=${4:?--seed needs a number}; last_seed=$first_seed ;;
      --seeds)
        range=${4:?--seeds needs a range A-B}
        first_seed=${range%-*} last_seed=${range#*-} ;;
    esac
    seconds=120 ;;
  '') ;;
  *) seconds=$1 ;;
esac
build=${FUZZ_BUILD_DIR:-build-fuzz}

# libFuzzer and clang's sanitizer runtimes (the rest comes from tools/install-deps.sh).
packages=(clang libclang-rt-14-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if (( ${#missing[@]} )); then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# LeakSanitizer stays on: a leak per input adds up over a fuzzing run.
export ASAN_OPTIONS="detect_leaks=1"

started=$SECONDS
if [[ ! -f "$build/build.ninja" ]]; then
  CXX=${FUZZ_CXX:-clang++} meson setup "$build" -Dfuzzing=true >/dev/null || { echo "meson setup failed"; echo "0 passed, 1 failed"; exit 1; }
fi
mapfile -t targets < <(meson introspect --targets "$build" | FUZZ_TARGETS=${FUZZ_TARGETS:-} python3 -c '
import json, os, sys
wanted = os.environ["FUZZ_TARGETS"].split()
for target in json.load(sys.stdin):
    name = target["name"]
    if name.startswith("fuzz_") and (not wanted or name[5:] in wanted):
        print(name)')
ninja_targets=()
for target in "${targets[@]}"; do ninja_targets+=("tests/fuzz/$target"); done
if (( ${#targets[@]} == 0 )) || ! ninja -C "$build" ${NINJA_JOBS:+-j "$NINJA_JOBS"} "${ninja_targets[@]}"; then
  echo "the fuzz targets did not build"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "fuzz: built ${#targets[@]} targets in $((SECONDS - started)) s"

status=0
rm -f "$build/meson-logs/testlog.json"
# Replays only what was built: with FUZZ_TARGETS, the chosen targets' tests by name.
replay_tests=()
if [[ -n ${FUZZ_TARGETS:-} ]]; then
  for target in "${targets[@]}"; do replay_tests+=("fuzz corpus (${target#fuzz_})"); done
fi
meson test -C "$build" --no-rebuild --print-errorlogs --suite fuzz "${replay_tests[@]}" || status=1
replay=$(python3 tools/test_summary.py "$build/meson-logs/testlog.json")
echo "$replay"
read -r passed _ failed _ <<<"$(echo "$replay" | tail -n 1 | tr -d ,)"
passed=${passed:-0} failed=${failed:-1}  # no summary line: the replay did not run

# Extra seed folders a target shares with other tests (as tests/fuzz/meson.build lists them).
extra_seeds() {
  case "$1" in
    config) echo "tests/data/configs tests/data/bad_configs" ;;
    *) echo "" ;;
  esac
}

# One fuzzing run of one target; counts it as passed or failed.
fuzz_one() {
  local target=$1 seed=$2
  local name=${target#fuzz_}
  local work="$build/fuzz-work/$name"
  # A counted run starts from the checked-in seeds alone; a timed run keeps
  # building on what earlier runs found.
  (( runs > 0 )) && rm -rf "$work"
  mkdir -p "$work"
  local seeds=(tests/fuzz/corpus/"$name")
  [[ -d tests/fuzz/regressions/$name ]] && seeds+=(tests/fuzz/regressions/"$name")
  for dir in $(extra_seeds "$name"); do seeds+=("$dir"); done
  local log="$build/fuzz-work/$name.log"
  # -max_len keeps the big corpus files (a 120 KB config) from slowing every run;
  # -timeout: one input taking over 10 s is a hang worth a report.
  local bound=(-max_total_time="$seconds")
  (( runs > 0 )) && bound+=(-runs="$runs" -seed="$seed")
  "$build/tests/fuzz/$target" "${bound[@]}" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
    -dict="tests/fuzz/dictionaries/$name.dict" -artifact_prefix="$build/fuzz-artifacts/$name-" \
    -print_final_stats=1 "$work" "${seeds[@]}" >"$log" 2>&1
  local rc=$?
  local stats executed
  stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 |
    sed -E 's/^#([0-9]+)[[:space:]]+DONE[[:space:]]+cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/\1 execs, coverage \2 edges, \3 features, corpus \4/')
  # libFuzzer ends a -runs=N run with "Done N runs in S second(s)". The time
  # cap ends it sooner, and then it has not tried what it was asked to try:
  # a counted run that falls short fails instead of passing quietly.
  executed=$(sed -nE 's/^Done ([0-9]+) runs in .*/\1/p' "$log" | tail -n 1)
  if (( rc == 0 && runs > 0 && ${executed:-0} < runs )); then
    echo "fuzz $name: FAILED: ran ${executed:-no} inputs of the $runs asked for before the ${seconds} s limit (${stats:-no statistics})"
    failed=$((failed + 1))
    status=1
    return
  fi
  if (( rc == 0 )); then
    if (( runs > 0 )); then
      echo "fuzz $name: ok (${stats:-no statistics}) from seed $seed"
    else
      echo "fuzz $name: ok (${stats:-no statistics}) in ${seconds} s"
    fi
    passed=$((passed + 1))
  else
    echo "fuzz $name: FAILED (exit $rc) from seed $seed; the log follows and the input is in $build/fuzz-artifacts/"
    grep -E 'invariant failed|ERROR|SUMMARY|runtime error|Test unit written|Assertion' "$log" | head -n 20
    cp "$log" "$build/fuzz-artifacts/$name-seed-$seed.log"
    failed=$((failed + 1))
    status=1
  fi
}

if (( seconds > 0 )); then
  mkdir -p "$build/fuzz-artifacts"
  for (( seed = first_seed; seed <= last_seed; ++seed )); do
    for target in "${targets[@]}"; do fuzz_one "$target" "$seed"; done
  done
fi
echo "fuzz: $((SECONDS - started)) s in all"
(( failed == 0 )) || status=1
echo "$passed passed, $failed failed"
exit $status
