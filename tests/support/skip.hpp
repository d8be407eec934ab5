// SPDX-License-Identifier: MIT
// Test support: a test that cannot do its real check says so, visibly.
//
// doctest has no skip at run time: a test that returns early counts as
// passed, and a disk-full case that could not mount its small filesystem
// would pass without checking anything. skip_test() prints a line that
// tools/test_summary.py counts as skipped (taking it out of the passed),
// and under CI (CI=true) a skip fails the test unless its id is listed, with
// the reason, in tests/allowed_skips.txt.
#ifndef PROVISION_TESTS_SKIP_HPP
#define PROVISION_TESTS_SKIP_HPP

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace provision_test {

/// True when `id` is listed in tests/allowed_skips.txt (first word of a line; '#' starts a comment).
inline bool skip_allowed_in_ci(const std::string& id) {
    std::ifstream list(std::string(PROVISION_SOURCE_DIR) + "/tests/allowed_skips.txt");
    std::string line;
    while (std::getline(list, line)) {
        std::string first = line.substr(0, line.find_first_of(" \t#"));
        if (!first.empty() && first == id) return true;
    }
    return false;
}

/// Records that the check `id` could not run, and why. The caller returns afterwards.
inline void skip_test(const std::string& id, const std::string& reason) {
    std::printf("[provision-skip] %s: %s\n", id.c_str(), reason.c_str());
    std::fflush(stdout);
    const char* ci = std::getenv("CI");
    if (ci && std::string(ci) == "true" && !skip_allowed_in_ci(id))
        FAIL_CHECK("skipped under CI, and " << id << " is not in tests/allowed_skips.txt: " << reason);
    else MESSAGE("skipped " << id << ": " << reason);
}

}  // namespace provision_test

#endif
