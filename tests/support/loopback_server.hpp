// SPDX-License-Identifier: MIT
// provision tests: a real HTTP(S) server on 127.0.0.1, one per test.
//
// Tests describe a service by registering ordinary cpp-httplib handlers on
// server(), then point the code under test at url(...) or, for a real host name
// routed with --connect-to, at url_for(host, ...). The fixture records every
// request before its handler runs, so a test can assert on what was asked for
// (method, target with query, headers) and on how many body bytes were served.
//
// cpp-httplib's feature macros must be identical in every translation unit of
// a program (they change class layouts), so this header refuses to compile
// without the three the Debian library was built with.
#ifndef PROVISION_TEST_SUPPORT_LOOPBACK_SERVER_HPP
#define PROVISION_TEST_SUPPORT_LOOPBACK_SERVER_HPP

#if !defined(CPPHTTPLIB_OPENSSL_SUPPORT) || !defined(CPPHTTPLIB_ZLIB_SUPPORT) || !defined(CPPHTTPLIB_BROTLI_SUPPORT)
#error "compile tests with -DCPPHTTPLIB_OPENSSL_SUPPORT -DCPPHTTPLIB_ZLIB_SUPPORT -DCPPHTTPLIB_BROTLI_SUPPORT"
#endif

#include <httplib.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "test_ca.hpp"

namespace provision_test {

/// One request as the server saw it, captured before its handler ran.
struct RecordedRequest {
    std::string method;
    std::string target;  ///< path including the query string, as sent
    std::string path;    ///< path without the query string, percent-decoded
    httplib::Headers headers;
    int remote_port = 0;  ///< the client's port: requests with the same one came over one connection

