#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Proves the test suite: applies each deliberate breakage listed in
# tools/mutants.txt to the committed tree, one at a time, rebuilds what it
# touches, runs the tests named for it and reports whether they failed
# ("killed") or still passed ("survived"). Every mutant must be killed: a
# survivor is a promise no test holds.
#
# Usage: tools/mutants.sh [NAME-SUBSTRING...]   (default: every mutant)
#        tools/mutants.sh --check               the list still fits the tree (no build)
#
# It works on a private copy of HEAD (a detached git worktree in
# $MUTANTS_DIR, default /tmp/provision-mutants), never on your checkout, so
# uncommitted changes are not what it tests and your build folders are not
# touched. The copy's build (-O0, ~10 minutes on 2 cores the first time) is
# reused by later runs.
#
# Most promises are held by tests that run the real CLI as a child process,
# so a mutant rebuilds the CLI (one translation unit) and the test program is
# built once, unmutated: the tests judge the mutated CLI from outside. A
# mutant marked "rebuild: tests" changes code that only in-process tests can
# reach, and rebuilds the test program too (minutes, not seconds).
#
# Output: one line per mutant, then "N killed, N survived"; the exit status is
# non-zero when a mutant survived or the unmutated tree failed its tests.
set -uo pipefail
cd "$(dirname "$0")/.."
source_root=$PWD
list=$source_root/tools/mutants.txt
work=${MUTANTS_DIR:-/tmp/provision-mutants}
build=$work/build-mutants

# Reads tools/mutants.txt: blocks of "name:", "file:", "old:", "new:",
# "tests:" and optionally "rebuild: tests", separated by blank lines.
# Prints each mutant as one line of tab-separated fields.
read_list() {
  python3 - "$list" <<'EOF'
import sys
blocks, current = [], {}
for number, line in enumerate(open(sys.argv[1]), 1):
    line = line.rstrip("\n")
    if line.startswith("#"):
        continue
    if not line.strip():
        if current:
            blocks.append(current)
        current = {}
        continue
    key, sep, value = line.partition(": ")
    if not sep or key not in ("name", "file", "old", "new", "tests", "rebuild"):
        sys.exit(f"{sys.argv[1]}:{number}: expected 'name|file|old|new|tests|rebuild: value', got {line!r}")
    current[key] = value
if current:
    blocks.append(current)
for block in blocks:
    missing = [k for k in ("name", "file", "old", "new", "tests") if k not in block]
    if missing:
        sys.exit(f"{sys.argv[1]}: mutant {block.get('name', '?')!r} lacks {', '.join(missing)}")
    fields = [block["name"], block["file"], block["old"], block["new"], block["tests"], block.get("rebuild", "cli")]
    if any("\t" in f for f in fields):
        sys.exit(f"{sys.argv[1]}: mutant {block['name']!r}: no tabs, please")
    print("\t".join(fields))
EOF
}

# Succeeds when OLD occurs exactly once in FILE (else says how often).
count_once() {
  python3 - "$1" "$2" <<'EOF'
import sys
path, old = sys.argv[1:]
old = old.encode().decode("unicode_escape")
count = open(path).read().count(old)
if count != 1:
    sys.exit(f"{path}: the text to change occurs {count} times, not once: {old!r}")
EOF
}

# Replaces the one occurrence of OLD in FILE by NEW; fails when OLD is not
# there exactly once (the list went stale: a mutant that changes nothing
# would "survive" for the wrong reason, or be "killed" by a broken build).
apply_mutant() {
  python3 - "$1" "$2" "$3" <<'EOF'
import sys
path, old, new = sys.argv[1:]
old = old.encode().decode("unicode_escape")
new = new.encode().decode("unicode_escape")
text = open(path).read()
count = text.count(old)
if count != 1:
    sys.exit(f"{path}: the text to change occurs {count} times, not once: {old!r}")
open(path, "w").write(text.replace(old, new))
EOF
}

# Runs the tests named by a mutant (doctest arguments, split on blanks).
run_tests() {
  # shellcheck disable=SC2086  # a selection is several doctest arguments
  "$build/tests/tests_include" --no-intro=true --minimal=true $1
}

