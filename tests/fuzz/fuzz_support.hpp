// SPDX-License-Identifier: MIT
// What the fuzz targets share: a check that stops the run with a message (so
// libFuzzer saves the input and the replay test fails), and the invariants
// every URL we would request must keep.
#ifndef PROVISION_TESTS_FUZZ_SUPPORT_HPP
#define PROVISION_TESTS_FUZZ_SUPPORT_HPP

#include <provision/url.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

/// Aborts with the failed condition when `condition` is false: an invariant broke.
#define PROVISION_FUZZ_CHECK(condition)                                                       \
    do {                                                                                      \
        if (!(condition)) ::provision_fuzz::invariant_failed(__FILE__, __LINE__, #condition); \
    } while (false)

namespace provision_fuzz {

[[noreturn]] inline void invariant_failed(const char* file, int line, const char* condition) {
    std::fprintf(stderr, "%s:%d: invariant failed: %s\n", file, line, condition);
    std::fflush(stderr);
    std::abort();
}

inline std::string_view as_text(const unsigned char* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

/// Any byte below 0x20, or DEL.
inline bool has_control_char(std::string_view text) {
    for (unsigned char c : text)
        if (c < 0x20 || c == 0x7f) return true;
    return false;
}

/// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
inline bool is_valid_utf8(std::string_view text) {
    std::size_t i = 0;
    auto continuation = [&](std::size_t k) {
        return k < text.size() && (static_cast<unsigned char>(text[k]) & 0xC0) == 0x80;
    };
    while (i < text.size()) {
        auto lead = static_cast<unsigned char>(text[i]);
        if (lead < 0x80) {
            ++i;
            continue;
        }
        std::size_t length = lead >= 0xC2 && lead <= 0xDF   ? 2
                             : lead >= 0xE0 && lead <= 0xEF ? 3
                             : lead >= 0xF0 && lead <= 0xF4 ? 4
                                                            : 0;
        if (length == 0) return false;
        for (std::size_t k = 1; k < length; ++k)
            if (!continuation(i + k)) return false;
        auto second = static_cast<unsigned char>(text[i + 1]);
        if (lead == 0xE0 && second < 0xA0) return false;   // overlong
        if (lead == 0xED && second >= 0xA0) return false;  // surrogate
        if (lead == 0xF0 && second < 0x90) return false;   // overlong
        if (lead == 0xF4 && second >= 0x90) return false;  // above U+10FFFF
        i += length;
    }
    return true;
}

/// A URL that provision may put on a request line: http(s), a host, a port,
/// and nothing in its target that would break the request line.
inline void check_request_url(const provision::Url& url) {
    PROVISION_FUZZ_CHECK(url.scheme == "http" || url.scheme == "https");
    PROVISION_FUZZ_CHECK(!url.host.empty());
    PROVISION_FUZZ_CHECK(url.port != 0);
    PROVISION_FUZZ_CHECK(!url.path.empty() && url.path.front() == '/');
    for (unsigned char c : url.host) PROVISION_FUZZ_CHECK(c > 0x20 && c != 0x7f && !(c >= 'A' && c <= 'Z'));
    for (unsigned char c : url.target()) PROVISION_FUZZ_CHECK(c > 0x20 && c != 0x7f);
    // What logs show never carries the user-info.
    const std::string redacted = url.redacted();
    PROVISION_FUZZ_CHECK(redacted.compare(0, url.origin().size(), url.origin()) == 0);
}

}  // namespace provision_fuzz

#endif
