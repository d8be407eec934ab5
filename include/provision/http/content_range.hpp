// SPDX-License-Identifier: MIT
// provision: the numbers in HTTP headers (Content-Range, Content-Length,
// Retry-After), read strictly. Shared by the HTTP connection, the download
// engine (is this 206 the piece asked for?), the probes that ask a server for
// one byte to learn a file's size (Drive, plain URLs) and Hugging Face's
// rate-limit headers.
#ifndef PROVISION_HTTP_CONTENT_RANGE_HPP
#define PROVISION_HTTP_CONTENT_RANGE_HPP

#include "../url.hpp"

#include <cstdint>
#include <optional>
#include <string_view>

namespace provision {
namespace detail {

/// A decimal number of 1 to 19 digits (19 always fit in 64 bits), nothing
/// else: no sign, no spaces (callers trim where a header may carry them).
inline std::optional<std::uint64_t> decimal_value(std::string_view text) {
    if (text.empty() || text.size() > 19) return std::nullopt;
    std::uint64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return value;
}

/// A parsed Content-Range: "bytes FIRST-LAST/TOTAL" (TOTAL may be "*").
struct ContentRange {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    std::optional<std::uint64_t> total;
};

inline std::optional<ContentRange> parse_content_range(std::string_view value) {
    value = trim(value);
    if (!starts_with(to_lower(value.substr(0, 6)), "bytes ")) return std::nullopt;
    value = trim(value.substr(6));
    auto dash = value.find('-');
    auto slash = value.find('/');
    if (dash == std::string_view::npos || slash == std::string_view::npos || dash > slash) return std::nullopt;
    auto number = [](std::string_view text) { return decimal_value(trim(text)); };
    auto first = number(value.substr(0, dash));
    auto last = number(value.substr(dash + 1, slash - dash - 1));
    if (!first || !last || *last < *first) return std::nullopt;
    ContentRange range{*first, *last, std::nullopt};
    std::string_view total = trim(value.substr(slash + 1));
    if (total != "*") {
        range.total = number(total);
        if (!range.total || *range.total <= *last) return std::nullopt;
    }
    return range;
}

}  // namespace detail
}  // namespace provision

#endif
