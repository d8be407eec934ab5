#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Reads meson's testlog.json and prints "N passed, N failed, N skipped" over
doctest test cases (a test program without doctest output counts as one case).

A case that could not do its real check prints "[provision-skip] ID: reason"
(tests/support/skip.hpp); doctest counted it as passed, so it is moved from
passed to skipped here, and each skip is listed by name and reason."""
import json
import re
import sys

SKIP = re.compile(r"^\[provision-skip\] (.*)$", re.MULTILINE)
SUMMARY = re.compile(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")

def main(path):
    passed = failed = skipped = 0
    skips = []
    with open(path, encoding="utf-8") as log:
        for line in log:
            test = json.loads(line)
            match = None
            for match in SUMMARY.finditer(test.get("stdout", "") or ""):
                pass
            ok = test.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
            found = SKIP.findall(test.get("stdout", "") or "")
            for reason in found:
                skips.append(f"skipped: {test.get('name')}: {reason}")
            if match:
                moved = min(len(found), int(match.group(2)))
                skipped += moved
                passed -= moved
                passed += int(match.group(2))
                failed += int(match.group(3))
                if not ok and int(match.group(3)) == 0:
                    failed += 1  # crashed or timed out after its summary
            elif ok:
                passed += 1
            else:
                failed += 1
                print(f"failed: {test.get('name')} ({test.get('result')})")
    for line in skips:
        print(line)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/meson-logs/testlog.json")
