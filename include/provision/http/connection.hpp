// SPDX-License-Identifier: MIT
// provision: HTTP/1.1 over a socket of our own, for every request.
//
// Why not cpp-httplib: Debian's build of it (0.11) reads a body 4 KiB at a
// time with a poll() before every recv() (about 520,000 system calls per GiB:
// a quarter of the CPU time of a loopback download, and it could not keep up
// with `curl -o`, see BENCHMARKS.md), percent-decodes every response header
// value, accepts a certificate's subject CN even when it has SANs, grows a
// header line without bound, and its writes can raise SIGPIPE. This
// connection asks the kernel for up to 256 KiB per call, hands those bytes on
// from its own buffer, and sends through the no-SIGPIPE socket BIO. It speaks
// directly or through an http:// proxy (a CONNECT tunnel for https, the
// absolute form for http). The redirect, credential and error policy is
// HttpClient's; the TLS set-up is the shared TlsClientContext.
#ifndef PROVISION_HTTP_CONNECTION_HPP
#define PROVISION_HTTP_CONNECTION_HPP

#include "../url.hpp"
#include "content_range.hpp"
#include "response_head.hpp"
#include "socket_bio.hpp"
#include "tls_context.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace provision {
namespace detail {

/// Why an exchange failed below HTTP. HttpClient turns these into sentences
/// (the same ones for this connection and for cpp-httplib's).
enum class TransportFailure {
    none,
    connect,  ///< refused or unreachable
    connect_timeout,
    write,          ///< the request could not be sent
    read,           ///< reset, closed early, or idle past the read timeout
    tls_handshake,  ///< not TLS, or no common protocol
    tls_verify,     ///< the certificate chain or name did not verify (see verify_code)
    tls_setup,      ///< no TLS session could be made
    proxy_refused,  ///< the proxy did not open the tunnel (see proxy_status)
    protocol,       ///< the answer is not HTTP/1.x as we can read it (see detail)
    canceled,       ///< interrupted by another thread
};

struct TransportError {
    TransportFailure kind = TransportFailure::none;
    long verify_code = 0;  ///< OpenSSL's verification result, for tls_verify
    int proxy_status = 0;  ///< the proxy's answer to CONNECT, for proxy_refused
    std::string detail;    ///< for protocol
};

/// Where and how one connection is made.
struct ConnectTarget {
    std::string verify_host;   ///< the URL's host: what the TLS certificate must name
    std::string connect_host;  ///< where TCP goes: the host, a --connect-to target or the proxy
    std::uint16_t connect_port = 0;
    bool tls = false;
    std::string tunnel_to;            ///< through a proxy: the "host:port" to CONNECT to before TLS
    std::string proxy_authorization;  ///< through a proxy: the CONNECT request's Proxy-Authorization value
};

/// One client connection. Used by one thread at a time, except interrupt(),
/// which any thread may call to stop a blocked connect or read.
class RawConnection {
  public:
    /// Largest single read: also the buffer size (allocated once per connection).
    static constexpr std::size_t read_size = 256 * 1024;
    /// A response head larger than this is refused (a server sending headers forever).
    static constexpr std::size_t max_head_size = 64 * 1024;
    /// Interim (1xx) answers skipped before the real one; a server sending them forever is cut off.
    static constexpr int max_interim_responses = 8;

    RawConnection() = default;
    ~RawConnection() { close(); }
    RawConnection(const RawConnection&) = delete;
    RawConnection& operator=(const RawConnection&) = delete;

    /// Connects as `target` says (a tunnel first, when it names one); with
    /// TLS, verifies the certificate against target.verify_host with `tls`.
    bool connect(const ConnectTarget& target, const TlsClientContext* tls, std::chrono::milliseconds connect_timeout,
                 std::chrono::milliseconds idle_timeout);

