// SPDX-License-Identifier: MIT
// provision: the only component that talks to cpp-httplib.
//
// Direct requests go over connections of our own (detail/raw_http.hpp):
// cpp-httplib 0.11 reads 4 KiB per system call and percent-decodes every
// response header value. It still carries requests through proxies (its
// CONNECT tunnels), and the policy below applies to every hop of both.
//
// Why we do not let the library follow redirects: credentials must be dropped
// the moment a redirect leaves the origin they belong to, https->http must be
// refused, and Hugging Face's metadata request must stop at absolute redirects.
// All of that needs to see every hop. Connections are kept per origin and
// reused; TLS verification is always on.
#ifndef PROVISION_HTTP_HPP
#define PROVISION_HTTP_HPP

#include "config.hpp"
#include "detail/guarded.hpp"
#include "detail/raw_http.hpp"
#include "error.hpp"
#include "proxy.hpp"
#include "url.hpp"
#include "version.hpp"

#if !defined(CPPHTTPLIB_OPENSSL_SUPPORT)
#error "provision needs cpp-httplib with CPPHTTPLIB_OPENSSL_SUPPORT; take it through Meson's dependency('provision') or pkg-config cpp-httplib so every translation unit sees the same macros"
#endif
#include <httplib.h>
#include <netdb.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace provision {

/// One curl-style --connect-to rule: requests for HOST1:PORT1 connect to HOST2:PORT2.
/// Empty HOST1 / PORT1 match any; empty HOST2 / PORT2 keep the original. TLS name
/// checks and the Host header still use the original host.
struct ConnectTo {
    std::string from_host;
    std::optional<std::uint16_t> from_port;
    std::string to_host;
    std::optional<std::uint16_t> to_port;

    /// Parses "HOST1:PORT1:HOST2:PORT2" (IPv6 hosts in brackets).
    static Result<ConnectTo> parse(std::string_view text);
    bool matches(const Url& url) const {
        return (from_host.empty() || from_host == url.host) && (!from_port || *from_port == url.port);
    }
};

/// Settings shared by every request.
struct HttpOptions {
    std::vector<std::string> ca_files;    ///< extra trusted CAs (PEM), on top of the system store
    std::vector<ConnectTo> connect_to;    ///< first matching rule wins
    std::chrono::milliseconds connect_timeout{15000};
    std::chrono::milliseconds idle_timeout{60000};  ///< per read
    /// Total time for a request made without an abort handle (configs, API
    /// answers, pages: small bodies). The idle timeout alone never fires on a
    /// server that sends headers forever or drips a byte at a time. Downloads
    /// pass their own abort handle and are watched by the engine instead.
    std::chrono::milliseconds request_deadline{std::chrono::minutes(3)};
    int max_redirects = 10;
    std::string user_agent = provision::user_agent;
    ProxySettings proxy;  ///< from HTTPS_PROXY / HTTP_PROXY / NO_PROXY; --connect-to does not apply through a proxy
    /// Which code speaks HTTP on direct connections. Requests through a proxy
    /// always use cpp-httplib.
    enum class Transport {
        own,      ///< detail::RawConnection: 256 KiB reads, header values as sent
        httplib,  ///< cpp-httplib's client
    } transport = Transport::own;
};

/// Which redirects a request follows.
enum class RedirectPolicy {
    follow,         ///< every redirect (up to max_redirects)
    relative_only,  ///< only Location values without a scheme or host (Hugging Face metadata)
    none,           ///< return the 3xx itself
};

