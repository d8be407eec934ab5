// SPDX-License-Identifier: MIT
// Test support: run a program with arguments and environment, capture its output.
#ifndef PROVISION_TESTS_RUN_PROCESS_HPP
#define PROVISION_TESTS_RUN_PROCESS_HPP

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "test_bytes.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace provision_test {

struct ProcessResult {
    int exit_code = -1;     ///< exit status, or 128 + signal
    int signal = 0;         ///< the signal that ended the process, 0 when it exited by itself
    long peak_rss_kib = 0;  ///< the child's peak resident memory (getrusage's ru_maxrss)
    std::string out;
    std::string err;
};

inline std::string read_whole_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

/// The environment a child gets: PATH, the sanitizer settings of this test
/// program, then `env` (which may override them). Under a sanitizer build the
/// CLI is instrumented too; without the parent's ASAN_OPTIONS etc. it would
/// check less than the parent does (no strict checks, no TSan suppressions, so
/// reports inside uninstrumented OpenSSL would fail it for nothing).
inline std::vector<std::string> child_environment(const std::map<std::string, std::string>& env) {
    std::vector<std::string> env_text;
    for (const char* name : {"PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS"})
        if (const char* value = std::getenv(name); value && env.count(name) == 0)
            env_text.push_back(std::string(name) + "=" + value);
    for (const auto& [key, value] : env) env_text.push_back(key + "=" + value);
    return env_text;
}

/// Fails the current test when a child's standard error holds a sanitizer
/// report. The exit status alone cannot tell: ASan and UBSan exit 1, which is
/// also provision's "something failed" code, and a test that expects a failing
/// run would accept it; every sanitizer ends its report with a SUMMARY line.
/// `err` is whatever holds the child's standard error (its stdout too when a
/// test merges them, as the script(1) runs do).
inline void check_no_sanitizer_report(const std::string& program, const std::string& err) {
    for (const char* marker : {"SUMMARY: AddressSanitizer", "SUMMARY: LeakSanitizer", "SUMMARY: ThreadSanitizer",
                               "SUMMARY: UndefinedBehaviorSanitizer", "ThreadSanitizer: reported"}) {
        if (err.find(marker) != std::string::npos) {
            FAIL_CHECK("the child process " << program << " reported a sanitizer error:\n" << err);
            return;
        }
    }
}

/// Gives the calling (just forked) process the signal state a program gets
/// from a shell: every disposition at its default, nothing blocked. Both are
/// inherited through fork and execve, and this test program's own state is
/// not the default one: cpp-httplib's servers set SIGPIPE to ignored, so a
/// child that would die of SIGPIPE in a real container would survive here and
/// the test would pass for the wrong reason. Only async-signal-safe calls.
inline void reset_signals_for_exec() {
    struct sigaction defaults {};
    defaults.sa_handler = SIG_DFL;
    sigemptyset(&defaults.sa_mask);
    for (int number = 1; number < NSIG; ++number) {
        if (number == SIGKILL || number == SIGSTOP) continue;
        sigaction(number, &defaults, nullptr);  // fails harmlessly for numbers that are not signals
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
}

/// What execve takes, built before fork: a forked child of a threaded program
/// (the loopback servers) may not allocate, so it only calls exec().
class ExecArguments {
  public:
    ExecArguments(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env)
        : args_(argv), env_(child_environment(env)) {
        for (auto& item : args_) arg_pointers_.push_back(item.data());
        arg_pointers_.push_back(nullptr);
        for (auto& item : env_) env_pointers_.push_back(item.data());
        env_pointers_.push_back(nullptr);
    }
    ExecArguments(const ExecArguments&) = delete;  // the pointers point into this object
    ExecArguments& operator=(const ExecArguments&) = delete;
    /// execve; returns only when it failed. Async-signal-safe.
    void exec() const { execve(arg_pointers_[0], arg_pointers_.data(), env_pointers_.data()); }

  private:
    std::vector<std::string> args_;
    std::vector<std::string> env_;
    std::vector<char*> arg_pointers_;
    std::vector<char*> env_pointers_;
};

/// Starts `argv` (argv[0] is a path; no PATH search) with child_environment(env),
/// default signal dispositions and an empty signal mask (reset_signals_for_exec),
/// standard input from /dev/null and standard output and error to the given
/// descriptors, which the caller keeps and closes. Returns the child's pid.
inline pid_t spawn_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                           int out_fd, int err_fd) {
    ExecArguments exec_arguments(argv, env);
    pid_t pid = fork();
    if (pid == 0) {
        reset_signals_for_exec();
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        int null_fd = open("/dev/null", O_RDONLY);
        dup2(null_fd, 0);
        exec_arguments.exec();
        _exit(127);
    }
    return pid;
}

/// A wait status as a shell reports it: the exit code, or 128 + the signal.
inline int exit_code_of(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }
/// The signal that ended a process, or 0 when it exited (143 from exit(143) is not SIGTERM).
inline int signal_of(int status) { return WIFSIGNALED(status) ? WTERMSIG(status) : 0; }

/// Runs `argv` with `env` plus PATH and the sanitizer settings as its
/// environment (child_environment), waits for it.
inline ProcessResult run_process(const std::vector<std::string>& argv,
                                 const std::map<std::string, std::string>& env = {}) {
    char out_template[] = "/tmp/provision-test-out-XXXXXX";
    char err_template[] = "/tmp/provision-test-err-XXXXXX";
    int out_fd = mkstemp(out_template);
    int err_fd = mkstemp(err_template);
    pid_t pid = spawn_process(argv, env, out_fd, err_fd);
    int status = 0;
    rusage usage{};
    wait4(pid, &status, 0, &usage);
    close(out_fd);
    close(err_fd);
    ProcessResult result;
    result.exit_code = exit_code_of(status);
    result.signal = signal_of(status);
    result.peak_rss_kib = usage.ru_maxrss;
    result.out = read_whole_file(out_template);
    result.err = read_whole_file(err_template);
    std::filesystem::remove(out_template);
    std::filesystem::remove(err_template);
    check_no_sanitizer_report(argv.empty() ? std::string() : argv[0], result.out + result.err);
    return result;
}

/// A fresh empty directory under /tmp, removed when the object dies.
class TempDir {
  public:
    TempDir() {
        char name[] = "/tmp/provision-test-XXXXXX";
        path_ = mkdtemp(name);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
    /// Writes a file (creating folders) and returns its path.
    std::filesystem::path write(const std::string& name, const std::string& content) const {
        auto file = path_ / name;
        std::filesystem::create_directories(file.parent_path());
        std::ofstream(file, std::ios::binary) << content;
        return file;
    }

  private:
    std::filesystem::path path_;
};

}  // namespace provision_test

#endif
