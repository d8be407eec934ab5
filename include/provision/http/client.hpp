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
    /// The request line and headers of one hop; an error for a header value
    /// that would end the header early (a CR, LF or NUL).
    static Result<std::string> request_text(const Url& url, const Route& where, const std::string& method,
                                            const std::vector<Header>& headers);
    /// The headers one hop sends: scoped ones (and user:pass@host) only while every hop stayed on their origin.
    std::vector<Header> hop_headers(const HttpRequest& request, const Url& url, bool scoped_allowed) const;
    /// stream() for a request without an abort handle, stopped at options_.request_deadline.
    Result<HttpResponse> stream_with_deadline(const HttpRequest& request, const ResponseCheck& check,
                                              const BodySink& sink);
    std::unique_ptr<detail::RawConnection> take_idle(const std::string& key);
    void keep_idle(const std::string& key, std::unique_ptr<detail::RawConnection> connection);
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

}  // namespace provision

// The definitions, apart so that this file reads as the API (each includes
// this file first):
#include "client_setup.hpp"
#include "client_exchange.hpp"

#endif