/// Lets another thread stop a request in flight. A stalled read or a cancelled
/// run must not wait for the read timeout (a minute by default), so the
/// downloader's watchdog aborts the connection instead: its socket is shut
/// down, the blocked read returns and the request fails. Once aborted, every
/// later request that carries this handle fails at once until reset().
class RequestAbort {
  public:
    /// Thread-safe; may be called again while the request is still unwinding.
    void abort();
    bool aborted() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return aborted_;
    }
    void reset() {
        std::lock_guard<std::mutex> lock(mutex_);
        aborted_ = false;
    }

  private:
    friend class HttpClient;
    bool attach(httplib::ClientImpl* client) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (aborted_) return false;
        client_ = client;
        return true;
    }
    bool attach(detail::RawConnection* raw) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (aborted_) return false;
        raw_ = raw;
        return true;
    }
    void detach() {
        std::lock_guard<std::mutex> lock(mutex_);
        client_ = nullptr;
        raw_ = nullptr;
    }

    mutable std::mutex mutex_;
    httplib::ClientImpl* client_ = nullptr;
    detail::RawConnection* raw_ = nullptr;
    bool aborted_ = false;
};

struct HttpRequest {
    std::string method = "GET";  ///< GET or HEAD
    Url url;
    std::vector<Header> headers;         ///< sent to every hop (Range, Accept, ...)
    std::vector<Header> scoped_headers;  ///< credentials and user headers: only to url's origin, dropped for good once a redirect leaves it
    RedirectPolicy redirects = RedirectPolicy::follow;
    RequestAbort* abort = nullptr;       ///< optional: lets another thread stop this request
};

struct HttpResponse {
    int status = 0;
    std::vector<Header> headers;
    Url url;                    ///< the URL that produced this response
    std::vector<Url> redirects; ///< the URLs we were redirected through, in order (not including the first)
    std::string body;           ///< filled by HttpClient::fetch only

    /// First value of a header, case-insensitive.
    std::optional<std::string> header(std::string_view name) const {
        for (const auto& [key, value] : headers)
            if (detail::iequals(key, name)) return value;
        return std::nullopt;
    }
    bool is_redirect() const { return status == 301 || status == 302 || status == 303 || status == 307 || status == 308; }
};

/// Called once per final (non-followed) response before its body; return false to skip the body.
using ResponseCheck = std::function<bool(const HttpResponse&)>;
/// Called with each piece of the final response's body; return false to stop.
using BodySink = std::function<bool(const char* data, std::size_t size)>;

/// Thread-safe HTTP(S) client with per-origin connection reuse.
class HttpClient {
  public:
    explicit HttpClient(HttpOptions options = {});
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    const HttpOptions& options() const { return options_; }

    /// Performs a request and streams the final response's body to `sink`.
    /// A result with a status (any status) is ok(); only transport failures are errors.
    /// When `check` or `sink` return false the response seen so far is returned.
    Result<HttpResponse> stream(const HttpRequest& request, const ResponseCheck& check, const BodySink& sink);

    /// Performs a request and keeps the body in memory (refusing bodies over max_body bytes).
    Result<HttpResponse> fetch(const HttpRequest& request, std::size_t max_body = 16u << 20);

  private:
    struct Connection;
    /// Where a request for a URL connects, and the pool key of such connections.
    struct Route {
        std::string connect_host;
        std::uint16_t connect_port = 0;
        std::optional<Url> proxy;
        std::string key;  ///< origin + connect target (+ proxy): connections are only reused for the same
    };
    /// What one hop of a request produced (either transport).
    struct HopOutcome {
        bool completed = false;      ///< a response was read (its body as far as wanted)
        bool stopped_by_us = false;  ///< the check or the sink said stop
        Error failure;               ///< when !completed and !stopped_by_us
    };
    using HeadHandler = std::function<bool(int status, std::vector<Header> headers)>;

    Route route(const Url& url) const;
    std::unique_ptr<Connection> checkout(const Url& url, const Route& where, Error& failure);
    void checkin(std::unique_ptr<Connection> connection);
    HopOutcome exchange_with_httplib(const Url& url, const Route& where, const std::string& method,
                                     const std::vector<Header>& headers, RequestAbort* abort, const HeadHandler& on_head,
                                     const BodySink& on_body);
    HopOutcome exchange_raw(const Url& url, const Route& where, const std::string& method, const std::vector<Header>& headers,
                            RequestAbort* abort, const HeadHandler& on_head, const BodySink& on_body);
    std::string describe_failure(const detail::TransportError& failure, const Url& url, const Route& route) const;

