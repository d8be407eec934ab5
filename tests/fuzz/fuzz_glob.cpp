// SPDX-License-Identifier: MIT
// Fuzz target: the shell-style patterns of a Hugging Face entry's include and
// exclude lists, matched against the paths of a repo.
//
// Input: "PATTERN\nPATH" (no line break: the whole input is the pattern and
// the path is empty). The matcher under test is a linear-time loop with one
// backtrack point; it is compared with a plainly recursive reading of the same
// rules, which is slow but easy to check by eye.
#include "fuzz_support.hpp"

#include <provision/sources/huggingface/tree.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

/// The set that starts after a '[' at `at`: whether `c` is in it and where
/// the pattern goes on after its ']'; nullopt when no ']' closes it.
std::optional<bool> in_set(std::string_view pattern, std::size_t at, char c, std::size_t& after) {
    std::size_t i = at;
    const bool negate = i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^');
    if (negate) ++i;
    bool found = false;
    for (bool first = true; i < pattern.size() && (first || pattern[i] != ']'); first = false) {
        const bool range = i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']';
        if (range ? pattern[i] <= c && c <= pattern[i + 2] : pattern[i] == c) found = true;
        i += range ? 3 : 1;
    }
    if (i >= pattern.size()) return std::nullopt;
    after = i + 1;
    return found != negate;
}

/// The rules, one pattern character at a time. `memo` (one cell per pair of
/// positions) keeps stars from making it exponential.
bool reference_match(std::string_view pattern, std::string_view text, std::size_t p, std::size_t t,
                     std::vector<signed char>& memo) {
    signed char& cell = memo[p * (text.size() + 1) + t];
    if (cell >= 0) return cell == 1;
    bool result = false;
    if (p == pattern.size()) {
        result = t == text.size();
    } else if (pattern[p] == '*') {
        result = reference_match(pattern, text, p + 1, t, memo) ||
                 (t < text.size() && reference_match(pattern, text, p, t + 1, memo));
    } else if (t < text.size()) {
        if (pattern[p] == '?') {
            result = reference_match(pattern, text, p + 1, t + 1, memo);
        } else if (pattern[p] == '[') {
            std::size_t after = 0;
            auto member = in_set(pattern, p + 1, text[t], after);
            if (member) result = *member && reference_match(pattern, text, after, t + 1, memo);
            else result = text[t] == '[' && reference_match(pattern, text, p + 1, t + 1, memo);  // a literal '['
        } else {
            result = pattern[p] == text[t] && reference_match(pattern, text, p + 1, t + 1, memo);
        }
    }
    cell = result ? 1 : 0;
    return result;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace hf = provision::sources::hf;
    const std::string_view input = provision_fuzz::as_text(data, size);
    const std::size_t newline = input.find('\n');
    const std::string_view pattern = input.substr(0, newline);
    const std::string_view path = newline == std::string_view::npos ? std::string_view{} : input.substr(newline + 1);
    if (pattern.size() > 512 || path.size() > 512) return 0;  // the reference's table is quadratic

    std::vector<signed char> memo((pattern.size() + 1) * (path.size() + 1), -1);
    const bool expected = reference_match(pattern, path, 0, 0, memo);
    PROVISION_FUZZ_CHECK(hf::glob_match(pattern, path) == expected);

    // A star matches any run, slashes included; a path matches itself when it
    // holds no pattern character.
    PROVISION_FUZZ_CHECK(hf::glob_match("*", path));
    if (expected) PROVISION_FUZZ_CHECK(hf::glob_match(std::string(pattern) + "*", std::string(path) + "/x.bin"));
    if (path.find_first_of("*?[") == std::string_view::npos) PROVISION_FUZZ_CHECK(hf::glob_match(path, path));
    return 0;
}
