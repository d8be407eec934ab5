// SPDX-License-Identifier: MIT
// Test support: run a program with arguments and environment, capture its output.
#ifndef PROVISION_TESTS_RUN_PROCESS_HPP
#define PROVISION_TESTS_RUN_PROCESS_HPP

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace provision_test {

struct ProcessResult {
    int exit_code = -1;  ///< exit status, or 128 + signal
    std::string out;
    std::string err;
};

inline std::string read_whole_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

/// Runs `argv` with exactly `env` as its environment (plus PATH), waits for it.
inline ProcessResult run_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {}) {
    char out_template[] = "/tmp/provision-test-out-XXXXXX";
    char err_template[] = "/tmp/provision-test-err-XXXXXX";
    int out_fd = mkstemp(out_template);
    int err_fd = mkstemp(err_template);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        int null_fd = open("/dev/null", O_RDONLY);
        dup2(null_fd, 0);
        std::vector<std::string> env_text;
        if (const char* path = std::getenv("PATH")) env_text.push_back(std::string("PATH=") + path);
        for (const auto& [key, value] : env) env_text.push_back(key + "=" + value);
        std::vector<char*> env_pointers;
        for (auto& item : env_text) env_pointers.push_back(item.data());
        env_pointers.push_back(nullptr);
        std::vector<char*> arg_pointers;
        std::vector<std::string> args = argv;
        for (auto& item : args) arg_pointers.push_back(item.data());
        arg_pointers.push_back(nullptr);
        execve(arg_pointers[0], arg_pointers.data(), env_pointers.data());
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    close(out_fd);
    close(err_fd);
    ProcessResult result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.out = read_whole_file(out_template);
    result.err = read_whole_file(err_template);
    std::filesystem::remove(out_template);
    std::filesystem::remove(err_template);
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

/// Deterministic pseudo-random bytes (so a failure is reproducible).
inline std::string test_bytes(std::size_t size, unsigned seed = 1) {
    std::string out(size, '\0');
    unsigned state = seed * 2654435761u + 1;
    for (auto& c : out) {
        state = state * 1664525u + 1013904223u;
        c = static_cast<char>(state >> 24);
    }
    return out;
}

}  // namespace provision_test

#endif