    HttpOptions options_;
    std::vector<X509*> extra_cas_;  ///< the user's CA certificates (--cacert), parsed once
    std::mutex pool_mutex_;
    std::multimap<std::string, std::unique_ptr<Connection>> idle_;
    std::multimap<std::string, std::unique_ptr<detail::RawConnection>> idle_raw_;
};

// ----------------------------------------------------------------------------
// implementation

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

/// cpp-httplib before 0.12.2 percent-decodes every response header value,
/// Location included (yhirose/cpp-httplib#1459), so a signed storage URL's
/// "attachment%3B%20filename%3D%22x%22" arrives as "attachment; filename="x""
/// and is no longer a URL. This re-encodes it the way signers encode: in the
/// path, the bytes a URL cannot contain; in the query, everything but
/// unreserved bytes, '&', the first '=' of each pair, '+' (a space in form
/// encoding) and intact %XX escapes. Servers verify signatures on decoded
/// values, so R2/B2/CDN links work again; an encoded '&' or '+' in a value
/// cannot be told apart any more. A no-op on URLs encoded that way already.
inline std::string reencode_decoded_location(std::string_view location) {
    static const char* hex = "0123456789ABCDEF";
    auto escape = [](std::string& out, unsigned char c) {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
    };
    std::string out;
    bool in_query = false;
    bool pair_has_equals = false;
    for (std::size_t i = 0; i < location.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(location[i]);
        bool intact_escape = c == '%' && i + 2 < location.size() && hex_value(location[i + 1]) >= 0 && hex_value(location[i + 2]) >= 0;
        if (intact_escape) {
            out += static_cast<char>(c);
        } else if (!in_query) {
            bool invalid = c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' ||
                           c == '{' || c == '|' || c == '}' || c == '%';
            if (invalid) escape(out, c);
            else out += static_cast<char>(c);
            if (c == '?') in_query = true;
        } else if (c == '&') {
            out += '&';
            pair_has_equals = false;
        } else if (c == '=' && !pair_has_equals) {
            out += '=';
            pair_has_equals = true;
        } else if (is_unreserved(c) || c == '+') {
            out += static_cast<char>(c);
        } else {
            escape(out, c);
        }
    }
    return out;
}

/// Resolves a host name to a numeric address, as cpp-httplib's address map expects.
inline std::string numeric_address(const std::string& host) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || !found) return host;
    char buffer[NI_MAXHOST] = {};
    std::string out = host;
    if (getnameinfo(found->ai_addr, found->ai_addrlen, buffer, sizeof buffer, nullptr, 0, NI_NUMERICHOST) == 0)
        out = buffer;
    freeaddrinfo(found);
    return out;
}

}  // namespace detail

inline Result<ConnectTo> ConnectTo::parse(std::string_view text) {
    auto parts = detail::split_connect_to(text);
    auto fail = [&](const std::string& why) {
        return make_error(errc::usage, "invalid --connect-to \"" + std::string(text) + "\": " + why +
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

struct HttpClient::Connection {
    Route route;
    std::unique_ptr<httplib::ClientImpl> client;
    httplib::SSLClient* tls = nullptr;  ///< same object as client when https
};

inline void RequestAbort::abort() {
    // Holding our mutex while stopping keeps the client alive: the request
    // thread detaches (under the same mutex) before its connection can go.
    // httplib's stop() only shuts the socket down while a request is in
    // flight, which wakes the blocked read without racing its close.
    std::lock_guard<std::mutex> lock(mutex_);
    aborted_ = true;
    if (client_) client_->stop();
    if (raw_) raw_->interrupt();
}

inline HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {
    // The user's extra CA files are read here, once, so a bad one is reported
    // before any request; every connection's trust store gets their certificates.
    for (const auto& file : options_.ca_files) {
        X509_STORE* scratch = X509_STORE_new();
        bool loaded = scratch && X509_STORE_load_file(scratch, file.c_str()) == 1;
        if (loaded) {
            STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(scratch);
            for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
                if (X509* cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i))) {
                    X509_up_ref(cert);
                    extra_cas_.push_back(cert);
                }
            }
        }
        X509_STORE_free(scratch);
        if (!loaded) {
            for (X509* cert : extra_cas_) X509_free(cert);
            throw error(errc::usage, "cannot read CA certificates from \"" + file + "\": it must be a readable PEM file");
        }
    }
}