    bool send_all(std::string_view data);
    /// Reads the next response head, skipping 1xx interim responses.
    bool read_head(RawResponseHead& head);
    /// Reads the body framed by `head` (nothing for HEAD, 1xx, 204, 304),
    /// passing each piece to `sink`. A sink that returns false stops the read
    /// (`stopped` is set, and the connection cannot be reused).
    bool read_body(const RawResponseHead& head, bool head_request,
                   const std::function<bool(const char*, std::size_t)>& sink, bool& stopped);

    /// True after a response was read to its end on a connection that stays open.
    bool reusable() const { return reusable_; }
    /// True when nothing of a response has arrived yet on this use of the
    /// connection: a kept-alive connection the server has closed in between
    /// fails that way, and the request may be sent again on a new one.
    bool nothing_received() const { return !received_any_; }
    const TransportError& failure() const { return failure_; }
    /// Stops a connect or read in progress; the connection is dead afterwards.
    void interrupt();

  private:
    bool fail(TransportFailure kind, std::string detail = {});
    bool connect_tcp(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout);
    bool tunnel(const ConnectTarget& target);
    bool handshake(const std::string& host, const TlsClientContext& tls);
    /// Reads up to `size` bytes: > 0 bytes read, 0 the peer closed, < 0 failure_ is set.
    long receive(char* into, std::size_t size);
    /// After one SSL_read gave `got` bytes: adds the records OpenSSL already
    /// holds (read ahead), up to `size`. One SSL_read yields at most one
    /// 16 KiB record; gathered, a fast download arrives in pieces large
    /// enough to go to disk without a copy. SSL_has_pending() is also true
    /// for a record only partly arrived, and then the next SSL_read waits on
    /// the socket for its rest (bounded by the idle timeout and the
    /// watchdog, as any read is), holding the bytes gathered so far.
    long gather_decrypted(char* into, std::size_t size, std::size_t got);
    /// Appends what the socket has to the buffer; false on close or failure
    /// (failure_ set for failures only).
    bool fill();
    bool read_line(std::string& line, std::size_t limit);
    bool deliver(std::uint64_t count, const std::function<bool(const char*, std::size_t)>& sink, bool& stopped);
    void close();

    std::mutex mutex_;  ///< guards fd_ and interrupted_ against interrupt()
    int fd_ = -1;
    bool interrupted_ = false;
    SSL* ssl_ = nullptr;
    std::vector<char> buffer_;
    std::size_t begin_ = 0;  ///< unread bytes are buffer_[begin_, end_)
    std::size_t end_ = 0;
    bool reusable_ = false;
    bool received_any_ = false;
    TransportError failure_;
};

// ----------------------------------------------------------------------------
// implementation

inline bool is_ip_literal(const std::string& host) {
    unsigned char address[sizeof(in6_addr)];
    return ::inet_pton(AF_INET, host.c_str(), address) == 1 || ::inet_pton(AF_INET6, host.c_str(), address) == 1;
}

inline bool RawConnection::fail(TransportFailure kind, std::string detail) {
    if (failure_.kind == TransportFailure::none) {
        bool interrupted;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            interrupted = interrupted_;
        }
        failure_.kind = interrupted ? TransportFailure::canceled : kind;
        failure_.detail = std::move(detail);
    }
    reusable_ = false;
    return false;
}

inline void RawConnection::interrupt() {
    std::lock_guard<std::mutex> lock(mutex_);
    interrupted_ = true;
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);  // wakes a blocked read; the descriptor stays ours until close()
}

