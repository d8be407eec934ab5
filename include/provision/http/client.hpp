// SPDX-License-Identifier: MIT
// provision: every request the toolkit makes, and the policy over each hop.
//
// One transport carries them all, direct or through a proxy: the connection
// of our own in http/connection.hpp (why not cpp-httplib's client is said
// there), with one TLS set-up per client (http/tls_context.hpp), built
// once by the first https connection and shared read-only by all of them.
//
// Why we do not let the library follow redirects: credentials must be dropped
// the moment a redirect leaves the origin they belong to, https->http must be
// refused, and Hugging Face's metadata request must stop at absolute redirects.
// All of that needs to see every hop. Connections are kept per origin and
// reused; TLS verification is always on.
#ifndef PROVISION_HTTP_CLIENT_HPP
#define PROVISION_HTTP_CLIENT_HPP

#include "../header.hpp"
#include "../support/guarded.hpp"
#include "connection.hpp"
#include "tls_context.hpp"
#include "../error.hpp"
#include "proxy.hpp"
#include "../url.hpp"
#include "../version.hpp"

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
    std::vector<std::string> ca_files;  ///< extra trusted CAs (PEM), on top of the system store
    std::vector<ConnectTo> connect_to;  ///< first matching rule wins
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
    bool attach(detail::RawConnection* raw) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (aborted_) return false;
        raw_ = raw;
        return true;
    }
    void detach() {
        std::lock_guard<std::mutex> lock(mutex_);
        raw_ = nullptr;
    }

    mutable std::mutex mutex_;
    detail::RawConnection* raw_ = nullptr;
    bool aborted_ = false;
};

struct HttpRequest {
    std::string method = "GET";  ///< GET or HEAD
    Url url;
    std::vector<Header> headers;         ///< sent to every hop (Range, Accept, ...)
    std::vector<Header> scoped_headers;  ///< credentials and user headers: only to url's origin, dropped for good once
                                         ///< a redirect leaves it
    RedirectPolicy redirects = RedirectPolicy::follow;
    RequestAbort* abort = nullptr;  ///< optional: lets another thread stop this request
};

struct HttpResponse {
    int status = 0;
    std::vector<Header> headers;
    Url url;                     ///< the URL that produced this response
    std::vector<Url> redirects;  ///< the URLs we were redirected through, in order (not including the first)
    std::string body;            ///< filled by HttpClient::fetch only

    /// First value of a header, case-insensitive.
    std::optional<std::string> header(std::string_view name) const {
        for (const auto& [key, value] : headers)
            if (detail::iequals(key, name)) return value;
        return std::nullopt;
    }
    bool is_redirect() const {
        return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
    }
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
    /// Where a request for a URL connects, and the pool key of such connections.
    struct Route {
        std::string connect_host;  ///< the host, a --connect-to target, or the proxy
        std::uint16_t connect_port = 0;
        std::optional<Url> proxy;
        std::string key;  ///< origin + connect target (+ proxy): connections are only reused for the same
    };
    /// What one hop of a request produced.
    struct HopOutcome {
        bool completed = false;      ///< a response was read (its body as far as wanted)
        bool stopped_by_us = false;  ///< the check or the sink said stop
        Error failure;               ///< when !completed and !stopped_by_us
    };
    using HeadHandler = std::function<bool(int status, std::vector<Header> headers)>;

    Route route(const Url& url) const;
    HopOutcome exchange(const Url& url, const Route& where, const std::string& method,
                        const std::vector<Header>& headers, RequestAbort* abort, const HeadHandler& on_head,
                        const BodySink& on_body);
    std::string describe_failure(const detail::TransportError& failure, const Url& url, const Route& route) const;

