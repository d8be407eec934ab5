// SPDX-License-Identifier: MIT
// Fuzz target: how long a server asks us to wait: Retry-After (seconds or an
// HTTP date in its three forms) and Hugging Face's RateLimit header.
//
// Input: one header value; the same bytes go to each parser.
#include "fuzz_support.hpp"

#include <provision/http/retry_policy.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace {

/// "Sun, 06 Nov 1994 08:49:37 GMT" for a time point (IMF-fixdate, no locale).
std::string imf_fixdate(std::chrono::system_clock::time_point when) {
    static const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::time_t seconds = std::chrono::system_clock::to_time_t(when);
    std::tm parts{};
    gmtime_r(&seconds, &parts);
    char text[64];
    std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[parts.tm_wday], parts.tm_mday,
                  months[parts.tm_mon], parts.tm_year + 1900, parts.tm_hour, parts.tm_min, parts.tm_sec);
    return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace detail = provision::detail;
    const std::string_view value = provision_fuzz::as_text(data, size);
    // A fixed "now" keeps a failing input failing when it is replayed.
    const auto now = std::chrono::system_clock::from_time_t(1764720000);  // 2025-12-03

    if (auto wait = detail::parse_retry_after(value, now)) {
        // Never negative (a date in the past means "now"), and whole seconds:
        // both forms count in seconds.
        PROVISION_FUZZ_CHECK(wait->count() >= 0 && wait->count() % 1000 == 0);
        (void)detail::describe_wait(*wait);
    }

    if (auto when = detail::parse_http_date(value)) {
        // A date we accept, written back as IMF-fixdate, is read as the same
        // instant (out-of-range days and leap seconds included: both ways
        // go through timegm's normalisation, and the accepted years are
        // judged after it).
        std::string written = imf_fixdate(*when);
        auto again = detail::parse_http_date(written);
        PROVISION_FUZZ_CHECK(again.has_value());
        PROVISION_FUZZ_CHECK(*again == *when);
        PROVISION_FUZZ_CHECK(detail::parse_retry_after(written, now).has_value());
    }

    if (auto wait = detail::parse_ratelimit_wait(value)) {
        // Only "nothing remains" implies a wait, and it is the reset in whole seconds.
        PROVISION_FUZZ_CHECK(wait->count() >= 0 && wait->count() % 1000 == 0);
        PROVISION_FUZZ_CHECK(value.find('=') != std::string_view::npos);
        (void)detail::describe_wait(*wait);
    }

    // A backoff for any retry count and random unit stays within its bounds.
    const int retry = size == 0 ? 1 : static_cast<int>(data[0]) - 100;
    const double unit = size < 2 ? 0.5 : static_cast<double>(data[1]) / 255.0;
    auto backoff =
        detail::backoff_delay(retry, std::chrono::milliseconds(1000), std::chrono::milliseconds(30000), unit);
    PROVISION_FUZZ_CHECK(backoff.count() >= 1 && backoff.count() <= 30000);
    return 0;
}
