// SPDX-License-Identifier: MIT
// provision: the definitions behind url.hpp, and the small text helpers
// (case-insensitive compare, trim, prefix tests) the rest of the toolkit
// shares with them.
// Included by url.hpp at its end, and only there (the #error below says so).
// Unlike the components' impl/ files it does not include its header back:
// this folder and url.hpp would then depend on each other.
#ifndef PROVISION_IMPL_URL_INL_HPP
#define PROVISION_IMPL_URL_INL_HPP

#ifndef PROVISION_URL_HPP
#error "include <provision/url.hpp>: this file holds its definitions"
#endif

#include <cctype>
#include <optional>
#include <vector>

namespace provision {

namespace detail {

inline bool is_unreserved(unsigned char c) { return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~'; }

inline int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/// True when `text` is exactly `length` hexadecimal digits (either case): a
/// commit hash, a digest.
inline bool is_hex_of_length(std::string_view text, std::size_t length) {
    if (text.size() != length) return false;
    for (unsigned char c : text)
        if (!std::isxdigit(c)) return false;
    return true;
}

inline std::string to_lower(std::string_view text) {
    std::string out(text);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

inline bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

inline bool ends_with(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

inline std::string_view trim(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    return text;
}

/// Removes "." and ".." segments (RFC 3986 section 5.2.4).
inline std::string remove_dot_segments(std::string_view input) {
    std::vector<std::string> segments;
    bool trailing_slash = false;
    std::size_t pos = 0;
    if (!input.empty() && input.front() == '/') pos = 1;
    while (pos <= input.size()) {
        std::size_t next = input.find('/', pos);
        if (next == std::string_view::npos) next = input.size();
        std::string_view segment = input.substr(pos, next - pos);
        trailing_slash = false;
        if (segment == "..") {
            if (!segments.empty()) segments.pop_back();
            trailing_slash = true;
        } else if (segment == ".") {
            trailing_slash = true;
        } else {
            segments.emplace_back(segment);
        }
        pos = next + 1;
    }
    std::string out;
    for (const auto& s : segments) out += "/" + s;
    if (trailing_slash || out.empty()) out += "/";
    return out;
}

}  // namespace detail

inline std::string percent_encode(std::string_view text) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (detail::is_unreserved(c)) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

inline std::string percent_encode_path(std::string_view path) {
    std::string out;
    std::size_t pos = 0;
    while (true) {
        std::size_t next = path.find('/', pos);
        out += percent_encode(path.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos));
        if (next == std::string_view::npos) break;
        out += '/';
        pos = next + 1;
    }
    return out;
}

inline std::string percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && detail::hex_value(text[i + 1]) >= 0 &&
            detail::hex_value(text[i + 2]) >= 0) {
            out += static_cast<char>(detail::hex_value(text[i + 1]) * 16 + detail::hex_value(text[i + 2]));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

namespace detail {
/// A URL that did not parse, as an error message may show it: whatever could
/// be user-info (before an '@' in the authority) and everything after '?'
/// hidden, and control characters masked. A malformed HTTPS_PROXY or
/// PROVISION_URL is never echoed with its password.
inline std::string unparsed_url_for_message(std::string_view text) {
    std::string out(text);
    std::size_t query = out.find('?');
    if (query != std::string::npos) out = out.substr(0, query) + "?***";
    std::size_t scheme = out.find("://");
    std::size_t authority = scheme == std::string::npos ? 0 : scheme + 3;
    std::size_t end = out.find_first_of("/?", authority);
    std::size_t at = out.rfind('@', end == std::string::npos ? std::string::npos : end);
    if (at != std::string::npos && at >= authority) out = out.substr(0, authority) + "***" + out.substr(at);
    for (auto& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return out;
}
}  // namespace detail

inline Result<Url> parse_url(std::string_view text) {
    auto fail = [&](const std::string& why) {
        return make_error(errc::usage, "invalid URL \"" + detail::unparsed_url_for_message(text) + "\": " + why);
    };
    std::string_view rest = detail::trim(text);
    if (rest.size() != text.size()) return fail("it has leading or trailing spaces");
    for (unsigned char c : rest)
        if (c <= 0x20 || c == 0x7f) return fail("it contains a space or control character (percent-encode it as %20)");
    std::size_t colon = rest.find("://");
    if (colon == std::string_view::npos) return fail("expected it to start with https:// or http://");
    Url url;
    url.scheme = detail::to_lower(rest.substr(0, colon));
    if (url.scheme != "http" && url.scheme != "https")
        return fail("the scheme \"" + url.scheme + "\" is not supported; use https:// or http://");
    rest.remove_prefix(colon + 3);
    std::size_t hash = rest.find('#');
    if (hash != std::string_view::npos) {
        url.fragment = std::string(rest.substr(hash + 1));
        rest = rest.substr(0, hash);
    }
    std::size_t authority_end = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, authority_end);
    rest = authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
    std::size_t at = authority.rfind('@');
    if (at != std::string_view::npos) {
        url.userinfo = std::string(authority.substr(0, at));
        authority.remove_prefix(at + 1);
    }
    std::string_view host = authority;
    std::string_view port;
    if (!authority.empty() && authority.front() == '[') {
        std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return fail("unterminated IPv6 address");
        host = authority.substr(1, close - 1);
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return fail("unexpected text after the IPv6 address");
            port = after.substr(1);
        }
    } else {
        std::size_t port_colon = authority.rfind(':');
        if (port_colon != std::string_view::npos) {
            host = authority.substr(0, port_colon);
            port = authority.substr(port_colon + 1);
        }
    }
    if (host.empty()) return fail("it has no host name");
    for (unsigned char c : host)
        if (!(std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == ':' || c >= 0x80))
            return fail("the host name contains '" + std::string(1, static_cast<char>(c)) + "'");
    url.host = detail::to_lower(host);
    url.port = url.default_port();
    if (!port.empty()) {
        unsigned long value = 0;
        for (char c : port) {
            if (!std::isdigit(static_cast<unsigned char>(c)))
                return fail("the port \"" + std::string(port) + "\" is not a number");
            value = value * 10 + static_cast<unsigned long>(c - '0');
            if (value > 65535) return fail("the port " + std::string(port) + " is out of range");
        }
        if (value == 0) return fail("port 0 is not valid");
        url.port = static_cast<std::uint16_t>(value);
    }
    std::size_t question = rest.find('?');
    std::string_view path = rest.substr(0, question);
    if (question != std::string_view::npos) url.query = std::string(rest.substr(question + 1));
    url.path = path.empty() ? "/" : detail::remove_dot_segments(path);
    return url;
}

inline Result<Url> resolve_reference(const Url& base, std::string_view reference) {
    std::string_view ref = detail::trim(reference);
    std::size_t scheme_end = ref.find(':');
    std::size_t first_delim = ref.find_first_of("/?#");
    if (scheme_end != std::string_view::npos && (first_delim == std::string_view::npos || scheme_end < first_delim))
        return parse_url(ref);
    if (detail::starts_with(ref, "//")) return parse_url(base.scheme + ":" + std::string(ref));
    Url out = base;
    out.fragment.clear();
    std::string_view fragment;
    std::size_t hash = ref.find('#');
    if (hash != std::string_view::npos) {
        fragment = ref.substr(hash + 1);
        ref = ref.substr(0, hash);
    }
    std::size_t question = ref.find('?');
    std::string_view path = ref.substr(0, question);
    std::string_view query = question == std::string_view::npos ? std::string_view{} : ref.substr(question + 1);
    if (path.empty()) {
        if (question != std::string_view::npos) out.query = std::string(query);
    } else {
        if (path.front() == '/') {
            out.path = detail::remove_dot_segments(path);
        } else {
            std::string merged = base.path.substr(0, base.path.rfind('/') + 1) + std::string(path);
            out.path = detail::remove_dot_segments(merged);
        }
        out.query = std::string(query);
    }
    out.fragment = std::string(fragment);
    // The path and query go on the next request line: a space or a line break there
    // would break (or split) the request.
    for (const std::string* part : {&out.path, &out.query, &out.fragment})
        for (unsigned char c : *part)
            if (c <= 0x20 || c == 0x7f)
                return make_error(errc::network, "the server redirected to a URL with a space or control character");
    return out;
}

namespace detail {

/// The query parameters whose values may be shown in anything provision
/// prints or writes. Every other value is hidden: a name nobody listed
/// (X-Goog-Signature, X-Goog-Credential, hf_token, a CDN's own) is treated
/// as a secret, because a list of known secret names leaks every name it
/// forgot. These are the ones users need to recognise a link by: file
/// and version ids (CivitAI, Drive), formats, download and listing switches.
inline bool is_harmless_query_parameter(const std::string& lower_name) {
    static const char* const harmless[] = {"download", "dl",   "export",         "file", "filename", "format",
                                           "fp",       "id",   "modelversionid", "name", "raw",      "recursive",
                                           "revision", "size", "type",           "usp",  "v",        "version"};
    for (const char* name : harmless)
        if (lower_name == name) return true;
    return false;
}

}  // namespace detail

inline std::string Url::redacted() const {
    std::string out = scheme + "://" + authority() + path;
    if (!query.empty()) {
        out += '?';
        std::size_t pos = 0;
        bool first = true;
        while (pos <= query.size()) {
            std::size_t amp = query.find('&', pos);
            if (amp == std::string::npos) amp = query.size();
            std::string pair = query.substr(pos, amp - pos);
            std::size_t eq = pair.find('=');
            std::string name = detail::to_lower(percent_decode(pair.substr(0, eq)));
            if (!first) out += '&';
            bool shown = eq == std::string::npos || detail::is_harmless_query_parameter(name);
            out += shown ? pair : pair.substr(0, eq) + "=***";
            first = false;
            pos = amp + 1;
        }
    }
    return out;
}

namespace detail {
/// localhost, 127.0.0.0/8 or ::1: a host whose traffic never leaves the machine.
inline bool is_loopback_host(const std::string& host) {
    std::string lower = to_lower(host);
    return lower == "localhost" || lower == "::1" || lower == "[::1]" || starts_with(lower, "127.");
}
}  // namespace detail

inline std::string Url::last_segment() const {
    std::size_t slash = path.rfind('/');
    return percent_decode(slash == std::string::npos ? path : path.substr(slash + 1));
}

inline std::string redact_url(std::string_view text) {
    auto parsed = parse_url(text);
    return parsed ? parsed->redacted() : std::string(text);
}

}  // namespace provision

#endif