inline HttpClient::~HttpClient() {
    idle_.clear();
    idle_raw_.clear();
    for (X509* cert : extra_cas_) X509_free(cert);
}

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
        route.connect_host = url.host;  // the proxy resolves and connects; --connect-to rules are not applied
        route.connect_port = url.port;
    }
    route.key = url.origin() + "|" + route.connect_host + ":" + std::to_string(route.connect_port) + "|" +
                (route.proxy ? route.proxy->str() : std::string());
    return route;
}

inline std::unique_ptr<HttpClient::Connection> HttpClient::checkout(const Url& url, const Route& where, Error& failure) {
    {
        std::lock_guard<std::mutex> lock(pool_mutex_);
        auto found = idle_.find(where.key);
        if (found != idle_.end()) {
            auto connection = std::move(found->second);
            idle_.erase(found);
            return connection;
        }
    }
    auto connection = std::make_unique<Connection>();
    connection->route = where;
    const std::string& connect_host = where.connect_host;
    std::uint16_t connect_port = where.connect_port;
    const auto& proxy = where.proxy;
    if (url.is_https()) {
        auto tls = std::make_unique<httplib::SSLClient>(url.host, connect_port);
        if (!tls->is_valid()) {
            failure = make_error(errc::network, "cannot create a TLS context for " + url.host);
            return nullptr;
        }
        // A trust store of its own for each connection: cpp-httplib adds the
        // system's default paths (which honour SSL_CERT_FILE / SSL_CERT_DIR)
        // to the store of every new TLS client during its first handshake,
        // and OpenSSL 3.0's certificate lookups are not safe to grow from
        // several threads at once. One shared store corrupted the heap when
        // several files started downloading together.
        X509_STORE* trust = X509_STORE_new();
        if (!trust) {
            failure = make_error(errc::network, "cannot create a certificate store for " + url.host);
            return nullptr;
        }
        for (X509* cert : extra_cas_) X509_STORE_add_cert(trust, cert);
        tls->set_ca_cert_store(trust);  // owned by the client's TLS context from here
        tls->enable_server_certificate_verification(true);
        connection->tls = tls.get();
        connection->client = std::move(tls);
    } else {
        connection->client = std::make_unique<httplib::ClientImpl>(url.host, connect_port);
    }
    auto& client = *connection->client;
    if (connect_host != url.host) client.set_hostname_addr_map({{url.host, detail::numeric_address(connect_host)}});
    if (proxy) {
        client.set_proxy(proxy->host, proxy->port);
        if (!proxy->userinfo.empty()) {
            std::string userinfo = percent_decode(proxy->userinfo);
            std::size_t colon = userinfo.find(':');
            client.set_proxy_basic_auth(userinfo.substr(0, colon), colon == std::string::npos ? "" : userinfo.substr(colon + 1));
        }
    }
    auto connect_us = std::chrono::duration_cast<std::chrono::microseconds>(options_.connect_timeout).count();
    auto idle_us = std::chrono::duration_cast<std::chrono::microseconds>(options_.idle_timeout).count();
    client.set_connection_timeout(connect_us / 1000000, connect_us % 1000000);
    client.set_read_timeout(idle_us / 1000000, idle_us % 1000000);
    client.set_write_timeout(idle_us / 1000000, idle_us % 1000000);
    client.set_keep_alive(true);
    client.set_follow_location(false);
    client.set_decompress(false);
    return connection;
}

