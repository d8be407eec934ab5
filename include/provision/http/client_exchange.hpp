// SPDX-License-Identifier: MIT
// provision: how HttpClient carries a request: each hop is one
// exchange on a pooled or new connection; stream() follows redirects itself,
// dropping scoped headers once a hop leaves their origin, and stops a request
// nobody watches at the client's deadline.
// Before the guard: client.hpp includes its definitions, this file in its
// place among them, whichever of them is included first.
#include "client.hpp"

#ifndef PROVISION_HTTP_CLIENT_EXCHANGE_HPP
#define PROVISION_HTTP_CLIENT_EXCHANGE_HPP

namespace provision {

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

inline std::unique_ptr<detail::RawConnection> HttpClient::take_idle(const std::string& key) {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    auto found = idle_.find(key);
    if (found == idle_.end()) return nullptr;
    auto connection = std::move(found->second);
    idle_.erase(found);
    return connection;
}

inline void HttpClient::keep_idle(const std::string& key, std::unique_ptr<detail::RawConnection> connection) {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    if (idle_.size() >= 64) idle_.erase(idle_.begin());  // the oldest key's first: a bound, not a policy
    idle_.emplace(key, std::move(connection));
}

inline Result<std::string> HttpClient::request_text(const Url& url, const Route& where, const std::string& method,
                                                    const std::vector<Header>& headers) {
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
            return make_error(errc::usage,
                              "the header \"" + shown + "\" cannot be sent: it contains a line break or a NUL");
        }
        request += name + ": " + value + "\r\n";
    }
    request += "\r\n";
    return request;
}

inline HttpClient::HopOutcome HttpClient::exchange(const Url& url, const Route& where, const std::string& method,
                                                   const std::vector<Header>& headers, RequestAbort* abort,
                                                   const HeadHandler& on_head, const BodySink& on_body) {
    HopOutcome outcome;
    auto request = request_text(url, where, method, headers);
    if (!request) {
        outcome.failure = request.error();
        return outcome;
    }
    auto stopped = [&] {
        outcome.failure = detail::request_stopped(url);
        return outcome;
    };
    // A kept-alive connection may have been closed by the server while it
    // sat in the pool; a request that got nothing back on one is sent once
    // more on a new connection.
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::unique_ptr<detail::RawConnection> connection = attempt == 0 ? take_idle(where.key) : nullptr;
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
        if (!connection->send_all(request.value()) || !connection->read_head(head)) {
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
            keep_idle(where.key, std::move(connection));
        }
        return outcome;
    }
    return outcome;  // not reached: the second attempt always returns
}

inline std::vector<Header> HttpClient::hop_headers(const HttpRequest& request, const Url& url,
                                                   bool scoped_allowed) const {
    std::vector<Header> headers;
    headers.emplace_back("Host", url.authority());
    headers.emplace_back("User-Agent", options_.user_agent);
    headers.emplace_back("Accept-Encoding", "identity");
    for (const auto& header : request.headers) headers.push_back(header);
    if (!scoped_allowed) return headers;
    for (const auto& header : request.scoped_headers) headers.push_back(header);
    // user:pass@host in a config URL becomes Basic auth for that host only.
    if (!url.userinfo.empty())
        headers.emplace_back("Authorization", "Basic " + detail::base64_encode(percent_decode(url.userinfo)));
    return headers;
}

inline Result<HttpResponse> HttpClient::stream(const HttpRequest& request, const ResponseCheck& check,
                                               const BodySink& sink) {
    // Nobody watches this request: a watchdog of our own stops it at the deadline.
    if (!request.abort && options_.request_deadline.count() > 0) return stream_with_deadline(request, check, sink);
    Url url = request.url;
    std::vector<Url> chain;
    bool scoped_allowed = true;
    const std::string scoped_origin = request.url.origin();
    std::string method = request.method;
    for (int hop = 0;; ++hop) {
        if (url.origin() != scoped_origin) scoped_allowed = false;  // never re-sent, even if a later hop comes back
        std::vector<Header> headers = hop_headers(request, url, scoped_allowed);

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

inline Result<HttpResponse> HttpClient::stream_with_deadline(const HttpRequest& request, const ResponseCheck& check,
                                                             const BodySink& sink) {
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

#endif  // PROVISION_HTTP_CLIENT_EXCHANGE_HPP
