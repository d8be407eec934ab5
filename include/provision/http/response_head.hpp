// SPDX-License-Identifier: MIT
// provision: reading a response head and its body framing, with no I/O.
//
// The connection (http/connection.hpp) collects the bytes of a head up to its blank
// line and hands them here; everything a server can get wrong in a head is
// judged in this file, where a fuzzer can feed it bytes directly
// (tests/fuzz/fuzz_response_head.cpp). Limits: the head's size, the number of
// header fields; a Transfer-Encoding other than chunked is refused, as are
// two different Content-Length values.
#ifndef PROVISION_HTTP_RESPONSE_HEAD_HPP
#define PROVISION_HTTP_RESPONSE_HEAD_HPP

#include "../url.hpp"
#include "content_range.hpp"

#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace provision {
namespace detail {

/// Status line and headers of one response.
struct RawResponseHead {
    int status = 0;
    int minor_version = 1;  ///< HTTP/1.minor
    std::vector<std::pair<std::string, std::string>> headers;
};

struct ResponseHeadLimits {
    std::size_t max_bytes = 64 * 1024;  ///< a server sending headers forever is cut off here
    std::size_t max_fields = 256;
};

/// Case-insensitive search for a token in a comma-separated header value.
inline bool header_has_token(std::string_view value, std::string_view token) {
    std::size_t start = 0;
    while (start <= value.size()) {
        std::size_t comma = value.find(',', start);
        std::string_view item =
            value.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        if (iequals(trim(item), token)) return true;
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return false;
}

/// Parses a head: the status line and header lines, each ending in LF (CR
/// before it optional), up to and without the empty line. On failure returns
/// false and says why in `problem` (words, no bytes of the head).
inline bool parse_response_head(std::string_view block, RawResponseHead& head, std::string& problem,
                                ResponseHeadLimits limits = {}) {
    head = RawResponseHead{};
    if (block.size() > limits.max_bytes) {
        problem = "more than " + std::to_string(limits.max_bytes / 1024) + " KiB of response headers";
        return false;
    }
    auto next_line = [&](std::string_view& line) {
        if (block.empty()) return false;
        std::size_t newline = block.find('\n');
        line = block.substr(0, newline);
        block.remove_prefix(newline == std::string_view::npos ? block.size() : newline + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        return true;
    };
    std::string_view line;
    // Status line, e.g. "HTTP/1.1 206 Partial Content".
    auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
    if (!next_line(line) || line.size() < 12 || line.compare(0, 7, "HTTP/1.") != 0 || !digit(line[7]) ||
        line[8] != ' ' || !digit(line[9]) || !digit(line[10]) || !digit(line[11]) ||
        (line.size() > 12 && line[12] != ' ')) {
        problem = "the status line is not HTTP/1.x";
        return false;
    }
    head.minor_version = line[7] - '0';
    head.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (head.status < 100 || head.status > 599) {
        problem = "the status code is not between 100 and 599";
        return false;
    }
    while (next_line(line)) {
        if (line.empty()) break;
        for (unsigned char c : line)
            if (c == '\0' || c == '\r') {
                problem = "a header line with a NUL or a bare CR";
                return false;
            }
        if (line.front() == ' ' || line.front() == '\t') {
            // An obsolete folded line continues the previous value; one made
            // only of blanks adds nothing.
            if (head.headers.empty()) {
                problem = "a folded header line before any header";
                return false;
            }
            std::string_view text = trim(line);
            if (text.empty()) continue;
            std::string& value = head.headers.back().second;
            if (!value.empty()) value += ' ';  // a continuation of an empty value starts it
            value.append(text.data(), text.size());
            continue;
        }
        std::size_t colon = line.find(':');
        if (colon == 0 || colon == std::string_view::npos || line.find_first_of(" \t") < colon) {
            problem = "a header line without a name";
            return false;
        }
        if (head.headers.size() == limits.max_fields) {
            problem = "more than " + std::to_string(limits.max_fields) + " header fields";
            return false;
        }
        head.headers.emplace_back(std::string(line.substr(0, colon)), std::string(trim(line.substr(colon + 1))));
    }
    return true;
}

/// How the body of a response is delimited, and whether the connection can
/// carry another request afterwards.
struct BodyFraming {
    enum class Kind {
        none,      ///< no body: HEAD, 1xx, 204, 304
        length,    ///< Content-Length bytes
        chunked,   ///< Transfer-Encoding: chunked
        to_close,  ///< until the server closes the connection
    } kind = Kind::to_close;
    std::uint64_t length = 0;  ///< for Kind::length
    bool keep_alive = false;   ///< the connection may be reused once the body has been read
};

/// The framing of `head`'s body; false with `problem` when it cannot be read safely.
inline bool body_framing(const RawResponseHead& head, bool head_request, BodyFraming& framing, std::string& problem) {
    framing = BodyFraming{};
    bool keep_alive = head.minor_version >= 1;
    bool chunked = false;
    std::optional<std::uint64_t> length;
    for (const auto& [name, value] : head.headers) {
        if (iequals(name, "connection")) {
            if (header_has_token(value, "close")) keep_alive = false;
            else if (header_has_token(value, "keep-alive")) keep_alive = true;
        } else if (iequals(name, "transfer-encoding")) {
            // Only "chunked" alone is read: any other coding (gzip, a list)
            // is not the bytes as stored, and a guess at its end would be one.
            if (!iequals(trim(value), "chunked")) {
                problem = "a Transfer-Encoding other than chunked";
                return false;
            }
            chunked = true;
        } else if (iequals(name, "content-length")) {
            auto parsed = decimal_value(value);
            if (!parsed) {
                problem = "a Content-Length that is not a number";
                return false;
            }
            if (length && *length != *parsed) {
                problem = "two different Content-Length values";
                return false;
            }
            length = parsed;
        }
    }
    // A 101 switches protocols: whatever follows is not HTTP/1.1 any more.
    if (head.status == 101) keep_alive = false;
    if (head_request || head.status < 200 || head.status == 204 || head.status == 304) {
        framing.kind = BodyFraming::Kind::none;
        framing.keep_alive = keep_alive;
        return true;
    }
    if (chunked) {
        framing.kind = BodyFraming::Kind::chunked;
        // Transfer-Encoding together with Content-Length: someone on the way
        // may have framed it the other way; read it chunked, never reuse it.
        framing.keep_alive = keep_alive && !length;
        return true;
    }
    if (length) {
        framing.kind = BodyFraming::Kind::length;
        framing.length = *length;
        framing.keep_alive = keep_alive;
        return true;
    }
    framing.kind = BodyFraming::Kind::to_close;
    framing.keep_alive = false;
    return true;
}

}  // namespace detail
}  // namespace provision

#endif