inline void HttpClient::checkin(std::unique_ptr<Connection> connection) {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    if (idle_.size() >= 64) idle_.erase(idle_.begin());
    std::string key = connection->route.key;
    idle_.emplace(std::move(key), std::move(connection));
}

namespace detail {

/// cpp-httplib's failure, in the terms HttpClient::describe_failure uses.
inline TransportError transport_error(httplib::Error failure, httplib::SSLClient* tls) {
    TransportError out;
    switch (failure) {
    case httplib::Error::Connection: out.kind = TransportFailure::connect; break;
    case httplib::Error::ConnectionTimeout: out.kind = TransportFailure::connect_timeout; break;
    case httplib::Error::Read: out.kind = TransportFailure::read; break;
    case httplib::Error::Write: out.kind = TransportFailure::write; break;
    case httplib::Error::SSLConnection: out.kind = TransportFailure::tls_handshake; break;
    case httplib::Error::SSLLoadingCerts: out.kind = TransportFailure::tls_setup; break;
    case httplib::Error::SSLServerVerification:
        out.kind = TransportFailure::tls_verify;
        out.verify_code = tls ? tls->get_openssl_verify_result() : X509_V_OK;
        // The chain verified: it was cpp-httplib's own host name check that failed.
        if (out.verify_code == X509_V_OK) out.verify_code = X509_V_ERR_HOSTNAME_MISMATCH;
        break;
    case httplib::Error::Canceled: out.kind = TransportFailure::canceled; break;
    default:
        out.kind = TransportFailure::protocol;
        out.detail = httplib::to_string(failure);
        break;
    }
    return out;
}

}  // namespace detail

inline std::string HttpClient::describe_failure(const detail::TransportError& failure, const Url& url, const Route& route) const {
    using detail::TransportFailure;
    std::string where = url.authority();
    if (route.proxy)
        where += " (through the proxy " + route.proxy->authority() + ")";
    else if (route.connect_host != url.host || route.connect_port != url.port)
        where += " (via " + route.connect_host + ":" + std::to_string(route.connect_port) + ")";
    auto idle_s = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options_.idle_timeout).count());
    switch (failure.kind) {
    case TransportFailure::connect:
        return "could not connect to " + where + ": connection refused or host unreachable";
    case TransportFailure::connect_timeout:
        return "connecting to " + where + " timed out";
    case TransportFailure::read:
        return "the connection to " + where + " broke while reading (reset by the server, or no data for " + idle_s + " s)";
    case TransportFailure::write:
        return "the connection to " + where + " broke while sending the request";
    case TransportFailure::tls_handshake:
        return "the TLS handshake with " + where + " failed (is it really an https server?)";
    case TransportFailure::tls_setup:
        return "could not load the trusted CA certificates";
    case TransportFailure::tls_verify: {
        // Each cause has its own remedy; none of them goes away by retrying.
        long code = failure.verify_code;
        if (code == X509_V_ERR_HOSTNAME_MISMATCH || code == X509_V_ERR_IP_ADDRESS_MISMATCH)
            return "the TLS certificate of " + where + " is for another host name, not " + url.host +
                   ": the link may point at the wrong server, or something on the way intercepts TLS";
        std::string reason = code != X509_V_OK ? X509_verify_cert_error_string(code) : "certificate verification failed";
        if (code == X509_V_ERR_CERT_HAS_EXPIRED || code == X509_V_ERR_CERT_NOT_YET_VALID)
            return "the TLS certificate of " + where + " is not valid now (" + reason +
                   "): the server must renew it, or this machine's clock is wrong";
        return "the TLS certificate of " + where + " is not trusted: " + reason +
               "; if the server uses a private CA, pass --cacert FILE or set SSL_CERT_FILE";
    }
    case TransportFailure::canceled: return "the transfer from " + where + " was stopped";
    case TransportFailure::protocol:
        return "the answer from " + where + " is not valid HTTP/1.1: " + failure.detail;
    case TransportFailure::none: break;
    }
    return "request to " + where + " failed";
}

