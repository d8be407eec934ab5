// SPDX-License-Identifier: MIT
// provision: which proxy a request goes through (HTTPS_PROXY, HTTP_PROXY, NO_PROXY).
//
// Follows the conventions curl and most HTTP clients share: the upper- and
// lower-case variables are both read (lower case wins, as curl does), NO_PROXY
// is a comma list of host names, domain suffixes, IP addresses and optional
// ports, and "*" disables proxying. https requests tunnel with CONNECT.
#ifndef PROVISION_HTTP_PROXY_HPP
#define PROVISION_HTTP_PROXY_HPP

#include "../environment.hpp"
#include "../error.hpp"
#include "../url.hpp"

#include <optional>
#include <string>
#include <vector>

namespace provision {

struct ProxySettings {
    std::optional<Url> http;            ///< for http:// requests
    std::optional<Url> https;           ///< for https:// requests (CONNECT tunnel)
    std::vector<std::string> no_proxy;  ///< lower-case patterns

    /// Parses a proxy URL; "host:port" without a scheme means http://.
    static Result<Url> parse_proxy_url(const std::string& text, const std::string& variable) {
        std::string candidate = text.find("://") == std::string::npos ? "http://" + text : text;
        auto url = parse_url(candidate);
        if (!url) return make_error(errc::usage, variable + ": " + url.error().message);
        if (url->scheme != "http")
            return make_error(errc::usage, variable +
                                               ": only http:// proxies are supported (https requests still "
                                               "travel encrypted through them with CONNECT)");
        return url;
    }

    /// Reads the proxy variables; invalid values are usage errors naming the variable.
    static Result<ProxySettings> from_environment(const EnvLookup& env) {
        auto read = [&](const char* lower, const char* upper) -> std::pair<std::string, std::string> {
            if (auto value = env(lower); value && !value->empty()) return {*value, lower};
            if (auto value = env(upper); value && !value->empty()) return {*value, upper};
            return {"", ""};
        };
        ProxySettings settings;
        auto [https_text, https_name] = read("https_proxy", "HTTPS_PROXY");
        if (!https_text.empty()) {
            auto url = parse_proxy_url(https_text, https_name);
            if (!url) return url.error();
            settings.https = url.value();
        }
        auto [http_text, http_name] = read("http_proxy", "HTTP_PROXY");
        if (!http_text.empty()) {
            auto url = parse_proxy_url(http_text, http_name);
            if (!url) return url.error();
            settings.http = url.value();
        }
        auto [no_proxy_text, no_proxy_name] = read("no_proxy", "NO_PROXY");
        std::size_t pos = 0;
        while (pos <= no_proxy_text.size() && !no_proxy_text.empty()) {
            std::size_t comma = no_proxy_text.find(',', pos);
            if (comma == std::string::npos) comma = no_proxy_text.size();
            std::string pattern = detail::to_lower(detail::trim(no_proxy_text.substr(pos, comma - pos)));
            if (!pattern.empty()) settings.no_proxy.push_back(pattern);
            pos = comma + 1;
        }
        return settings;
    }

    /// True when NO_PROXY exempts this URL.
    bool bypasses(const Url& url) const {
        for (std::string pattern : no_proxy) {
            if (pattern == "*") return true;
            // an optional ":port" limits the pattern to that port
            std::size_t colon = pattern.rfind(':');
            if (colon != std::string::npos && pattern.find(']') == std::string::npos && pattern.find(':') == colon) {
                if (pattern.substr(colon + 1) != std::to_string(url.port)) continue;
                pattern = pattern.substr(0, colon);
            }
            if (pattern.size() > 2 && pattern.front() == '[' && pattern.back() == ']')
                pattern = pattern.substr(1, pattern.size() - 2);
            if (!pattern.empty() && pattern.front() == '.') pattern = pattern.substr(1);
            if (url.host == pattern) return true;
            if (url.host.size() > pattern.size() && detail::ends_with(url.host, "." + pattern)) return true;
        }
        return false;
    }

    /// The proxy for a request, or nullopt for a direct connection.
    std::optional<Url> for_url(const Url& url) const {
        const auto& proxy = url.is_https() ? https : http;
        if (!proxy || bypasses(url)) return std::nullopt;
        return proxy;
    }
};

}  // namespace provision

#endif
