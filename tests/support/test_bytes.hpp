// SPDX-License-Identifier: MIT
// Test bodies: deterministic pseudo-random bytes, shared by the suites and by
// the emulated-services program (which is not a doctest program, so this
// header must not need doctest).
#ifndef PROVISION_TESTS_TEST_BYTES_HPP
#define PROVISION_TESTS_TEST_BYTES_HPP

#include <cstddef>
#include <string>

namespace provision_test {

/// Deterministic pseudo-random bytes (so a failure is reproducible).
inline std::string test_bytes(std::size_t size, unsigned seed = 1) {
    std::string out(size, '\0');
    unsigned state = seed * 2654435761u + 1;
    for (auto& c : out) {
        state = state * 1664525u + 1013904223u;
        c = static_cast<char>(state >> 24);
    }
    return out;
}

}  // namespace provision_test

#endif
