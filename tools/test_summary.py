#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Reads meson's testlog.json and prints "N passed, N failed" over doctest test
cases (a test program without doctest output counts as one case)."""
import json
import re
import sys

SUMMARY = re.compile(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")

def main(path):
    passed = failed = 0
    with open(path, encoding="utf-8") as log:
        for line in log:
            test = json.loads(line)
            match = None
            for match in SUMMARY.finditer(test.get("stdout", "") or ""):
                pass
            ok = test.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
            if match:
                passed += int(match.group(2))
                failed += int(match.group(3))
                if not ok and int(match.group(3)) == 0:
                    failed += 1  # crashed or timed out after its summary
            elif ok:
                passed += 1
            else:
                failed += 1
                print(f"failed: {test.get('name')} ({test.get('result')})")
    print(f"{passed} passed, {failed} failed")

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/meson-logs/testlog.json")
