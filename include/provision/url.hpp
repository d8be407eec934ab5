// SPDX-License-Identifier: MIT
// provision: URL parsing, percent-coding and relative-reference resolution.
//
// Only http and https are accepted. We parse URLs ourselves (rather than letting
// the HTTP library do it) because redirect following, credential scoping and
// --connect-to all depend on knowing exactly which host and port a URL names.
#ifndef PROVISION_URL_HPP
#define PROVISION_URL_HPP

#include "error.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace provision {

/// An absolute http(s) URL split into its parts. `path` keeps its percent-encoding.
struct Url {
    std::string scheme;    ///< "http" or "https", lower case
    std::string userinfo;  ///< "user:pass" if present (never logged; see redacted())
    std::string host;      ///< lower case; IPv6 literals without brackets
    std::uint16_t port = 0;
    std::string path = "/";  ///< starts with '/'
    std::string query;       ///< without the leading '?'
    std::string fragment;    ///< without the leading '#'

    bool is_https() const { return scheme == "https"; }
    std::uint16_t default_port() const { return is_https() ? 443 : 80; }
    /// host, or [host] for IPv6 literals
    std::string host_for_uri() const { return host.find(':') != std::string::npos ? "[" + host + "]" : host; }
    /// "host" or "host:port" when the port is not the scheme's default: the Host header value.
    std::string authority() const {
        return port == default_port() ? host_for_uri() : host_for_uri() + ":" + std::to_string(port);
    }
    /// "scheme://host[:port]": what credentials are scoped to.
    std::string origin() const { return scheme + "://" + authority(); }
    /// path plus "?query": what goes on the request line.
    std::string target() const { return query.empty() ? path : path + "?" + query; }
    /// The whole URL (including user-info: do not print this, print redacted()).
    std::string str() const {
        std::string out = scheme + "://";
        if (!userinfo.empty()) out += userinfo + "@";
        out += authority() + target();
        if (!fragment.empty()) out += "#" + fragment;
        return out;
    }
    /// The URL safe for anything printed or written: user-info and fragment
    /// dropped, every query value replaced with "***" unless its parameter is
    /// known to be harmless (detail::is_harmless_query_parameter).
    std::string redacted() const;
    /// The last path segment, percent-decoded ("" for "/").
    std::string last_segment() const;
};

/// Percent-encodes every byte that is not unreserved (so '/' becomes %2F).
inline std::string percent_encode(std::string_view text);
/// Percent-encodes each '/'-separated segment of a path, keeping the separators.
inline std::string percent_encode_path(std::string_view path);
/// Decodes %XX sequences; malformed escapes are kept literally. '+' is left alone.
inline std::string percent_decode(std::string_view text);

/// Parses an absolute http(s) URL. Errors name what is wrong with it (the
/// URL shown without anything that could be a secret).
inline Result<Url> parse_url(std::string_view text);
/// Resolves a reference (e.g. a Location header) against a base URL, as RFC 3986
/// section 5.2 describes: absolute, scheme-relative ("//host/x"), absolute-path and
/// relative-path references and query-only references are all handled.
inline Result<Url> resolve_reference(const Url& base, std::string_view reference);
/// Redacts a URL given as text; text that is not a URL is returned unchanged.
inline std::string redact_url(std::string_view text);

}  // namespace provision

// The definitions, apart so that this file reads as the API.
#include "impl/url_inl.hpp"

#endif