namespace detail {
/// A request another thread stopped through its RequestAbort (either transport).
inline Error request_stopped(const Url& url) {
    return make_error(errc::network, "the request to " + url.authority() + " was stopped");
}

/// Verification failures are refused, never retried: retrying cannot fix a certificate.
inline errc transport_errc(const TransportError& failure) {
    return failure.kind == TransportFailure::tls_verify || failure.kind == TransportFailure::tls_setup ? errc::unsafe
                                                                                                       : errc::network;
}
}  // namespace detail

inline HttpClient::HopOutcome HttpClient::exchange_with_httplib(const Url& url, const Route& where, const std::string& method,
                                                                const std::vector<Header>& headers, RequestAbort* abort,
                                                                const HeadHandler& on_head, const BodySink& on_body) {
    HopOutcome outcome;
    auto connection = checkout(url, where, outcome.failure);
    if (!connection) return outcome;
    httplib::Headers raw_headers(headers.begin(), headers.end());
    if (url.is_https() && connection->route.proxy) {
        // cpp-httplib 0.11 adds the proxy's credentials to every request,
        // including those inside the CONNECT tunnel, which the origin server
        // reads. A header of that name (empty) stops it; CONNECT itself,
        // built inside the library, still carries the credentials.
        raw_headers.emplace("Proxy-Authorization", "");
    }
    auto handle_head = [&](const httplib::Response& raw) {
        std::vector<Header> got(raw.headers.begin(), raw.headers.end());
        for (auto& [name, value] : got)
            if (detail::iequals(name, "Location")) value = detail::reencode_decoded_location(value);
        bool wanted = on_head(raw.status, std::move(got));
        if (!wanted) outcome.stopped_by_us = true;
        return wanted;
    };
    auto handle_body = [&](const char* data, std::size_t size) {
        if (on_body(data, size)) return true;
        outcome.stopped_by_us = true;
        return false;
    };
    if (abort && !abort->attach(connection->client.get())) {
        outcome.failure = detail::request_stopped(url);
        return outcome;
    }
    httplib::Result raw = method == "HEAD" ? connection->client->Head(url.target(), raw_headers)
                                           : connection->client->Get(url.target(), raw_headers, handle_head, handle_body);
    bool aborted = false;
    if (abort) {
        abort->detach();
        aborted = abort->aborted();
    }
    if (method == "HEAD" && raw) handle_head(raw.value());
    if (aborted) {
        outcome.stopped_by_us = false;
        outcome.failure = detail::request_stopped(url);
        return outcome;
    }
    if (!raw) {
        if (outcome.stopped_by_us) return outcome;  // the caller decided; the connection is not reusable
        auto failure = detail::transport_error(raw.error(), connection->tls);
        outcome.failure = make_error(detail::transport_errc(failure), describe_failure(failure, url, connection->route));
        return outcome;
    }
    outcome.stopped_by_us = false;
    outcome.completed = true;
    checkin(std::move(connection));
    return outcome;
}

