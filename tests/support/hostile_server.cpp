// SPDX-License-Identifier: MIT
// A misbehaving HTTPS server in a process of its own, for the tests that run
// the real provision program against it. In another process it cannot change
// the client's signal dispositions (an in-process cpp-httplib server sets
// SIGPIPE to ignored for the whole test program, which hides SIGPIPE deaths),
// and it can send what no HTTP library would.
//
//   hostile_server --cert PEM --key PEM [--plain] [--log FILE] [--files DIR]
//
// Prints "port N" on its first line of output once it listens on 127.0.0.1,
// then serves until killed. Each request's head is appended to --log. Paths:
//   /stall-once/NAME    the first GET gets 200, a 3 MiB Content-Length, 1 MiB
//                       of it, and then nothing, the socket left open (a stalled
//                       CDN); every later GET gets the whole body, or the 206 a
//                       Range asks for
//   /folded/NAME        a 2 MiB body whose head holds an obsolete folded
//                       continuation line made only of blanks
//   /ok/NAME            a 2 MiB body, plainly (any query is ignored)
//   /hub-redirect/NAME  302 to https://cdn.example:PORT/ok/NAME, as the Hub
//                       sends a download to its CDN (the certificate must name
//                       cdn.example too)
//   /files/NAME         the file DIR/NAME as text (a config to fetch)
//   /api/models/padded/repo/...   a Hub whose revision answer is fine and whose
//                       tree listing is 16 MiB of empty JSON objects (the most
//                       expensive shape for a DOM parser within the body cap)
// Bodies are test_bytes(size, 77), so a test can compare what was installed.
#include "test_bytes.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>

