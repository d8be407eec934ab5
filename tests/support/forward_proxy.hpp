// SPDX-License-Identifier: MIT
// Test support: a real forward proxy on 127.0.0.1 (CONNECT tunnels for https,
// absolute-form requests for http), with a name map so it can reach loopback
// servers under the real host names they pretend to be.
#ifndef PROVISION_TESTS_FORWARD_PROXY_HPP
#define PROVISION_TESTS_FORWARD_PROXY_HPP

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace provision_test {

class ForwardProxy {
  public:
    struct Seen {
        std::string request_line;         ///< e.g. "CONNECT hub.test:443 HTTP/1.1"
        std::string proxy_authorization;  ///< the Proxy-Authorization header, if any
    };

    /// `routes` maps "host:port" as clients ask for it to a loopback port.
    explicit ForwardProxy(std::map<std::string, int> routes) : routes_(std::move(routes)) {
        listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
        int yes = 1;
        ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address);
        ::listen(listener_, 16);
        socklen_t length = sizeof address;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(address.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }

    ~ForwardProxy() {
        stopping_ = true;
        ::shutdown(listener_, SHUT_RDWR);
        ::close(listener_);
        acceptor_.join();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            for (int fd : open_sockets_) ::shutdown(fd, SHUT_RDWR);
        }
        for (auto& worker : workers_) worker.join();
    }

    int port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::vector<Seen> seen() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return seen_;
    }

  private:
    void accept_loop() {
        while (!stopping_) {
            int client = ::accept(listener_, nullptr, nullptr);
            if (client < 0) return;
            std::lock_guard<std::mutex> lock(mutex_);
            open_sockets_.push_back(client);
            workers_.emplace_back([this, client] { serve(client); });
        }
    }

    static int connect_loopback(int port) {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = htons(static_cast<std::uint16_t>(port));
        if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
            ::close(fd);
            return -1;
        }
        return fd;
    }

    static bool send_all(int fd, const std::string& data) {
        std::size_t sent = 0;
        while (sent < data.size()) {
            ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return false;
            sent += static_cast<std::size_t>(n);
        }
        return true;
    }

    /// Copies bytes both ways until either side closes.
    static void relay(int a, int b) {
        char buffer[16384];
        pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        while (::poll(fds, 2, 10000) > 0) {
            for (int i = 0; i < 2; ++i) {
                if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                ssize_t n = ::recv(fds[i].fd, buffer, sizeof buffer, 0);
                if (n <= 0) return;
                if (!send_all(fds[1 - i].fd, std::string(buffer, static_cast<std::size_t>(n)))) return;
            }
        }
    }

    void serve(int client) {
        std::string head;
        char c;
        while (head.find("\r\n\r\n") == std::string::npos && head.size() < 65536) {
            if (::recv(client, &c, 1, 0) != 1) break;
            head += c;
        }
        std::string request_line = head.substr(0, head.find("\r\n"));
        Seen seen{request_line, ""};
        std::size_t auth = head.find("Proxy-Authorization: ");
        if (auth != std::string::npos)
            seen.proxy_authorization = head.substr(auth + 21, head.find("\r\n", auth) - auth - 21);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            seen_.push_back(seen);
        }
        std::string method = request_line.substr(0, request_line.find(' '));
        std::string target = request_line.substr(method.size() + 1, request_line.rfind(' ') - method.size() - 1);
        if (method == "CONNECT") {
            auto route = routes_.find(target);
            int upstream = route == routes_.end() ? -1 : connect_loopback(route->second);
            if (upstream < 0) {
                send_all(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
            } else {
                send_all(client, "HTTP/1.1 200 Connection established\r\n\r\n");
                relay(client, upstream);
                ::close(upstream);
            }
        } else if (target.rfind("http://", 0) == 0) {
            std::string rest = target.substr(7);
            std::string authority = rest.substr(0, rest.find('/'));
            std::string path = rest.size() > authority.size() ? rest.substr(authority.size()) : "/";
            if (authority.find(':') == std::string::npos) authority += ":80";
            auto route = routes_.find(authority);
            int upstream = route == routes_.end() ? -1 : connect_loopback(route->second);
            if (upstream < 0) {
                send_all(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
            } else {
                std::string forwarded = method + " " + path + head.substr(head.find(" HTTP/"));
                send_all(upstream, forwarded);
                relay(client, upstream);
                ::close(upstream);
            }
        } else {
            send_all(client, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
        std::lock_guard<std::mutex> lock(mutex_);
        ::close(client);
        open_sockets_.erase(std::remove(open_sockets_.begin(), open_sockets_.end(), client), open_sockets_.end());
    }

    std::map<std::string, int> routes_;
    int listener_ = -1;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread acceptor_;
    mutable std::mutex mutex_;
    std::vector<std::thread> workers_;
    std::vector<int> open_sockets_;
    std::vector<Seen> seen_;
};

}  // namespace provision_test

#endif
