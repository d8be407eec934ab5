// SPDX-License-Identifier: MIT
// provision: the append-only run log (${WORKSPACE}/logs/provision.log).
#ifndef PROVISION_DETAIL_LOG_FILE_HPP
#define PROVISION_DETAIL_LOG_FILE_HPP

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
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

/// Thread-safe line logger. Opening failures are remembered, not fatal: a
/// read-only log folder must not stop models from being provisioned.
class LogFile {
  public:
    LogFile() = default;
    explicit LogFile(const std::filesystem::path& path) { open(path); }

    bool open(const std::filesystem::path& path) {
        std::error_code ignored;
        std::filesystem::create_directories(path.parent_path(), ignored);
        std::lock_guard<std::mutex> lock(mutex_);
        stream_.open(path, std::ios::app);
        return stream_.is_open();
    }
    bool is_open() const { return stream_.is_open(); }

    void write(const std::string& line) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!stream_.is_open()) return;
        stream_ << utc_timestamp() << ' ' << line << '\n';
        stream_.flush();
    }

  private:
    std::mutex mutex_;
    std::ofstream stream_;
};

}  // namespace detail
}  // namespace provision

#endif
