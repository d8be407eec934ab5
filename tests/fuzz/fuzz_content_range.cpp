// SPDX-License-Identifier: MIT
// Fuzz target: the Content-Range header of a 206 answer, which decides where
// the bytes that follow are written in the part file.
//
// Input: the header's value.
#include "fuzz_support.hpp"

#include <provision/http/content_range.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace detail = provision::detail;
    const std::string_view value = provision_fuzz::as_text(data, size);

    auto range = detail::parse_content_range(value);
    if (!range) return 0;
    // A range the engine accepts is never empty, never inverted, and lies
    // inside the total when the server names one: a write at [first, last]
    // cannot land outside the file.
    PROVISION_FUZZ_CHECK(range->first <= range->last);
    if (range->total) PROVISION_FUZZ_CHECK(range->last < *range->total);

    // Written back in the canonical form, it reads as the same range.
    std::string canonical = "bytes " + std::to_string(range->first) + "-" + std::to_string(range->last) + "/" +
                            (range->total ? std::to_string(*range->total) : std::string("*"));
    auto again = detail::parse_content_range(canonical);
    PROVISION_FUZZ_CHECK(again.has_value());
    PROVISION_FUZZ_CHECK(again->first == range->first && again->last == range->last && again->total == range->total);

    // Every number came from the text as written: each appears in it.
    PROVISION_FUZZ_CHECK(value.find(std::to_string(range->last)) != std::string_view::npos);
    return 0;
}