    std::string header(const std::string& name) const {
        auto found = headers.find(name);
        return found == headers.end() ? std::string() : found->second;
    }
    bool has_header(const std::string& name) const { return headers.find(name) != headers.end(); }
};

/// How serve_bytes delivers a body.
struct ServeOptions {
    std::string content_type = "application/octet-stream";
    /// Stop (and drop the connection) after this many body bytes of the
    /// response: simulates a transfer cut off mid-way.
    std::optional<std::uint64_t> abort_after;
    /// Per-response rate cap in bytes per second (0: as fast as possible),
    /// like nginx's limit_rate: each connection gets this much.
    std::uint64_t bytes_per_second = 0;
    /// Before sending the byte at this file offset, go silent for stall_for
    /// (once per response that covers it): a stalled connection.
    std::optional<std::uint64_t> stall_at;
    std::chrono::milliseconds stall_for{0};
    /// Answer every request with the whole body and 200, as a server without
    /// Range support does.
    bool ignore_range = false;
    /// Called once per response right after its first chunk went out (headers
    /// and some body are with the client, the response still counts as
    /// active): a test holds it there until something else has happened.
    std::function<void()> after_first_chunk;
};

/// The byte range a request asks of a body of `size` bytes.
struct ByteRange {
    enum class Kind { whole, partial, unsatisfiable } kind = Kind::whole;
    std::uint64_t first = 0;  ///< partial: first byte served
    std::uint64_t last = 0;   ///< partial: last byte served (inclusive)
};

/// Interprets a Range header the way a plain file server does: one
/// `bytes=a-b`, `bytes=a-` or `bytes=-n` range is honoured (clamped to the
/// body); a range starting at or past the end is unsatisfiable; anything else
/// (other units, several ranges, garbage) is ignored and the whole body served.
inline ByteRange parse_byte_range(const std::string& header, std::uint64_t size) {
    ByteRange whole;
    const std::string prefix = "bytes=";
    if (header.compare(0, prefix.size(), prefix) != 0) return whole;
    std::string spec = header.substr(prefix.size());
    if (spec.find(',') != std::string::npos) return whole;
    auto dash = spec.find('-');
    if (dash == std::string::npos) return whole;
    std::string first_text = spec.substr(0, dash);
    std::string last_text = spec.substr(dash + 1);
    auto all_digits = [](const std::string& s) {
        return !s.empty() && s.size() <= 19 &&
               std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (!(first_text.empty() || all_digits(first_text)) || !(last_text.empty() || all_digits(last_text))) return whole;
    if (first_text.empty() && last_text.empty()) return whole;

    ByteRange range;
    range.kind = ByteRange::Kind::partial;
    if (first_text.empty()) {  // suffix: the last n bytes
        std::uint64_t suffix = std::stoull(last_text);
        if (suffix == 0 || size == 0) return ByteRange{ByteRange::Kind::unsatisfiable};
        range.first = suffix >= size ? 0 : size - suffix;
        range.last = size - 1;
        return range;
    }
    range.first = std::stoull(first_text);
    range.last = last_text.empty() ? std::numeric_limits<std::uint64_t>::max() : std::stoull(last_text);
    if (range.last < range.first) return whole;  // syntactically invalid: ignore it (RFC 9110 14.2)
    if (range.first >= size) return ByteRange{ByteRange::Kind::unsatisfiable};
    range.last = std::min(range.last, size - 1);
    return range;
}

class LoopbackServer {
  public:
    /// An HTTPS server presenting a certificate for `cert_names` signed by
    /// test_ca() (or already expired, with `expired`).
    static std::unique_ptr<LoopbackServer> https(std::vector<std::string> cert_names = {"localhost", "127.0.0.1"},
                                                 bool expired = false) {
        LeafFiles leaf = test_ca().issue(cert_names, expired);
        return https_with(leaf);
    }

    /// An HTTPS server presenting the given certificate and key files (for
    /// self-signed or otherwise unusual certificates).
    static std::unique_ptr<LoopbackServer> https_with(const LeafFiles& leaf) {
        auto server = std::make_unique<httplib::SSLServer>(leaf.cert_path.c_str(), leaf.key_path.c_str());
        if (!server->is_valid()) throw std::runtime_error("loopback server: cannot load " + leaf.cert_path);
        return std::unique_ptr<LoopbackServer>(new LoopbackServer(std::move(server), "https"));
    }

    /// A plain-HTTP server.
    static std::unique_ptr<LoopbackServer> http() {
        return std::unique_ptr<LoopbackServer>(new LoopbackServer(std::make_unique<httplib::Server>(), "http"));
    }

    ~LoopbackServer() {
        server_->stop();
        if (thread_.joinable()) thread_.join();
    }

    LoopbackServer(const LoopbackServer&) = delete;
    LoopbackServer& operator=(const LoopbackServer&) = delete;

    /// Register handlers here (Get, Post, ...). Handlers run on the server's
    /// pool threads, so anything they share with the test needs a lock or an
    /// atomic, and must be declared before the server: a handler or content
    /// provider can outlive the client that asked (it runs until its next
    /// write fails), and only this server's destructor waits for it
    /// (tools/check-server-lifetimes.py checks the order). Do not replace the pre-routing handler directly; use
    /// on_pre_routing(), which keeps request recording intact.
    httplib::Server& server() { return *server_; }

    int port() const { return port_; }
    const std::string& scheme() const { return scheme_; }

    /// "https://127.0.0.1:PORT": the form httplib::Client's one-argument
    /// constructor takes.
    std::string origin() const { return scheme_ + "://127.0.0.1:" + std::to_string(port_); }

    /// "https://127.0.0.1:PORT/path" (a leading '/' on path is optional).
    std::string url(const std::string& path = "/") const { return url_for("127.0.0.1", path); }

    /// "https://HOST:PORT/path": for tests that route a real host name to this
    /// server with a --connect-to style mapping.
    std::string url_for(const std::string& host, const std::string& path = "/") const {
        std::string slash = (!path.empty() && path.front() == '/') ? "" : "/";
        return scheme_ + "://" + host + ":" + std::to_string(port_) + slash + path;
    }

    /// Runs before routing on every request, after it has been recorded.
    void on_pre_routing(httplib::Server::HandlerWithResponse handler) {
        std::lock_guard<std::mutex> lock(mutex_);
        pre_routing_ = std::move(handler);
    }

    /// Every request served so far, oldest first.
    std::vector<RecordedRequest> requests() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return requests_;
    }

    /// How many requests had a target (path plus query) starting with `prefix`.
    std::size_t count(const std::string& target_prefix = "") const {
        std::lock_guard<std::mutex> lock(mutex_);
        return static_cast<std::size_t>(std::count_if(
            requests_.begin(), requests_.end(),
            [&](const RecordedRequest& r) { return r.target.compare(0, target_prefix.size(), target_prefix) == 0; }));
    }

    /// Body bytes handed to connections by serve_bytes, over all requests.
    /// A chunk is counted before it is written (so the count is complete by the
    /// time a client has the bytes) and taken back if the write fails.
    std::uint64_t bytes_sent() const { return bytes_sent_.load(); }

    /// Waits (at most `timeout`) until no serve_bytes response is being sent.
    /// A client that gave up or was killed leaves its response running until
    /// the server's next write fails, and that write is counted for a moment
    /// (see bytes_sent): read a baseline of bytes_sent only once this is true.
    bool wait_until_idle(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (active_.load() != 0) {
            if (std::chrono::steady_clock::now() >= deadline) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        return true;
    }

    /// The most responses serve_bytes was sending at the same time.
    std::size_t peak_active() const { return peak_active_.load(); }
    /// Forget the peak (e.g. between two runs of a test).
    void reset_peak_active() { peak_active_ = active_.load(); }

    /// Answers `req` with `body`, honouring a single Range (206 with
    /// Content-Range; 416 with `Content-Range: bytes */SIZE` when it starts past
    /// the end) and advertising Accept-Ranges. The body is streamed through a
    /// content provider, so HEAD sends headers only and large bodies go out in
    /// pieces. Call it from a handler; set extra headers before or after.
    void serve_bytes(httplib::Response& res, const httplib::Request& req, std::string body,
                     const ServeOptions& options = {}) {
        serve_bytes(res, req, std::make_shared<const std::string>(std::move(body)), options);
    }

    /// Same, sharing one body between requests without copying it.
    void serve_bytes(httplib::Response& res, const httplib::Request& req, std::shared_ptr<const std::string> body,
                     const ServeOptions& options = {}) {
        const std::uint64_t size = body->size();
        // cpp-httplib applies Range itself to whatever a handler returns, but
        // it does not answer 416 and would slice our slice again. We own the
        // range logic here, so clear its parsed copy. The Request object is the
        // server's own mutable one, handed to handlers by const reference.
        const_cast<httplib::Request&>(req).ranges.clear();

        if (!options.ignore_range) res.set_header("Accept-Ranges", "bytes");
        ByteRange range = options.ignore_range ? ByteRange{} : parse_byte_range(req.get_header_value("Range"), size);
        if (range.kind == ByteRange::Kind::unsatisfiable) {
            res.status = 416;
            res.set_header("Content-Range", "bytes */" + std::to_string(size));
            return;
        }
        std::uint64_t first = 0;
        std::uint64_t length = size;
        if (range.kind == ByteRange::Kind::partial) {
            first = range.first;
            length = range.last - range.first + 1;
            res.status = 206;
            res.set_header("Content-Range", "bytes " + std::to_string(range.first) + "-" + std::to_string(range.last) +
                                                "/" + std::to_string(size));
        } else {
            res.status = 200;
        }
        if (length == 0) {  // a provider with length 0 means "length unknown" to cpp-httplib
            res.set_content("", options.content_type);
            return;
        }

        std::uint64_t limit = options.abort_after.value_or(std::numeric_limits<std::uint64_t>::max());
        std::atomic<std::uint64_t>* counter = &bytes_sent_;
        // Lives as long as the response: counts the responses being sent.
        auto in_flight = std::make_shared<ActiveResponse>(active_, peak_active_);
        auto started = std::chrono::steady_clock::now();
        std::uint64_t rate = options.bytes_per_second;
        std::optional<std::uint64_t> stall_at = options.stall_at;
        std::chrono::milliseconds stall_for = options.stall_for;
        auto stalled = std::make_shared<bool>(false);
        auto after_first_chunk = options.after_first_chunk;
        res.set_content_provider(
            static_cast<std::size_t>(length), options.content_type,
            [body, first, limit, counter, in_flight, started, rate, stall_at, stall_for, stalled, after_first_chunk](
                std::size_t offset, std::size_t want, httplib::DataSink& sink) {
                if (offset >= limit) return false;  // cut the connection here
                std::size_t chunk = std::min<std::size_t>(want, rate ? 16 * 1024 : 64 * 1024);
                chunk = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, limit - offset));
                if (stall_at && !*stalled && first + offset <= *stall_at && *stall_at < first + offset + chunk) {
                    if (*stall_at > first + offset) {
                        chunk =
                            static_cast<std::size_t>(*stall_at - first - offset);  // send up to the stall point first
                    } else {
                        *stalled = true;
                        std::this_thread::sleep_for(stall_for);
                    }
                }
                if (rate) {  // sleep until this chunk is due
                    auto due = started + std::chrono::microseconds((offset + chunk) * 1000000 / rate);
                    std::this_thread::sleep_until(due);
                }
                counter->fetch_add(chunk);
                if (!sink.write(body->data() + first + offset, chunk)) {
                    counter->fetch_sub(chunk);
                    return false;
                }
                if (offset == 0 && after_first_chunk) after_first_chunk();
                return true;
            });
    }

