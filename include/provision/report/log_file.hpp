// SPDX-License-Identifier: MIT
// provision: the append-only run log (${WORKSPACE}/logs/provision.log).
//
// Containers restart provisioning on every start, for months; a log that only
// grows fills the workspace it is meant to describe. When it passes a size
// (8 MiB by default) it is rotated like logrotate does: provision.log becomes
// provision.log.1, .1 becomes .2, and the oldest beyond `keep` is deleted.
#ifndef PROVISION_REPORT_LOG_FILE_HPP
#define PROVISION_REPORT_LOG_FILE_HPP

#include "../support/files.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <string>

namespace provision {
namespace detail {

/// "2026-11-27T05:48:58Z"
inline std::string utc_timestamp() {
    std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm parts{};
    gmtime_r(&now, &parts);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &parts);
    return buffer;
}

/// When the log is rotated and how many old logs are kept.
struct LogRotation {
    std::uint64_t max_bytes = 8u << 20;  ///< rotate once the log is larger than this
    int keep = 3;                        ///< provision.log.1 .. provision.log.<keep>; 0 keeps none
};

/// Thread-safe line logger. Opening failures are remembered, not fatal: a
/// read-only log folder must not stop models from being provisioned.
class LogFile {
  public:
    LogFile() = default;
    explicit LogFile(const std::filesystem::path& path, LogRotation rotation = {}) : rotation_(rotation) { open(path); }
    ~LogFile() { close_locked(); }
    LogFile(const LogFile&) = delete;
    LogFile& operator=(const LogFile&) = delete;

    void set_rotation(LogRotation rotation) {
        std::lock_guard<std::mutex> lock(mutex_);
        rotation_ = rotation;
    }

    bool open(const std::filesystem::path& path) {
        std::error_code ignored;
        std::filesystem::create_directories(path.parent_path(), ignored);
        std::lock_guard<std::mutex> lock(mutex_);
        path_ = path;
        close_locked();
        auto size = std::filesystem::file_size(path_, ignored);
        size_ = ignored ? 0 : size;
        if (size_ > rotation_.max_bytes) rotate();  // checked first, so a new run starts a fresh file when due
        open_locked();
        return fd_ >= 0;
    }
    bool is_open() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return fd_ >= 0;
    }

    void write(const std::string& line) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (fd_ < 0) return;
        std::string text = utc_timestamp() + ' ' + line + '\n';
        // A single run can log a lot too (a long retry storm): the cap holds within a run.
        if (size_ > 0 && size_ + text.size() > rotation_.max_bytes) {
            close_locked();
            rotate();
            open_locked();
            if (fd_ < 0) return;
        }
        // One write(2) per line, appended (O_APPEND): another provision on
        // the same workspace interleaves whole lines, never parts of them.
        std::size_t done = 0;
        while (done < text.size()) {
            ssize_t wrote = ::write(fd_, text.data() + done, text.size() - done);
            if (wrote < 0 && errno == EINTR) continue;
            if (wrote <= 0) break;  // a full disk loses log lines, never models
            done += static_cast<std::size_t>(wrote);
        }
        size_ += text.size();
    }

  private:
    /// The log is opened like every file provision writes: never through a link.
    void open_locked() {
        auto opened = open_for_writing(path_, O_WRONLY | O_CREAT | O_APPEND);
        fd_ = opened ? opened.value() : -1;
    }
    void close_locked() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    /// provision.log -> .1 -> .2 ... ; the one past `keep` is removed. Caller holds mutex_.
    void rotate() {
        std::error_code ignored;
        auto numbered = [&](int n) {
            std::filesystem::path name = path_;
            name += "." + std::to_string(n);
            return name;
        };
        if (rotation_.keep <= 0) {
            std::filesystem::remove(path_, ignored);
        } else {
            std::filesystem::remove(numbered(rotation_.keep), ignored);
            for (int n = rotation_.keep - 1; n >= 1; --n)
                std::filesystem::rename(numbered(n), numbered(n + 1), ignored);
            std::filesystem::rename(path_, numbered(1), ignored);
        }
        size_ = 0;
    }

    mutable std::mutex mutex_;
    int fd_ = -1;
    std::filesystem::path path_;
    std::uint64_t size_ = 0;
    LogRotation rotation_;
};

}  // namespace detail
}  // namespace provision

#endif