namespace {

constexpr std::size_t stalled_size = 3u << 20;
constexpr std::size_t stalled_sent = 1u << 20;
constexpr std::size_t plain_size = 2u << 20;

std::mutex log_mutex;
std::string log_path;
std::string files_dir;
int listening_port = 0;
std::atomic<bool> stalled_once{false};

void log_request(const std::string& head) {
    if (log_path.empty()) return;
    std::lock_guard<std::mutex> lock(log_mutex);
    std::ofstream(log_path, std::ios::app) << head << "----\n";
}

/// One accepted connection, plain or TLS.
class Peer {
  public:
    Peer(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
    ~Peer() {
        if (ssl_) SSL_free(ssl_);
        ::close(fd_);
    }
    bool send_all(const std::string& data) {
        std::size_t done = 0;
        while (done < data.size()) {
            int chunk = static_cast<int>(std::min<std::size_t>(data.size() - done, 1u << 16));
            long sent = ssl_ ? SSL_write(ssl_, data.data() + done, chunk)
                             : ::send(fd_, data.data() + done, static_cast<std::size_t>(chunk), MSG_NOSIGNAL);
            if (sent <= 0) return false;
            done += static_cast<std::size_t>(sent);
        }
        return true;
    }
    long receive(char* into, std::size_t size) {
        return ssl_ ? SSL_read(ssl_, into, static_cast<int>(size)) : ::recv(fd_, into, size, 0);
    }
    /// Reads one request head; false when the client has gone.
    bool read_head(std::string& head) {
        while (true) {
            std::size_t end = pending_.find("\r\n\r\n");
            if (end != std::string::npos) {
                head = pending_.substr(0, end + 2);
                pending_.erase(0, end + 4);
                return true;
            }
            char buffer[4096];
            long got = receive(buffer, sizeof buffer);
            if (got <= 0 || pending_.size() > 65536) return false;
            pending_.append(buffer, static_cast<std::size_t>(got));
        }
    }
    /// Holds the connection open for two minutes, sending nothing and reading
    /// nothing: the client's own close is not answered either (a server that
    /// closed at once would turn the client's next write into ECONNRESET,
    /// and the SIGPIPE a stalled peer causes would never be seen).
    void hold_open() { std::this_thread::sleep_for(std::chrono::minutes(2)); }

  private:
    int fd_;
    SSL* ssl_;
    std::string pending_;
};

std::string header_value(const std::string& head, const std::string& name) {
    std::string lower_head = head;
    for (auto& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::size_t at = lower_head.find("\r\n" + name + ":");
    if (at == std::string::npos) return "";
    std::size_t start = head.find_first_not_of(' ', at + name.size() + 3);
    std::size_t end = head.find("\r\n", start);
    return head.substr(start, end - start);
}

/// Answers one request; false when the connection must end.
bool answer(Peer& peer, const std::string& head) {
    std::size_t space = head.find(' ');
    std::string path = head.substr(space + 1, head.find(' ', space + 1) - space - 1);
    if (path.rfind("/stall-once/", 0) == 0) {
        static const std::string body = provision_test::test_bytes(stalled_size, 77);
        if (!stalled_once.exchange(true)) {
            peer.send_all(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nAccept-Ranges: bytes\r\n"
                "Content-Length: " +
                std::to_string(body.size()) + "\r\n\r\n");
            peer.send_all(body.substr(0, stalled_sent));
            peer.hold_open();
            return false;
        }
        std::string range = header_value(head, "range");
        std::size_t from = 0;
        if (range.rfind("bytes=", 0) == 0) from = std::strtoull(range.c_str() + 6, nullptr, 10);
        std::size_t to = body.size();
        std::size_t dash = range.find('-');
        if (dash != std::string::npos && dash + 1 < range.size())
            to = std::strtoull(range.c_str() + dash + 1, nullptr, 10) + 1;
        if (range.empty())
            return peer.send_all("HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body);
        return peer.send_all("HTTP/1.1 206 Partial Content\r\nAccept-Ranges: bytes\r\nContent-Range: bytes " +
                             std::to_string(from) + "-" + std::to_string(to - 1) + "/" + std::to_string(body.size()) +
                             "\r\nContent-Length: " + std::to_string(to - from) + "\r\n\r\n" +
                             body.substr(from, to - from));
    }
    static const std::string body = provision_test::test_bytes(plain_size, 77);
    if (path.rfind("/folded/", 0) == 0)
        return peer.send_all(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nX-Fold: a\r\n \r\n"
            "Content-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body);
    if (path.rfind("/files/", 0) == 0 && !files_dir.empty() && path.find("..") == std::string::npos) {
        std::ifstream in(files_dir + "/" + path.substr(7), std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (in)
            return peer.send_all("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                                 std::to_string(text.size()) + "\r\n\r\n" + text);
    }
    if (path.rfind("/api/models/padded/repo/revision/", 0) == 0) {
        std::string sha = "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\"}";
        return peer.send_all("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                             std::to_string(sha.size()) + "\r\n\r\n" + sha);
    }
    if (path.rfind("/api/models/padded/repo/tree/", 0) == 0) {
        std::string listing = "[{}";
        while (listing.size() < (16u << 20) - 8) listing += ",{}";
        listing += "]";
        return peer.send_all("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                             std::to_string(listing.size()) + "\r\n\r\n" + listing);
    }
    if (path.rfind("/hub-redirect/", 0) == 0)
        return peer.send_all("HTTP/1.1 302 Found\r\nLocation: https://cdn.example:" + std::to_string(listening_port) +
                             "/ok/" + path.substr(14) + "\r\nContent-Length: 0\r\n\r\n");
    if (path.rfind("/ok/", 0) == 0)
        return peer.send_all("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body);
    return peer.send_all("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n");
}

void serve(int fd, SSL_CTX* context) {
    SSL* ssl = nullptr;
    if (context) {
        ssl = SSL_new(context);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1) {
            SSL_free(ssl);
            ::close(fd);
            return;
        }
    }
    Peer peer(fd, ssl);
    std::string head;
    while (peer.read_head(head)) {
        log_request(head);
        if (!answer(peer, head)) break;
    }
}

}  // namespace

int main(int argc, char** argv) {
    // This process is the test's instrument, not its subject: a client that
    // hangs up must not end it.
    ::signal(SIGPIPE, SIG_IGN);
    std::string cert, key;
    bool plain = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--cert" && i + 1 < argc) cert = argv[++i];
        else if (arg == "--key" && i + 1 < argc) key = argv[++i];
        else if (arg == "--log" && i + 1 < argc) log_path = argv[++i];
        else if (arg == "--files" && i + 1 < argc) files_dir = argv[++i];
        else if (arg == "--plain") plain = true;
        else {
            std::fprintf(stderr, "usage: hostile_server --cert PEM --key PEM [--plain] [--log FILE] [--files DIR]\n");
            return 2;
        }
    }
    SSL_CTX* context = nullptr;
    if (!plain) {
        context = SSL_CTX_new(TLS_server_method());
        if (!context || SSL_CTX_use_certificate_chain_file(context, cert.c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(context, key.c_str(), SSL_FILETYPE_PEM) != 1) {
            std::fprintf(stderr, "hostile_server: cannot load %s / %s\n", cert.c_str(), key.c_str());
            return 2;
        }
    }
    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener, 64) != 0 || ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        std::fprintf(stderr, "hostile_server: cannot listen on 127.0.0.1\n");
        return 2;
    }
    listening_port = ntohs(address.sin_port);
    std::printf("port %d\n", listening_port);
    std::fflush(stdout);
    while (true) {
        int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::thread(serve, fd, context).detach();
    }
}
