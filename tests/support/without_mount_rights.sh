#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the disk-full test cases as a user without mount rights (nobody), in a
# user and mount namespace of its own where that user may mount a small tmpfs:
# the cases then do their real check on any machine that allows unprivileged
# user namespaces, root or not. Fails when fewer than EXPECTED cases ran, so a
# renamed case cannot silently drop out of the filter.
#
# Usage: without_mount_rights.sh EXPECTED TEST_PROGRAM DOCTEST_ARGS...
set -uo pipefail
expected=$1
shift
run=(unshare --user --map-root-user --mount "$@")
drop=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if [[ $(id -u) -eq 0 ]]; then
  if "${drop[@]}" test -x "$1"; then
    run=("${drop[@]}" "${run[@]}")
  else
    # A checkout nobody may not enter (a root-only home, say): the cases
    # still run in the namespace, as root's mapped self.
    echo "without_mount_rights: nobody cannot run $1; staying $(id -un) inside the namespace"
  fi
fi
output=$("${run[@]}" 2>&1)
status=$?
printf '%s\n' "$output"
ran=$(printf '%s\n' "$output" | sed -n 's/^\[doctest\] test cases: *\([0-9]*\) |.*/\1/p' | tail -n 1)
if [[ ${ran:-0} -lt $expected ]]; then
  echo "without_mount_rights: ${ran:-0} test cases ran, expected $expected (renamed? unshare refused?)"
  exit 1
fi
if printf '%s\n' "$output" | grep -q "^\[provision-skip\]"; then
  echo "without_mount_rights: a case skipped inside the namespace"
  exit 1
fi
exit $status