inline HttpClient::HopOutcome HttpClient::exchange_raw(const Url& url, const Route& where, const std::string& method,
                                                       const std::vector<Header>& headers, RequestAbort* abort,
                                                       const HeadHandler& on_head, const BodySink& on_body) {
    HopOutcome outcome;
    std::string request = method + " " + url.target() + " HTTP/1.1\r\n";
    for (const auto& [name, value] : headers) {
        if (name.find_first_of("\r\n:") != std::string::npos || value.find_first_of("\r\n") != std::string::npos) {
            outcome.failure = make_error(errc::usage, "the header \"" + name + "\" cannot be sent: it contains a line break");
            return outcome;
        }
        request += name + ": " + value + "\r\n";
    }
    request += "\r\n";
    auto stopped = [&] {
        outcome.failure = detail::request_stopped(url);
        return outcome;
    };
    // A kept-alive connection may have been closed by the server while it
    // sat in the pool; a request that got nothing back on one is sent once
    // more on a new connection.
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::unique_ptr<detail::RawConnection> connection;
        if (attempt == 0) {
            std::lock_guard<std::mutex> lock(pool_mutex_);
            auto found = idle_raw_.find(where.key);
            if (found != idle_raw_.end()) {
                connection = std::move(found->second);
                idle_raw_.erase(found);
            }
        }
        bool pooled = connection != nullptr;
        if (!connection) connection = std::make_unique<detail::RawConnection>();
        if (abort && !abort->attach(connection.get())) return stopped();
        struct Detach {
            RequestAbort* abort;
            ~Detach() {
                if (abort) abort->detach();
            }
        } detach{abort};
        auto fail = [&] {
            if (abort && abort->aborted()) return stopped();
            const auto& failure = connection->failure();
            outcome.failure = make_error(detail::transport_errc(failure), describe_failure(failure, url, where));
            return outcome;
        };
        if (!pooled && !connection->connect(url.host, where.connect_host, where.connect_port, url.is_https(), extra_cas_,
                                            options_.connect_timeout, options_.idle_timeout))
            return fail();
        detail::RawResponseHead head;
        if (!connection->send_all(request) || !connection->read_head(head)) {
            if (pooled && connection->nothing_received() && !(abort && abort->aborted())) continue;
            return fail();
        }
        if (!on_head(head.status, head.headers)) {
            outcome.stopped_by_us = true;
            return outcome;
        }
        bool stopped_by_sink = false;
        if (!connection->read_body(head, method == "HEAD", on_body, stopped_by_sink)) return fail();
        if (abort && abort->aborted()) return stopped();
        if (stopped_by_sink) {
            outcome.stopped_by_us = true;
            return outcome;
        }
        outcome.completed = true;
        if (connection->reusable()) {
            if (abort) abort->detach();
            detach.abort = nullptr;
            std::lock_guard<std::mutex> lock(pool_mutex_);
            if (idle_raw_.size() >= 64) idle_raw_.erase(idle_raw_.begin());
            idle_raw_.emplace(where.key, std::move(connection));
        }
        return outcome;
    }
    return outcome;  // not reached: the second attempt always returns
}

