// SPDX-License-Identifier: MIT
// provision: when a failed request is worth another try, and how long to wait.
//
// Servers say how long to wait in three ways we honour: Retry-After as seconds,
// Retry-After as an HTTP date, and Hugging Face's RateLimit header
// ("api";r=0;t=55: nothing left in this window, it resets in 55 s). Otherwise
// we back off exponentially with jitter, so that many clients (or many
// segments of one file) that failed together do not come back together.
#ifndef PROVISION_HTTP_RETRY_POLICY_HPP
#define PROVISION_HTTP_RETRY_POLICY_HPP

#include "../url.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace provision {
namespace detail {

/// 408 (the server timed out), 429 (slow down) and 5xx (server trouble) can
/// succeed later; any other 4xx will not, and retrying it only hides the cause.
inline bool is_retryable_status(int status) {
    return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

/// Parses an HTTP date in any of the three forms RFC 9110 requires a
/// recipient to accept: "Sun, 06 Nov 1994 08:49:37 GMT" (IMF-fixdate),
/// "Sunday, 06-Nov-94 08:49:37 GMT" (RFC 850) and "Sun Nov  6 08:49:37 1994"
/// (asctime). Written by hand because strptime depends on the locale.
inline std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text) {
    static const char* months[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
    // Split into tokens on spaces, commas, dashes and colons.
    std::vector<std::string> tokens;
    std::string current;
    for (char c : text) {
        if (c == ' ' || c == ',' || c == '-' || c == ':' || c == '\t') {
            if (!current.empty()) tokens.push_back(current);
            current.clear();
        } else {
            current += c;
        }
    }
    if (!current.empty()) tokens.push_back(current);
    int day = -1, month = -1, year = -1, hour = -1, minute = -1, second = -1;
    std::vector<int> numbers;
    for (const auto& token : tokens) {
        std::string lower = to_lower(token);
        bool digits =
            !token.empty() && std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (digits && token.size() <= 4) {
            numbers.push_back(std::stoi(token));
            continue;
        }
        for (int m = 0; m < 12; ++m)
            if (lower == months[m]) month = m;
    }
    // Numbers appear as day, year, h, m, s (IMF, RFC 850) or day, h, m, s, year (asctime).
    if (month < 0 || numbers.size() != 5) return std::nullopt;
    bool asctime_form = numbers[4] > 59;
    day = numbers[0];
    if (asctime_form) {
        hour = numbers[1];
        minute = numbers[2];
        second = numbers[3];
        year = numbers[4];
    } else {
        year = numbers[1];
        hour = numbers[2];
        minute = numbers[3];
        second = numbers[4];
    }
    if (year < 100) year += year < 70 ? 2000 : 1900;  // RFC 850 two-digit years
    if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
    std::tm parts{};
    parts.tm_year = year - 1900;
    parts.tm_mon = month;
    parts.tm_mday = day;
    parts.tm_hour = hour;
    parts.tm_min = minute;
    parts.tm_sec = second;
    std::time_t seconds = timegm(&parts);
    if (seconds == static_cast<std::time_t>(-1)) return std::nullopt;
    // system_clock counts nanoseconds in 64 bits: about 1678 to 2262. A date
    // far outside any real answer is not a date we can wait for (and year 100
    // overflowed that count: found by tests/fuzz/fuzz_retry_after.cpp). The
    // year is judged after timegm has normalised the fields, so that the
    // instant accepted is the one bounded (31 Dec 2199 23:59:60 is in 2200).
    const int normalised_year = parts.tm_year + 1900;
    if (normalised_year < 1900 || normalised_year > 2199) return std::nullopt;
    return std::chrono::system_clock::from_time_t(seconds);
}

/// Retry-After: delta-seconds or an HTTP date, as a wait from `now` (never negative).
inline std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                                  std::chrono::system_clock::time_point now) {
    std::string_view text = trim(value);
    if (text.empty()) return std::nullopt;
    if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        if (text.size() > 9) return std::chrono::milliseconds(999999999LL * 1000);  // absurd, capped by the caller
        return std::chrono::milliseconds(std::stoll(std::string(text)) * 1000);
    }
    auto when = parse_http_date(text);
    if (!when) return std::nullopt;
    if (*when <= now) return std::chrono::milliseconds(0);
    return std::chrono::duration_cast<std::chrono::milliseconds>(*when - now);
}

/// Hugging Face's RateLimit header (IETF draft ratelimit-headers):
/// `"resolvers";r=<remaining>;t=<seconds until the window resets>`. A wait is
/// only implied when nothing remains (r=0).
inline std::optional<std::chrono::milliseconds> parse_ratelimit_wait(std::string_view value) {
    std::optional<long long> remaining;
    std::optional<long long> reset;
    std::size_t pos = 0;
    while (pos <= value.size()) {
        std::size_t end = value.find(';', pos);
        if (end == std::string_view::npos) end = value.size();
        std::string_view item = trim(value.substr(pos, end - pos));
        std::size_t eq = item.find('=');
        if (eq != std::string_view::npos) {
            std::string key = to_lower(trim(item.substr(0, eq)));
            std::string number(trim(item.substr(eq + 1)));
            bool digits = !number.empty() && number.size() < 10 &&
                          std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; });
            if (digits && key == "r") remaining = std::stoll(number);
            if (digits && key == "t") reset = std::stoll(number);
        }
        pos = end + 1;
    }
    if (!remaining || *remaining != 0 || !reset) return std::nullopt;
    return std::chrono::milliseconds(*reset * 1000);
}

/// Exponential backoff with "equal jitter": the n-th retry (from 1) waits
/// between half and all of min(cap, base * 2^(n-1)). Never zero, so a flapping
/// server is not hammered; never above the cap. `unit` is a random number in [0, 1).
inline std::chrono::milliseconds backoff_delay(int retry, std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                               double unit) {
    if (retry < 1) retry = 1;
    double ceiling = static_cast<double>(base.count());
    for (int i = 1; i < retry && ceiling < static_cast<double>(cap.count()); ++i) ceiling *= 2;
    ceiling = std::min(ceiling, static_cast<double>(cap.count()));
    unit = std::min(std::max(unit, 0.0), 1.0);
    auto wait = static_cast<long long>(ceiling / 2 + unit * ceiling / 2);
    return std::chrono::milliseconds(std::max<long long>(wait, 1));
}

/// A random number in [0, 1) for jitter; one generator per thread, seeded once.
inline double jitter_unit() {
    thread_local std::mt19937_64 generator{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(generator);
}

/// "1.5 s", "250 ms", "2 min 5 s": waits as a person reads them.
inline std::string describe_wait(std::chrono::milliseconds wait) {
    long long ms = wait.count();
    if (ms < 1000) return std::to_string(ms) + " ms";
    if (ms < 60000) {
        std::string text = std::to_string(ms / 1000);
        if (ms % 1000 >= 100) text += "." + std::to_string((ms % 1000) / 100);
        return text + " s";
    }
    return std::to_string(ms / 60000) + " min " + std::to_string((ms % 60000) / 1000) + " s";
}

}  // namespace detail
}  // namespace provision

#endif