  private:
    LoopbackServer(std::unique_ptr<httplib::Server> server, std::string scheme)
        : server_(std::move(server)), scheme_(std::move(scheme)) {
        // A small pool: every test gets its own server, and cpp-httplib's
        // default (one thread per core, at least 8) adds up over a suite.
        server_->new_task_queue = [] { return new httplib::ThreadPool(8); };
        // stop() does not interrupt a connection idling in keep-alive, so a
        // client that outlives its server delays teardown by this timeout.
        // One second keeps that cheap and still lets a client reuse a
        // connection within a test; raise it via server() if a test needs to.
        server_->set_keep_alive_timeout(1);
        server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
            httplib::Server::HandlerWithResponse hook;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                requests_.push_back(RecordedRequest{req.method, req.target, req.path, req.headers, req.remote_port});
                hook = pre_routing_;
            }
            return hook ? hook(req, res) : httplib::Server::HandlerResponse::Unhandled;
        });

        port_ = server_->bind_to_any_port("127.0.0.1");
        if (port_ <= 0) throw std::runtime_error("loopback server: cannot bind 127.0.0.1");
        thread_ = std::thread([this] {
            server_->listen_after_bind();
            stopped_ = true;
        });
        wait_until_accepting();
    }

    /// Returns once the accept loop runs and a TCP connect succeeds, so the
    /// first request of a test never races the server's start-up.
    void wait_until_accepting() {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!server_->is_running()) {
            if (stopped_ || std::chrono::steady_clock::now() > deadline) {
                server_->stop();
                if (thread_.joinable()) thread_.join();
                throw std::runtime_error("loopback server: did not start on port " + std::to_string(port_));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(static_cast<std::uint16_t>(port_));
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool connected = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
        if (fd >= 0) ::close(fd);
        if (!connected) {
            server_->stop();
            if (thread_.joinable()) thread_.join();
            throw std::runtime_error("loopback server: cannot connect to port " + std::to_string(port_));
        }
    }

    std::unique_ptr<httplib::Server> server_;
    std::string scheme_;
    int port_ = -1;
    std::thread thread_;
    std::atomic<bool> stopped_{false};

    mutable std::mutex mutex_;
    std::vector<RecordedRequest> requests_;
    httplib::Server::HandlerWithResponse pre_routing_;
    std::atomic<std::uint64_t> bytes_sent_{0};

    /// Counts a response in flight from construction to destruction.
    struct ActiveResponse {
        ActiveResponse(std::atomic<std::size_t>& active, std::atomic<std::size_t>& peak) : active_(active) {
            std::size_t now = ++active_;
            std::size_t seen = peak.load();
            while (now > seen && !peak.compare_exchange_weak(seen, now)) {
            }
        }
        ~ActiveResponse() { --active_; }
        std::atomic<std::size_t>& active_;
    };
    std::atomic<std::size_t> active_{0};
    std::atomic<std::size_t> peak_active_{0};
};