inline void RawConnection::close() {
    if (ssl_) SSL_free(ssl_);  // no close_notify: the peer learns from the closed socket
    ssl_ = nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

inline bool RawConnection::connect(const ConnectTarget& target, const TlsClientContext* tls,
                                   std::chrono::milliseconds connect_timeout, std::chrono::milliseconds idle_timeout) {
    if (!connect_tcp(target.connect_host, target.connect_port, connect_timeout)) return false;
    // Blocking reads and writes with a timeout: a read that waits longer than
    // idle_timeout fails as a broken connection.
    timeval idle{};
    idle.tv_sec = static_cast<time_t>(idle_timeout.count() / 1000);
    idle.tv_usec = static_cast<suseconds_t>((idle_timeout.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &idle, sizeof idle);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    buffer_.resize(read_size);
    if (!target.tunnel_to.empty() && !tunnel(target)) return false;
    if (target.tls) {
        if (!tls) return fail(TransportFailure::tls_setup);
        if (!handshake(target.verify_host, *tls)) return false;
    }
    return true;
}

inline bool RawConnection::tunnel(const ConnectTarget& target) {
    std::string request = "CONNECT " + target.tunnel_to + " HTTP/1.1\r\nHost: " + target.tunnel_to + "\r\n";
    if (!target.proxy_authorization.empty()) request += "Proxy-Authorization: " + target.proxy_authorization + "\r\n";
    request += "\r\n";
    RawResponseHead head;
    if (!send_all(request) || !read_head(head)) return false;
    if (head.status < 200 || head.status > 299) {
        fail(TransportFailure::proxy_refused);
        failure_.proxy_status = head.status;
        return false;
    }
    // The tunnel is open: from here the bytes are the origin's. A proxy that
    // sent more than its answer has put words in the origin's mouth.
    if (begin_ != end_) return fail(TransportFailure::protocol, "the proxy sent bytes after opening the tunnel");
    received_any_ = false;
    return true;
}

inline bool RawConnection::connect_tcp(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found)
        return fail(TransportFailure::connect);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool timed_out = false;
    bool connected = false;
    for (addrinfo* address = found; address && !connected; address = address->ai_next) {
        int fd =
            ::socket(address->ai_family, address->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, address->ai_protocol);
        if (fd < 0) continue;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (interrupted_) {
                ::close(fd);
                break;
            }
            fd_ = fd;
        }
        int started = ::connect(fd, address->ai_addr, address->ai_addrlen);
        if (started == 0) {
            connected = true;
        } else if (errno == EINPROGRESS) {
            // Waits in short slices so that interrupt() is noticed while connecting.
            while (true) {
                auto left =
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
                if (left.count() <= 0) {
                    timed_out = true;
                    break;
                }
                pollfd watch{fd, POLLOUT, 0};
                int ready = ::poll(&watch, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
                {
                    std::lock_guard<std::mutex> lock(mutex_);
                    if (interrupted_) break;
                }
                if (ready < 0 && errno == EINTR) continue;
                if (ready == 0) continue;
                int error = 0;
                socklen_t length = sizeof error;
                ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
                connected = ready > 0 && error == 0;
                break;
            }
        }
        if (!connected) {
            std::lock_guard<std::mutex> lock(mutex_);
            ::close(fd);
            fd_ = -1;
            if (interrupted_ || timed_out) break;
        }
    }
    ::freeaddrinfo(found);
    if (!connected) return fail(timed_out ? TransportFailure::connect_timeout : TransportFailure::connect);
    int flags = ::fcntl(fd_, F_GETFL);
    ::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
    return true;
}

inline bool RawConnection::handshake(const std::string& host, const TlsClientContext& tls) {
    ssl_ = tls.new_session(host, is_ip_literal(host));
    if (!ssl_) return fail(TransportFailure::tls_setup);
    BIO* socket = new_no_sigpipe_socket_bio(fd_);  // every byte OpenSSL writes goes out without SIGPIPE
    if (!socket) return fail(TransportFailure::tls_setup);
    SSL_set_bio(ssl_, socket, socket);  // the SSL owns it from here
    ERR_clear_error();
    if (SSL_connect(ssl_) != 1) {
        long verify = SSL_get_verify_result(ssl_);
        ERR_clear_error();
        if (verify != X509_V_OK) {
            fail(TransportFailure::tls_verify);
            failure_.verify_code = verify;
            return false;
        }
        return fail(TransportFailure::tls_handshake);
    }
    return true;
}

inline bool RawConnection::send_all(std::string_view data) {
    received_any_ = false;
    reusable_ = false;
    if (!ssl_) {
        while (!data.empty()) {
            ssize_t sent = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (sent < 0 && errno == EINTR) continue;
            if (sent <= 0) return fail(TransportFailure::write);
            data.remove_prefix(static_cast<std::size_t>(sent));
        }
        return true;
    }
    while (!data.empty()) {
        ERR_clear_error();
        int size = static_cast<int>(std::min<std::size_t>(data.size(), 1 << 20));
        int sent = SSL_write(ssl_, data.data(), size);
        if (sent <= 0) {
            ERR_clear_error();
            return fail(TransportFailure::write);
        }
        data.remove_prefix(static_cast<std::size_t>(sent));
    }
    return true;
}

inline long RawConnection::receive(char* into, std::size_t size) {
    while (true) {
        if (ssl_) {
            ERR_clear_error();
            int got = SSL_read(ssl_, into, static_cast<int>(std::min<std::size_t>(size, 1 << 30)));
            if (got > 0) return gather_decrypted(into, size, static_cast<std::size_t>(got));
            int why = SSL_get_error(ssl_, got);
            if (why == SSL_ERROR_ZERO_RETURN) return 0;
            if (why == SSL_ERROR_SYSCALL && errno == EINTR) continue;
            // A peer that closes without close_notify ends the stream, as it
            // does for plain TCP; a short body is caught by its framing.
            if (why == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0) return 0;
            ERR_clear_error();
            fail(TransportFailure::read);
            return -1;
        }
        ssize_t got = ::recv(fd_, into, size, 0);
        if (got >= 0) return static_cast<long>(got);
        if (errno == EINTR) continue;
        fail(TransportFailure::read);
        return -1;
    }
}

inline long RawConnection::gather_decrypted(char* into, std::size_t size, std::size_t got) {
    while (got < size && SSL_has_pending(ssl_) == 1) {
        ERR_clear_error();
        int more = SSL_read(ssl_, into + got, static_cast<int>(std::min<std::size_t>(size - got, 1 << 30)));
        if (more <= 0) {
            // What was read stands; the next receive() meets the same state.
            ERR_clear_error();
            break;
        }
        got += static_cast<std::size_t>(more);
    }
    return static_cast<long>(got);
}

inline bool RawConnection::fill() {
    if (begin_ == end_) begin_ = end_ = 0;
    if (end_ == buffer_.size()) {
        std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
        if (end_ == buffer_.size()) return fail(TransportFailure::protocol, "a line longer than the read buffer");
    }
    long got = receive(buffer_.data() + end_, buffer_.size() - end_);
    if (got <= 0) {
        if (got == 0) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (interrupted_) failure_.kind = TransportFailure::canceled;
        }
        return false;
    }
    end_ += static_cast<std::size_t>(got);
    received_any_ = true;
    return true;
}

