// SPDX-License-Identifier: MIT
// Test support: run a program on a pseudo-terminal of a chosen size and keep
// everything it writes there, as a user's terminal would receive it.
//
// script(1) gives a pseudo-terminal too, but of whatever size the test
// runner's own terminal has (none under CI), and it cannot resize one while
// the program runs. Here the test sets the size (TIOCSWINSZ on the master
// side) before the start and at any time after, and the child sees it with
// TIOCGWINSZ on its standard error, as the CLI's live view asks.
#ifndef PROVISION_TESTS_PTY_PROCESS_HPP
#define PROVISION_TESTS_PTY_PROCESS_HPP

#include <fcntl.h>
#include <poll.h>
#include <pty.h>  // openpty: in glibc's libc itself since 2.34, no -lutil needed
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run_process.hpp"

#include <cerrno>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace provision_test {

struct PtyResult {
    int exit_code = -1;      ///< exit status, or 128 + signal
    bool timed_out = false;  ///< the child was killed because it outlived the timeout
    std::string screen;      ///< every byte the child wrote to the terminal (stdout and stderr alike)
};

/// A child process whose standard input, output and error are the slave side
/// of a fresh pseudo-terminal, and which has it as its controlling terminal.
/// The child is started with child_environment(env) and default signal
/// dispositions (reset_signals_for_exec), like spawn_process. The terminal
/// turns "\n" into "\r\n" on output, as a real one does.
class PtyProcess {
  public:
    PtyProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
               unsigned short columns, unsigned short rows = 24) {
        ExecArguments exec_arguments(argv, env);

        winsize size{};
        size.ws_col = columns;
        size.ws_row = rows;
        int slave = -1;
        REQUIRE(::openpty(&master_, &slave, nullptr, nullptr, &size) == 0);
        // Not inherited by any other child the test starts: the master held
        // open elsewhere would not change what this one reads, but a leaked
        // slave would keep EOF from ever coming.
        ::fcntl(master_, F_SETFD, FD_CLOEXEC);
        pid_ = ::fork();
        if (pid_ == 0) {
            // Only async-signal-safe calls from here on.
            ::setsid();                    // a new session, without a controlling terminal...
            ::ioctl(slave, TIOCSCTTY, 0);  // ...which the slave becomes
            ::dup2(slave, 0);
            ::dup2(slave, 1);
            ::dup2(slave, 2);
            if (slave > 2) ::close(slave);
            ::close(master_);
            reset_signals_for_exec();
            exec_arguments.exec();
            ::_exit(127);
        }
        ::close(slave);  // the child's copies are the only ones left: its exit ends the reads
        REQUIRE(pid_ > 0);
    }

    ~PtyProcess() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        if (master_ >= 0) ::close(master_);
    }
    PtyProcess(const PtyProcess&) = delete;
    PtyProcess& operator=(const PtyProcess&) = delete;

    /// Changes the terminal's size, as a user dragging the window does; the
    /// kernel sends SIGWINCH to the child's process group.
    void resize(unsigned short columns, unsigned short rows = 24) {
        winsize size{};
        size.ws_col = columns;
        size.ws_row = rows;
        ::ioctl(master_, TIOCSWINSZ, &size);
    }

    /// What the child has written so far.
    const std::string& screen() const { return screen_; }

    /// Reads until `done(screen())` holds, the child closes the terminal, or
    /// `timeout` passes. Returns whether `done` held.
    bool read_until(const std::function<bool(const std::string&)>& done, std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done(screen_)) {
            auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0 || !read_some(left)) return done(screen_);
        }
        return true;
    }

    /// Reads everything until the child has closed the terminal (it exited),
    /// then reaps it. After `timeout` the child is killed and the result says so.
    PtyResult wait(std::chrono::milliseconds timeout) {
        PtyResult result;
        result.timed_out = !read_until([](const std::string&) { return false; }, timeout) && !closed_;
        if (result.timed_out) ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        result.exit_code = exit_code_of(status);
        result.screen = screen_;
        check_no_sanitizer_report("the program on the pseudo-terminal", screen_);
        return result;
    }

  private:
    /// One read of whatever is there, waiting at most `timeout` for it.
    /// False once the terminal is closed (Linux answers EIO when the last
    /// slave descriptor is gone) or nothing came in time.
    bool read_some(std::chrono::milliseconds timeout) {
        if (closed_) return false;
        pollfd watch{master_, POLLIN, 0};
        int ready = ::poll(&watch, 1, static_cast<int>(timeout.count()));
        if (ready < 0 && errno == EINTR) return true;
        if (ready <= 0) return false;
        char buffer[4096];
        ssize_t got = ::read(master_, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR) return true;
        if (got <= 0) {
            closed_ = true;
            return false;
        }
        screen_.append(buffer, static_cast<std::size_t>(got));
        return true;
    }

    int master_ = -1;
    pid_t pid_ = -1;
    bool closed_ = false;
    std::string screen_;
};

/// Runs `argv` on a `columns`-wide pseudo-terminal until it exits (or is
/// killed after `timeout`), and returns what it wrote there.
inline PtyResult run_in_pty(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                            unsigned short columns,
                            std::chrono::milliseconds timeout = std::chrono::milliseconds(120000)) {
    PtyProcess child(argv, env, columns);
    return child.wait(timeout);
}

}  // namespace provision_test

#endif
