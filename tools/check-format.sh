#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks that every C++ file is as clang-format leaves it (.clang-format at the
# top). Pinned to clang-format 14, Debian 12's: another version may place a
# line break differently, which is not a fault of the code.
#   tools/check-format.sh          report files that would change; exit 1 if any
#   tools/check-format.sh --fix    format them in place
set -euo pipefail
cd "$(dirname "$0")/.."
format=${CLANG_FORMAT:-clang-format-14}
mapfile -t files < <(git ls-files 'include/*.hpp' 'examples/*.cpp' 'examples/*.hpp' 'tests/*.cpp' 'tests/*.hpp' 2>/dev/null ||
  find include examples tests -name '*.hpp' -o -name '*.cpp')
if [[ ${1:-} == --fix ]]; then
  "$format" -i "${files[@]}"
  exit
fi
"$format" --dry-run --Werror "${files[@]}"
echo "${#files[@]} files formatted as .clang-format says"