/// A bare TCP server on 127.0.0.1 for answers no HTTP library would send:
/// headers that never end, a body longer than its Content-Length, a reset in
/// the middle of the status line. Each connection's request head (up to the
/// blank line) is read first, then `respond` gets the socket and the head and
/// writes whatever it likes; send() with MSG_NOSIGNAL fails once the client
/// has gone, which is how endless responders notice. Plain HTTP only.
class RawLoopbackServer {
  public:
    using Responder = std::function<void(int fd, const std::string& head)>;

    explicit RawLoopbackServer(Responder respond) : respond_(std::move(respond)) {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (listener_ < 0) throw std::runtime_error("raw loopback server: no socket");
        int yes = 1;
        ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof address;
        if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
            ::listen(listener_, 16) != 0 ||
            ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
            ::close(listener_);
            throw std::runtime_error("raw loopback server: cannot listen on 127.0.0.1");
        }
        port_ = ntohs(address.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }

    ~RawLoopbackServer() {
        stopping_ = true;
        ::shutdown(listener_, SHUT_RDWR);  // wakes accept()
        if (acceptor_.joinable()) acceptor_.join();
        ::close(listener_);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            for (int fd : open_) ::shutdown(fd, SHUT_RDWR);  // wakes responders blocked in send/recv
        }
        for (auto& thread : connections_)
            if (thread.joinable()) thread.join();
    }

    RawLoopbackServer(const RawLoopbackServer&) = delete;
    RawLoopbackServer& operator=(const RawLoopbackServer&) = delete;

    int port() const { return port_; }
    std::string url(const std::string& path = "/") const {
        return "http://127.0.0.1:" + std::to_string(port_) + (!path.empty() && path.front() == '/' ? "" : "/") + path;
    }
    /// Connections accepted so far.
    std::size_t connections() const { return accepted_.load(); }
    /// True once the server is being torn down: endless responders stop.
    bool stopping() const { return stopping_.load(); }

    /// Writes all of `data`; false when the client is gone.
    static bool send_all(int fd, std::string_view data) {
        while (!data.empty()) {
            ssize_t sent = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
            if (sent < 0 && errno == EINTR) continue;
            if (sent <= 0) return false;
            data.remove_prefix(static_cast<std::size_t>(sent));
        }
        return true;
    }

  private:
    void accept_loop() {
        while (!stopping_) {
            int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                return;
            }
            ++accepted_;
            std::lock_guard<std::mutex> lock(mutex_);
            open_.push_back(fd);
            connections_.emplace_back([this, fd] { serve(fd); });
        }
    }

    void serve(int fd) {
        std::string head;
        char buffer[4096];
        while (head.find("\r\n\r\n") == std::string::npos && head.size() < 65536) {
            ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) break;
            head.append(buffer, static_cast<std::size_t>(got));
        }
        if (head.find("\r\n\r\n") != std::string::npos) respond_(fd, head);
        std::lock_guard<std::mutex> lock(mutex_);
        open_.erase(std::remove(open_.begin(), open_.end(), fd), open_.end());
        ::close(fd);
    }

    Responder respond_;
    int listener_ = -1;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> accepted_{0};
    std::thread acceptor_;
    std::mutex mutex_;
    std::vector<int> open_;
    std::vector<std::thread> connections_;
};

}  // namespace provision_test

#endif