inline bool RawConnection::read_line(std::string& line, std::size_t limit) {
    while (true) {
        const char* start = buffer_.data() + begin_;
        const void* newline = std::memchr(start, '\n', end_ - begin_);
        if (newline) {
            std::size_t length = static_cast<std::size_t>(static_cast<const char*>(newline) - start);
            line.assign(start, length);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            begin_ += length + 1;
            return true;
        }
        if (end_ - begin_ > limit)
            return fail(TransportFailure::protocol, "a line of more than " + std::to_string(limit) + " bytes");
        if (!fill()) {
            if (failure_.kind == TransportFailure::none) fail(TransportFailure::read);  // closed mid-line
            return false;
        }
    }
}

inline bool RawConnection::read_head(RawResponseHead& head) {
    for (int interim = 0; interim <= max_interim_responses; ++interim) {
        // The bytes of the head, up to its empty line, then judged without I/O.
        std::string block, line;
        while (true) {
            if (!read_line(line, max_head_size)) return false;
            if (line.empty()) break;
            if (block.size() + line.size() + 1 > max_head_size)
                return fail(TransportFailure::protocol,
                            "more than " + std::to_string(max_head_size / 1024) + " KiB of response headers");
            block += line;
            block += '\n';
        }
        std::string problem;
        if (!parse_response_head(block, head, problem)) return fail(TransportFailure::protocol, problem);
        if (head.status >= 200 || head.status == 101) return true;
        // 100 Continue, 103 Early Hints: the real answer follows.
    }
    return fail(TransportFailure::protocol,
                "more than " + std::to_string(max_interim_responses) + " interim (1xx) answers");
}