    HttpOptions options_;
    /// The TLS set-up, made once by the first https connection (under
    /// tls_once_) and only read afterwards; tls_failure_ when it could not be.
    const detail::TlsClientContext* tls_context(Error& failure);
    std::once_flag tls_once_;
    std::shared_ptr<const detail::TlsClientContext> tls_;
    std::optional<Error> tls_failure_;
    std::mutex pool_mutex_;
    std::multimap<std::string, std::unique_ptr<detail::RawConnection>> idle_;  ///< by Route::key
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

namespace detail {
/// A request another thread stopped through its RequestAbort.
inline Error request_stopped(const Url& url) {
    return make_error(errc::network, "the request to " + url.authority() + " was stopped");
}

/// Verification failures are refused, never retried: retrying cannot fix a certificate.
inline errc transport_errc(const TransportError& failure) {
    return failure.kind == TransportFailure::tls_verify || failure.kind == TransportFailure::tls_setup ? errc::unsafe
                                                                                                       : errc::network;
}
}  // namespace detail

namespace detail {
/// "Basic ..." for the user-info of a proxy URL (percent-decoded), or "".
inline std::string proxy_authorization(const Url& proxy) {
    return proxy.userinfo.empty() ? std::string() : "Basic " + base64_encode(percent_decode(proxy.userinfo));
}
}  // namespace detail

inline HttpClient::HopOutcome HttpClient::exchange(const Url& url, const Route& where, const std::string& method,
                                                   const std::vector<Header>& headers, RequestAbort* abort,
                                                   const HeadHandler& on_head, const BodySink& on_body) {
    HopOutcome outcome;
    // Through a proxy, https is tunnelled (the proxy sees only host and port)
    // and http is asked of the proxy in absolute form, with the proxy's
    // credentials on that request alone; directly, the origin form.
    bool plain_via_proxy = where.proxy && !url.is_https();
    std::string request = method + " " +
                          (plain_via_proxy ? url.scheme + "://" + url.authority() + url.target() : url.target()) +
                          " HTTP/1.1\r\n";
    if (plain_via_proxy && !where.proxy->userinfo.empty())
        request += "Proxy-Authorization: " + detail::proxy_authorization(*where.proxy) + "\r\n";
    for (const auto& [name, value] : headers) {
        // Every outgoing header, tokens and cookies included, on every path:
        // a CR, LF or NUL would end the header early or smuggle another one.
        if (name.find_first_of(std::string_view("\r\n:\0", 4)) != std::string::npos ||
            value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
            std::string shown = name;
            for (auto& c : shown)
                if (static_cast<unsigned char>(c) < 0x20) c = '?';
            outcome.failure = make_error(
                errc::usage, "the header \"" + shown + "\" cannot be sent: it contains a line break or a NUL");
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
            auto found = idle_.find(where.key);
            if (found != idle_.end()) {
                connection = std::move(found->second);
                idle_.erase(found);
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
        if (!pooled) {
            detail::ConnectTarget target;
            target.verify_host = url.host;
            target.connect_host = where.connect_host;
            target.connect_port = where.connect_port;
            target.tls = url.is_https();
            if (where.proxy && url.is_https()) {
                target.tunnel_to = url.authority();
                target.proxy_authorization = detail::proxy_authorization(*where.proxy);
            }
            const detail::TlsClientContext* tls = nullptr;
            if (target.tls && !(tls = tls_context(outcome.failure))) return outcome;
            if (!connection->connect(target, tls, options_.connect_timeout, options_.idle_timeout)) return fail();
        }
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
            if (idle_.size() >= 64) idle_.erase(idle_.begin());
            idle_.emplace(where.key, std::move(connection));
        }
        return outcome;
    }
    return outcome;  // not reached: the second attempt always returns
}

inline Result<HttpResponse> HttpClient::stream(const HttpRequest& request, const ResponseCheck& check,
                                               const BodySink& sink) {
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
            return make_error(errc::network,
                              "the request to " + request.url.authority() + " took longer than " +
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
        HopOutcome outcome = exchange(url, where, method, headers, request.abort, on_head, on_body);
        if (outcome.stopped_by_us) return response;  // the caller decided
        if (!outcome.completed) return outcome.failure;
        if (!follow) return response;

        if (hop + 1 > options_.max_redirects)
            return make_error(errc::network, "too many redirects (more than " + std::to_string(options_.max_redirects) +
                                                 ") starting at " + request.url.redacted());
        auto next = resolve_reference(url, *response.header("Location"));
        if (!next)
            return make_error(errc::network, "bad redirect from " + url.redacted() + ": " + next.error().message);
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
