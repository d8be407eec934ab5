// SPDX-License-Identifier: MIT
// provision: the HttpClient's set-up: --connect-to rules, the
// TLS context made once, where each URL connects (direct, a --connect-to
// target, a proxy), and transport failures in words a user can act on.
// Before the guard: client.hpp includes its definitions, this file in its
// place among them, whichever of them is included first.
#include "client.hpp"

#ifndef PROVISION_HTTP_CLIENT_SETUP_HPP
#define PROVISION_HTTP_CLIENT_SETUP_HPP

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

namespace provision {

namespace detail {

/// Splits "a:b:c:d" on ':' outside brackets.
inline std::vector<std::string> split_connect_to(std::string_view text) {
    std::vector<std::string> parts(1);
    bool in_brackets = false;
    for (char c : text) {
        if (c == '[') in_brackets = true;
        if (c == ']') in_brackets = false;
        if (c == ':' && !in_brackets) {
            parts.emplace_back();
        } else {
            parts.back() += c;
        }
    }
    return parts;
}

inline std::optional<std::uint16_t> parse_port(const std::string& text, bool& ok) {
    ok = true;
    if (text.empty()) return std::nullopt;
    unsigned long value = 0;
    for (char c : text) {
        if (!std::isdigit(static_cast<unsigned char>(c)) || value > 65535) {
            ok = false;
            return std::nullopt;
        }
        value = value * 10 + static_cast<unsigned long>(c - '0');
    }
    if (value == 0 || value > 65535) ok = false;
    return static_cast<std::uint16_t>(value);
}

inline std::string strip_brackets(std::string host) {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
    return host;
}

inline std::string base64_encode(std::string_view input) {
    static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < input.size(); i += 3) {
        unsigned v = (static_cast<unsigned char>(input[i]) << 16) | (static_cast<unsigned char>(input[i + 1]) << 8) |
                     static_cast<unsigned char>(input[i + 2]);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (i + 1 == input.size()) {
        unsigned v = static_cast<unsigned char>(input[i]) << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += "==";
    } else if (i + 2 == input.size()) {
        unsigned v = (static_cast<unsigned char>(input[i]) << 16) | (static_cast<unsigned char>(input[i + 1]) << 8);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

}  // namespace detail

inline Result<ConnectTo> ConnectTo::parse(std::string_view text) {
    auto parts = detail::split_connect_to(text);
    auto fail = [&](const std::string& why) {
        return make_error(errc::usage,
                          "invalid --connect-to \"" + std::string(text) + "\": " + why +
                              " (expected HOST1:PORT1:HOST2:PORT2, e.g. huggingface.co:443:127.0.0.1:8443)");
    };
    if (parts.size() != 4) return fail("it has " + std::to_string(parts.size()) + " fields, not 4");
    ConnectTo rule;
    bool ok = true;
    rule.from_host = detail::to_lower(detail::strip_brackets(parts[0]));
    rule.from_port = detail::parse_port(parts[1], ok);
    if (!ok) return fail("\"" + parts[1] + "\" is not a port number");
    rule.to_host = detail::strip_brackets(parts[2]);
    rule.to_port = detail::parse_port(parts[3], ok);
    if (!ok) return fail("\"" + parts[3] + "\" is not a port number");
    return rule;
}

inline void RequestAbort::abort() {
    // Holding our mutex while stopping keeps the connection alive: the
    // request thread detaches (under the same mutex) before it can go.
    // interrupt() shuts the socket down, which wakes a blocked read.
    std::lock_guard<std::mutex> lock(mutex_);
    aborted_ = true;
    if (raw_) raw_->interrupt();
}

inline HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {
    // A bad --cacert file is reported here, before any request. The trust
    // store itself is built by the first https connection: OpenSSL 3.0 takes
    // about 0.2 s of CPU to decode the system bundle, which a run that needs
    // no TLS (plain-http mirrors, everything already in place) must not pay
    // (tools/bench.sh case d: 0.27 s with an eager store, 0.07 s without).
    for (const auto& file : options_.ca_files) {
        X509_STORE* scratch = X509_STORE_new();
        bool loaded = scratch && detail::load_pem_file(scratch, file);
        X509_STORE_free(scratch);
        if (!loaded)
            throw error(errc::usage,
                        "cannot read CA certificates from \"" + file + "\": it must be a readable PEM file");
    }
}

inline const detail::TlsClientContext* HttpClient::tls_context(Error& failure) {
    std::call_once(tls_once_, [this] {
        auto made = detail::TlsClientContext::create(options_.ca_files);
        if (made) tls_ = std::move(made).value();
        else tls_failure_ = made.error();
    });
    if (!tls_) failure = *tls_failure_;
    return tls_.get();
}

inline HttpClient::~HttpClient() { idle_.clear(); }

inline HttpClient::Route HttpClient::route(const Url& url) const {
    Route route;
    route.connect_host = url.host;
    route.connect_port = url.port;
    for (const auto& rule : options_.connect_to) {
        if (!rule.matches(url)) continue;
        if (!rule.to_host.empty()) route.connect_host = rule.to_host;
        if (rule.to_port) route.connect_port = *rule.to_port;
        break;
    }
    route.proxy = options_.proxy.for_url(url);
    if (route.proxy) {
        route.connect_host = route.proxy->host;  // the proxy resolves and connects; --connect-to rules are not applied
        route.connect_port = route.proxy->port;
    }
    route.key = url.origin() + "|" + route.connect_host + ":" + std::to_string(route.connect_port) + "|" +
                (route.proxy ? route.proxy->str() : std::string());
    return route;
}

inline std::string HttpClient::describe_failure(const detail::TransportError& failure, const Url& url,
                                                const Route& route) const {
    using detail::TransportFailure;
    std::string where = url.authority();
    if (route.proxy) where += " (through the proxy " + route.proxy->authority() + ")";
    else if (route.connect_host != url.host || route.connect_port != url.port)
        where += " (via " + route.connect_host + ":" + std::to_string(route.connect_port) + ")";
    auto idle_s = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options_.idle_timeout).count());
    switch (failure.kind) {
    case TransportFailure::connect: return "could not connect to " + where + ": connection refused or host unreachable";
    case TransportFailure::connect_timeout: return "connecting to " + where + " timed out";
    case TransportFailure::read:
        return "the connection to " + where + " broke while reading (reset by the server, or no data for " + idle_s +
               " s)";
    case TransportFailure::write: return "the connection to " + where + " broke while sending the request";
    case TransportFailure::tls_handshake:
        return "the TLS handshake with " + where + " failed (is it really an https server?)";
    case TransportFailure::tls_setup: return "could not set up a TLS session for " + where;
    case TransportFailure::proxy_refused:
        if (failure.proxy_status == 407)
            return "the proxy " + (route.proxy ? route.proxy->authority() : std::string()) +
                   " wants credentials (407) for " + url.authority() +
                   ": put them in the proxy URL, http://USER:PASSWORD@HOST:PORT";
        return "the proxy " + (route.proxy ? route.proxy->authority() : std::string()) + " refused the tunnel to " +
               url.authority() + " (it answered " + std::to_string(failure.proxy_status) + ")";
    case TransportFailure::tls_verify: {
        // Each cause has its own remedy; none of them goes away by retrying.
        long code = failure.verify_code;
        if (code == X509_V_ERR_HOSTNAME_MISMATCH || code == X509_V_ERR_IP_ADDRESS_MISMATCH)
            return "the TLS certificate of " + where + " is for another host name, not " + url.host +
                   ": the link may point at the wrong server, or something on the way intercepts TLS";
        std::string reason =
            code != X509_V_OK ? X509_verify_cert_error_string(code) : "certificate verification failed";
        if (code == X509_V_ERR_CERT_HAS_EXPIRED || code == X509_V_ERR_CERT_NOT_YET_VALID)
            return "the TLS certificate of " + where + " is not valid now (" + reason +
                   "): the server must renew it, or this machine's clock is wrong";
        return "the TLS certificate of " + where + " is not trusted: " + reason +
               "; if the server uses a private CA, pass --cacert FILE or set SSL_CERT_FILE";
    }
    case TransportFailure::canceled: return "the transfer from " + where + " was stopped";
    case TransportFailure::protocol: return "the answer from " + where + " is not valid HTTP/1.1: " + failure.detail;
    case TransportFailure::none: break;
    }
    return "request to " + where + " failed";
}

}  // namespace provision

#endif  // PROVISION_HTTP_CLIENT_SETUP_HPP