inline bool RawConnection::deliver(std::uint64_t count, const std::function<bool(const char*, std::size_t)>& sink,
                                   bool& stopped) {
    while (count > 0) {
        if (begin_ == end_) {
            // Nothing buffered: read straight into the buffer, no more than
            // this body needs (the next response must stay in the socket).
            begin_ = end_ = 0;
            long got =
                receive(buffer_.data(), static_cast<std::size_t>(std::min<std::uint64_t>(buffer_.size(), count)));
            if (got < 0) return false;
            if (got == 0) return fail(TransportFailure::read);
            end_ = static_cast<std::size_t>(got);
            received_any_ = true;
        }
        std::size_t piece = static_cast<std::size_t>(std::min<std::uint64_t>(end_ - begin_, count));
        const char* data = buffer_.data() + begin_;
        begin_ += piece;
        count -= piece;
        if (!sink(data, piece)) {
            stopped = true;
            reusable_ = false;
            return true;
        }
    }
    return true;
}

inline bool RawConnection::read_body(const RawResponseHead& head, bool head_request,
                                     const std::function<bool(const char*, std::size_t)>& sink, bool& stopped) {
    stopped = false;
    BodyFraming framing;
    std::string problem;
    if (!body_framing(head, head_request, framing, problem)) return fail(TransportFailure::protocol, problem);
    bool keep_alive = framing.keep_alive;
    if (framing.kind == BodyFraming::Kind::none) {
        reusable_ = keep_alive;
        return true;
    }
    if (framing.kind == BodyFraming::Kind::chunked) {
        std::string line;
        while (true) {
            if (!read_line(line, 4096)) return false;
            std::size_t digits = 0;
            std::uint64_t size = 0;
            while (digits < line.size() && std::isxdigit(static_cast<unsigned char>(line[digits]))) {
                if (digits == 15) return fail(TransportFailure::protocol, "a chunk size too large");
                char c = static_cast<char>(std::tolower(static_cast<unsigned char>(line[digits])));
                size = size * 16 + static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
                ++digits;
            }
            if (digits == 0) return fail(TransportFailure::protocol, "a chunk without a size");
            if (size == 0) break;
            if (!deliver(size, sink, stopped)) return false;
            if (stopped) return true;
            if (!read_line(line, 4096)) return false;
            if (!line.empty()) return fail(TransportFailure::protocol, "a chunk longer than its size");
        }
        std::size_t trailer_bytes = 0;
        do {  // trailer fields, up to the empty line, bounded like a head
            if (!read_line(line, max_head_size)) return false;
            trailer_bytes += line.size() + 2;
            if (trailer_bytes > max_head_size) return fail(TransportFailure::protocol, "a trailer larger than 64 KiB");
        } while (!line.empty());
        reusable_ = keep_alive && begin_ == end_;
        return true;
    } else if (framing.kind == BodyFraming::Kind::length) {
        if (!deliver(framing.length, sink, stopped)) return false;
        // Bytes beyond the announced length are not the start of another answer.
        reusable_ = keep_alive && !stopped && begin_ == end_;
        return true;
    }
    // No length: the body ends when the server closes the connection.
    while (true) {
        if (begin_ < end_) {
            std::size_t piece = end_ - begin_;
            const char* data = buffer_.data() + begin_;
            begin_ = end_;
            if (!sink(data, piece)) {
                stopped = true;
                return true;
            }
        }
        if (!fill()) return failure_.kind == TransportFailure::none;
    }
}

}  // namespace detail
}  // namespace provision

#endif