inline Result<HttpResponse> HttpClient::stream(const HttpRequest& request, const ResponseCheck& check, const BodySink& sink) {
    if (!request.abort && options_.request_deadline.count() > 0) {
        // Nobody watches this request: a watchdog of our own stops it at the deadline.
        RequestAbort watchdog_abort;
        HttpRequest watched = request;
        watched.abort = &watchdog_abort;
        std::mutex mutex;
        std::condition_variable finished_changed;
        bool finished = false;
        bool expired = false;
        auto deadline = std::chrono::steady_clock::now() + options_.request_deadline;
        std::thread watchdog([&] {
            // Nothing here is expected to throw; should it, the request keeps
            // its own idle timeout and the process lives.
            detail::run_guarded(
                [&] {
                    std::unique_lock<std::mutex> lock(mutex);
                    if (!finished_changed.wait_until(lock, deadline, [&] { return finished; })) {
                        expired = true;
                        lock.unlock();
                        watchdog_abort.abort();
                    }
                },
                [](const std::string&) {});
        });
        auto result = stream(watched, check, sink);
        {
            std::lock_guard<std::mutex> lock(mutex);
            finished = true;
        }
        finished_changed.notify_all();
        watchdog.join();
        if (expired && !result) {
            auto seconds = std::chrono::duration_cast<std::chrono::seconds>(options_.request_deadline).count();
            return make_error(errc::network, "the request to " + request.url.authority() + " took longer than " +
                                                 std::to_string(seconds) +
                                                 " s; the server keeps the answer coming too slowly or never finishes it");
        }
        return result;
    }
    Url url = request.url;
    std::vector<Url> chain;
    bool scoped_allowed = true;
    const std::string scoped_origin = request.url.origin();
    std::string method = request.method;
    for (int hop = 0;; ++hop) {
        if (url.origin() != scoped_origin) scoped_allowed = false;  // never re-sent, even if a later hop comes back
        std::vector<Header> headers;
        headers.emplace_back("Host", url.authority());
        headers.emplace_back("User-Agent", options_.user_agent);
        headers.emplace_back("Accept-Encoding", "identity");
        for (const auto& header : request.headers) headers.push_back(header);
        if (scoped_allowed)
            for (const auto& header : request.scoped_headers) headers.push_back(header);
        if (!url.userinfo.empty() && scoped_allowed) {
            // user:pass@host in a config URL becomes Basic auth for that host only.
            headers.emplace_back("Authorization", "Basic " + detail::base64_encode(percent_decode(url.userinfo)));
        }

        HttpResponse response;
        response.url = url;
        response.redirects = chain;
        bool follow = false;
        auto on_head = [&](int status, std::vector<Header> got) {
            response.status = status;
            response.headers = std::move(got);
            if (response.is_redirect() && response.header("Location") && request.redirects != RedirectPolicy::none) {
                std::string location = *response.header("Location");
                bool relative = location.find("://") == std::string::npos && !detail::starts_with(location, "//");
                follow = request.redirects == RedirectPolicy::follow || relative;
            }
            if (follow) return true;  // read and discard the redirect's body so the connection stays usable
            return !check || check(response);
        };
        auto on_body = [&](const char* data, std::size_t size) { return follow || !sink || sink(data, size); };
        Route where = route(url);
        bool raw_transport = options_.transport == HttpOptions::Transport::own && !where.proxy;
        HopOutcome outcome = raw_transport ? exchange_raw(url, where, method, headers, request.abort, on_head, on_body)
                                           : exchange_with_httplib(url, where, method, headers, request.abort, on_head, on_body);
        if (outcome.stopped_by_us) return response;  // the caller decided
        if (!outcome.completed) return outcome.failure;
        if (!follow) return response;

        if (hop + 1 > options_.max_redirects)
            return make_error(errc::network, "too many redirects (more than " + std::to_string(options_.max_redirects) +
                                                 ") starting at " + request.url.redacted());
        auto next = resolve_reference(url, *response.header("Location"));
        if (!next) return make_error(errc::network, "bad redirect from " + url.redacted() + ": " + next.error().message);
        if (url.is_https() && !next->is_https())
            return make_error(errc::unsafe, "refusing the redirect from " + url.redacted() + " to the unencrypted " +
                                                next->redacted() + " (https to http would expose the download)");
        if (response.status == 303) method = method == "HEAD" ? "HEAD" : "GET";
        chain.push_back(next.value());
        url = std::move(next).value();
    }
}

inline Result<HttpResponse> HttpClient::fetch(const HttpRequest& request, std::size_t max_body) {
    std::string body;
    bool too_big = false;
    auto result = stream(request, nullptr, [&](const char* data, std::size_t size) {
        if (body.size() + size > max_body) {
            too_big = true;
            return false;
        }
        body.append(data, size);
        return true;
    });
    if (!result) return result;
    if (too_big)
        return make_error(errc::network, "the answer from " + result->url.redacted() + " is larger than " +
                                             std::to_string(max_body) + " bytes, which is not what was expected here");
    result->body = std::move(body);
    return result;
}

}  // namespace provision

#endif
