// SPDX-License-Identifier: MIT
// Test support: a server program run as a process of its own (the hostile
// server, the file server), so that nothing it does to signals or memory is
// shared with the provision process under test, and a SIGPIPE death of that
// process is seen as one.
#ifndef PROVISION_TESTS_SERVER_PROCESS_HPP
#define PROVISION_TESTS_SERVER_PROCESS_HPP

#include "run_process.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace provision_test {

class ServerProcess {
  public:
    /// Starts `argv` and waits (at most 20 s) for its first line of output,
    /// which must be "port N".
    explicit ServerProcess(const std::vector<std::string>& argv) {
        int out[2];
        if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("server process: no pipe");
        err_path_ = std::filesystem::temp_directory_path() /
                    ("provision-server-err-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
        int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        pid_ = spawn_process(argv, {}, out[1], err);
        ::close(out[1]);
        ::close(err);
        std::string line;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
            pollfd watch{out[0], POLLIN, 0};
            if (::poll(&watch, 1, 100) <= 0) continue;
            char buffer[256];
            ssize_t got = ::read(out[0], buffer, sizeof buffer);
            if (got <= 0) break;
            line.append(buffer, static_cast<std::size_t>(got));
        }
        ::close(out[0]);
        if (line.rfind("port ", 0) != 0) {
            stop();
            throw std::runtime_error("server process " + argv[0] + " did not start: " + line +
                                     read_whole_file(err_path_));
        }
        port_ = std::stoi(line.substr(5));
    }
    ~ServerProcess() {
        stop();
        std::error_code ignored;
        std::filesystem::remove(err_path_, ignored);
    }
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;

    int port() const { return port_; }
    /// What the server wrote to its standard error.
    std::string errors() const { return read_whole_file(err_path_); }

  private:
    static std::atomic<int>& counter() {
        static std::atomic<int> next{0};
        return next;
    }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    pid_t pid_ = -1;
    int port_ = 0;
    std::filesystem::path err_path_;
};

}  // namespace provision_test

#endif