# --check: only proves the list still fits the tree (every "old" text occurs
# exactly once in its file); no build. A test runs it, so a change that moves
# mutated code (a split, a reformat) updates tools/mutants.txt in the same commit.
if [[ ${1:-} == --check ]]; then
  mutants=$(read_list) || exit 1
  stale=0
  total=0
  while IFS=$'\t' read -r name file old _new _tests _rebuild; do
    total=$((total + 1))
    if [[ ! -f $source_root/$file ]]; then
      echo "stale: $name: $file does not exist"
      stale=$((stale + 1))
    elif ! count_once "$source_root/$file" "$old"; then
      echo "stale: $name"
      stale=$((stale + 1))
    fi
  done <<<"$mutants"
  echo "$total mutants, $stale stale"
  (( stale == 0 ))
  exit
fi

if [[ ! -d $work/.git && ! -f $work/.git ]]; then
  git worktree add --detach "$work" HEAD >/dev/null || exit 1
fi
git -C "$work" checkout -q --detach "$(git rev-parse HEAD)" || exit 1
git -C "$work" reset -q --hard
git -C "$work" clean -q -fd -e build-mutants
if [[ ! -f $build/build.ninja ]]; then
  meson setup "$build" "$work" -Dbuildtype=debug -Doptimization=0 >/dev/null || exit 1
fi
echo "building the unmutated copy of $(git -C "$work" rev-parse --short HEAD) in $build"
ninja -C "$build" >/dev/null || { echo "the unmutated tree does not build"; exit 1; }

mutants=$(read_list) || exit 1
filters=("$@")
killed=0
survived=0
results=()
declare -A baseline_checked=()
while IFS=$'\t' read -r name file old new tests rebuild; do
  if (( ${#filters[@]} )); then
    wanted=0
    for filter in "${filters[@]}"; do [[ $name == *"$filter"* ]] && wanted=1; done
    (( wanted )) || continue
  fi
  # The same tests must pass on the unmutated tree first, or a "kill" proves nothing.
  if [[ -z ${baseline_checked[$tests]:-} ]]; then
    # The last mutant's binaries are still built: rebuild from the restored tree first.
    ninja -C "$build" examples/provision tests/tests_include >/dev/null || { echo "the unmutated tree does not build"; exit 1; }
    if ! run_tests "$tests" >"$work/baseline.log" 2>&1; then
      echo "the unmutated tree fails '$tests' (see $work/baseline.log): fix that first"
      exit 1
    fi
    baseline_checked[$tests]=1
  fi
  started=$SECONDS
  if ! apply_mutant "$work/$file" "$old" "$new"; then
    results+=("stale     $name (tools/mutants.txt no longer matches $file)")
    survived=$((survived + 1))
    continue
  fi
  targets=(examples/provision)
  [[ $rebuild == tests ]] && targets+=(tests/tests_include)
  if ! ninja -C "$build" "${targets[@]}" >"$work/mutant.log" 2>&1; then
    verdict="killed    $name (it does not compile)"
    killed=$((killed + 1))
  elif run_tests "$tests" >>"$work/mutant.log" 2>&1; then
    verdict="SURVIVED  $name ($tests passed; log in $work/mutant-survived-$((killed + survived + 1)).log)"
    cp "$work/mutant.log" "$work/mutant-survived-$((killed + survived + 1)).log"
    survived=$((survived + 1))
  else
    verdict="killed    $name"
    killed=$((killed + 1))
  fi
  git -C "$work" checkout -q -- "$file"
  # The next mutant's tests must run from an unmutated test program.
  [[ $rebuild == tests ]] && ninja -C "$build" tests/tests_include >/dev/null 2>&1
  echo "$verdict ($((SECONDS - started)) s)"
  results+=("$verdict")
done <<<"$mutants"

# The copy is left unmutated; its next build restores the binaries.
ninja -C "$build" examples/provision tests/tests_include >/dev/null 2>&1
echo "$killed killed, $survived survived"
(( survived == 0 ))
