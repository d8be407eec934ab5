#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every fault class of issue 6 many times and prints a markdown table:
# fault class, runs, survived, bytes lost, and the command that reproduces it.
#
#   tests   each test case of tests/test_faults.cpp, --repeat times; the seeded
#           reset/cut/503 case once per seed (1..--seeds, PROVISION_FAULT_SEED);
#           then the fault cases of the HTTP, engine and resume suites
#           (other_cases below), --repeat times each
#   kill9   the provision CLI killed with SIGKILL at random points (1-3 times
#           per run) while it downloads from examples/file_server, then run to
#           the end; every file must be byte-exact, no .part left behind
#   diskfull  the workspace on a tmpfs too small for the models (needs mount
#           rights; skipped otherwise): the run must fail with exit 7 and keep
#           nothing unverified; after the tmpfs grows, a re-run is byte-exact
#   twoproc two provision processes started together on one workspace: both
#           exit 0 and every file is byte-exact
#
# "Survived" means the run ended as the fault class demands (test passed /
# exit codes as expected / files byte-exact). "Bytes lost" counts the bytes of
# served files that were missing or different after the final run.
#
# Usage: tools/reliability.sh [--runs N] [--repeat N] [--seeds N] [--only tests,kill9,diskfull,twoproc]
# Build folder: $BUILD_DIR (default build). Exits non-zero if any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
runs=20
repeat=5
seeds=50
only="tests,kill9,diskfull,twoproc"
while (( $# )); do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--repeat N] [--seeds N] [--only tests,kill9,diskfull,twoproc]" >&2; exit 2 ;;
  esac
done
wants() { [[ ",$only," == *",$1,"* ]]; }

[[ -f "$build/build.ninja" ]] || meson setup "$build" >/dev/null || exit 1
ninja -C "$build" tests/tests_include \
  examples/provision examples/file_server >/dev/null || { echo "build failed"; exit 1; }
faults="$build/tests/tests_include"  # every suite is one program; the cases are named by suite
cli="$build/examples/provision"

work=$(mktemp -d /tmp/provision-reliability-XXXXXX)
server_pid=""
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
  mountpoint -q "$work/small" 2>/dev/null && umount "$work/small"
  rm -rf "$work"
}
trap cleanup EXIT

rows=()
status=0
row() {  # class runs survived lost command
  rows+=("| $1 | $2 | $3 | $4 | \`$5\` |")
  (( $3 == $2 )) || status=1
  [[ $4 == 0 || $4 == "-" ]] || status=1
  echo "  $1: $3 of $2 survived, $4 bytes lost" >&2
}

# ---------------------------------------------------------------------------
if wants tests; then
  mapfile -t cases < <("$faults" --list-test-cases --no-version 2>/dev/null | grep '^faults: ')
  for name in "${cases[@]}"; do
    # doctest filters are wildcards: escape the characters it treats specially.
    filter=${name//,/\\,}
    filter=${filter//\[/\\[}
    filter=${filter//\]/\\]}
    if [[ $name == *"seeded random"* ]]; then
      survived=0
      for seed in $(seq 1 "$seeds"); do
        PROVISION_FAULT_SEED=$seed "$faults" -tc="$filter" >"$work/test.log" 2>&1 && survived=$((survived + 1)) ||
          { echo "seed $seed failed:" >&2; tail -n 20 "$work/test.log" >&2; }
      done
      # each seed runs the download twice: over one connection and over four
      row "${name#faults: } (2 downloads per seed)" "$seeds" "$survived" 0 \
        "for s in \$(seq $seeds); do PROVISION_FAULT_SEED=\$s $faults -tc=\"*seeded random*\"; done"
      continue
    fi
    survived=0
    for _ in $(seq 1 "$repeat"); do
      "$faults" -tc="$filter" >"$work/test.log" 2>&1 && survived=$((survived + 1)) || tail -n 20 "$work/test.log" >&2
    done
    # The command names the case by the start of its name (up to any character
    # doctest's filter treats specially), which is unique among these cases.
    prefix=$(echo "$name" | sed -E 's/[],[].*//' | cut -c1-48)
    lost=0
    (( survived == repeat )) || lost="?"
    row "${name#faults: }" "$repeat" "$survived" "$lost" "$faults -tc=\"$prefix*\""
  done
fi

# Fault classes of issue 6 that the HTTP, engine and resume suites test (the
# cases live next to the code they exercise; these rows run them as often as
# the fault suite's). "suite|case name prefix|class".
other_cases=(
  "http|http: at most 10 redirects are followed|a redirect chain over the limit ends with a message"
  "http|http: a redirect from https to http is refused|a redirect from https to http is refused"
  "http|http: credentials and user headers never follow a redirect to another host|a redirect to another host never carries our Authorization or user headers"
  "http|http: a server that goes quiet hits the idle timeout|a server that goes quiet hits the idle timeout"
  "http|http: a certificate for another host is refused even with the right CA|a certificate for another host is refused even with the right CA"
  "downloader|engine: a server without Range support gets one stream|a server that ignores Range gets one stream, byte-exact"
  "downloader|engine: 429 waits as long as Retry-After or RateLimit says|429 with Retry-After or RateLimit waits as long as told"
  "downloader|engine: 5xx and 408 are retried|5xx and 408 are retried, other 4xx are not, a server that never recovers fails the file"
  "downloader|engine: a stalled connection is dropped and its bytes fetched again|a stalled connection is dropped and its bytes fetched again"
  "downloader|downloader: an HTML page where a model was expected|an HTML page with a 200 where a model was expected installs nothing"
  "resume|resume: a changed ETag|ETag changing mid-resume, or Range support lost, restarts the file cleanly"
  "resume|disk full: preallocation fails at the start|disk full in-process, with and without preallocation: the .part is kept for a resume"
)
if wants tests; then
  for spec in "${other_cases[@]}"; do
    IFS='|' read -r suite prefix class <<<"$spec"
    program="$build/tests/tests_include"
    # Each prefix stops before any character doctest's filter treats specially (a comma).
    [[ -n $("$program" --list-test-cases --no-version -tc="$prefix*" 2>/dev/null | grep -F "$prefix") ]] ||
      { echo "no test case in $suite starts with: $prefix" >&2; status=1; continue; }
    survived=0
    for _ in $(seq 1 "$repeat"); do
      "$program" -tc="$prefix*" >"$work/test.log" 2>&1 && survived=$((survived + 1)) || tail -n 20 "$work/test.log" >&2
    done
    lost=0
    (( survived == repeat )) || lost="?"
    row "$class" "$repeat" "$survived" "$lost" "$program -tc=\"$prefix*\""
  done
fi

# ---------------------------------------------------------------------------
# The CLI against examples/file_server: a few "models" of random bytes.
served="$work/served"
mkdir -p "$served/models"
head -c $((48 << 20)) /dev/urandom >"$served/models/big.safetensors"
head -c $((20 << 20)) /dev/urandom >"$served/models/mid.safetensors"
head -c $((6 << 20)) /dev/urandom >"$served/models/small.safetensors"
"$build/examples/file_server" "$served" --ready-file "$work/port" 2>/dev/null >/dev/null &
server_pid=$!
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
port=$(cat "$work/port")
base="http://127.0.0.1:$port/models"
big_sha=$(sha256sum "$served/models/big.safetensors" | cut -d' ' -f1)
cat >"$served/models.toml" <<TOML
[models.checkpoints.big]
url = "$base/big.safetensors"
sha256 = "$big_sha"

[models.lora]
mid = "$base/mid.safetensors"

[models.vae.small]
url = "$base/small.safetensors"
TOML
config="http://127.0.0.1:$port/models.toml"

# Bytes of served models missing or different under workspace $1; also fails
# (returns 1) when a .part is left behind.
bytes_lost() {
  local models=$1/sdnext/models lost=0 pair
  for pair in Stable-diffusion/big.safetensors:big Lora/mid.safetensors:mid VAE/small.safetensors:small; do
    local got=$models/${pair%%:*} want=$served/models/${pair##*:}.safetensors
    cmp -s "$got" "$want" || lost=$((lost + $(stat -c %s "$want")))
  done
  echo "$lost"
  ! find "$1" -name '*.part' | grep -q .
}

if wants kill9; then
  # How long one clean run takes: kill points are spread over it.
  started=$(date +%s%N)
  "$cli" "$config" --workspace "$work/timing" -q >/dev/null 2>&1
  full_ms=$(( ($(date +%s%N) - started) / 1000000 ))
  (( full_ms > 50 )) || full_ms=50
  rm -rf "$work/timing"
  survived=0
  lost_total=0
  kills=0
  for run in $(seq 1 "$runs"); do
    RANDOM=$run
    workspace="$work/kill9-$run"
    for _ in $(seq 1 $((1 + RANDOM % 3))); do
      "$cli" "$config" --workspace "$workspace" -q >/dev/null 2>&1 &
      pid=$!
      delay=$((10 + RANDOM % full_ms))
      sleep "$(awk -v ms="$delay" 'BEGIN { printf "%.3f", ms / 1000 }')"
      kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
      wait "$pid" 2>/dev/null
    done
    "$cli" "$config" --workspace "$workspace" -q >"$work/final.log" 2>&1
    code=$?
    lost=$(bytes_lost "$workspace")
    clean=$?
    lost_total=$((lost_total + lost))
    if (( code == 0 && lost == 0 && clean == 0 )); then
      survived=$((survived + 1))
    else
      echo "kill9 run $run: exit $code, $lost bytes lost, .part left: $((clean != 0))" >&2
      tail -n 5 "$work/final.log" >&2
    fi
    rm -rf "$workspace"
  done
  echo "  kill9: $kills SIGKILLs over $runs runs (a clean run takes ${full_ms} ms)" >&2
  row "kill -9 of the CLI at random points, 1-3 per run ($kills kills), then a re-run" "$runs" "$survived" "$lost_total" \
    "tools/reliability.sh --only kill9 --runs $runs"
fi

if wants diskfull; then
  mkdir -p "$work/small"
  if mount -t tmpfs -o size=30m tmpfs "$work/small" 2>/dev/null && umount "$work/small"; then
    survived=0
    lost_total=0
    for run in $(seq 1 "$runs"); do
      mount -t tmpfs -o size=30m tmpfs "$work/small" || break
      "$cli" "$config" --workspace "$work/small/ws" -q >"$work/full.log" 2>&1
      code=$?
      # Nothing unverified under a final name: whatever is there is byte-exact.
      wrong=0
      for pair in Stable-diffusion/big.safetensors:big Lora/mid.safetensors:mid VAE/small.safetensors:small; do
        got="$work/small/ws/sdnext/models/${pair%%:*}"
        [[ -e $got ]] && ! cmp -s "$got" "$served/models/${pair##*:}.safetensors" && wrong=1
      done
      mount -o remount,size=200m "$work/small"
      "$cli" "$config" --workspace "$work/small/ws" -q >"$work/final.log" 2>&1
      again=$?
      lost=$(bytes_lost "$work/small/ws")
      clean=$?
      lost_total=$((lost_total + lost))
      if (( code == 7 && wrong == 0 && again == 0 && lost == 0 && clean == 0 )); then
        survived=$((survived + 1))
      else
        echo "diskfull run $run: first exit $code (want 7), wrong final file: $wrong, re-run exit $again, $lost bytes lost" >&2
        tail -n 5 "$work/full.log" "$work/final.log" >&2
      fi
      umount "$work/small"
    done
    row "disk full (30 MiB tmpfs for 74 MiB of models), then space freed and a re-run" "$runs" "$survived" "$lost_total" \
      "tools/reliability.sh --only diskfull --runs $runs"
  else
    rows+=("| disk full (tmpfs) | 0 | 0 | - | skipped: no permission to mount a tmpfs here |")
  fi
fi

if wants twoproc; then
  survived=0
  lost_total=0
  for run in $(seq 1 "$runs"); do
    workspace="$work/two-$run"
    "$cli" "$config" --workspace "$workspace" -q >"$work/a.log" 2>&1 &
    first=$!
    "$cli" "$config" --workspace "$workspace" -q >"$work/b.log" 2>&1 &
    second=$!
    wait "$first"
    code_a=$?
    wait "$second"
    code_b=$?
    lost=$(bytes_lost "$workspace")
    clean=$?
    lost_total=$((lost_total + lost))
    if (( code_a == 0 && code_b == 0 && lost == 0 && clean == 0 )); then
      survived=$((survived + 1))
    else
      echo "twoproc run $run: exits $code_a and $code_b, $lost bytes lost" >&2
      tail -n 5 "$work/a.log" "$work/b.log" >&2
    fi
    rm -rf "$workspace"
  done
  row "two provision processes on one workspace at once" "$runs" "$survived" "$lost_total" \
    "tools/reliability.sh --only twoproc --runs $runs"
fi

echo "| fault class | runs | survived | bytes lost | command |"
echo "|---|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
exit $status
