// SPDX-License-Identifier: MIT
// provision: the record of installed files, ${WORKSPACE}/.provision/installed.json.
//
// A container restart runs the same config again. Re-hashing 20 GB of
// checkpoints on every boot would take minutes, so each installed file is
// recorded with what it is (the source identity and validator, its SHA-256)
// and with the facts that change when anyone touches it (size, mtime with
// nanoseconds, inode, device). A re-run trusts a file whose facts still match
// its record: a stat per entry, no bytes read. --verify re-hashes anyway.
//
// Several provisioners may share a workspace: every update takes an flock on
// "installed.json.lock", re-reads the file if another process changed it,
// applies the change and replaces the file atomically (temporary + rename).
#ifndef PROVISION_ENGINE_INSTALL_RECORD_HPP
#define PROVISION_ENGINE_INSTALL_RECORD_HPP

#include "../error.hpp"
#include "../support/files.hpp"
#include "../support/json_fields.hpp"
#include "../report/log_file.hpp"
#include "resume_state.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

namespace provision {
namespace detail {

/// What changes when a file is replaced or edited in place.
struct FileStamp {
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
    std::uint64_t inode = 0;
    std::uint64_t device = 0;
    bool operator==(const FileStamp& other) const {
        return size == other.size && mtime_ns == other.mtime_ns && inode == other.inode && device == other.device;
    }
    bool operator!=(const FileStamp& other) const { return !(*this == other); }
};

/// The stamp of a regular file; nullopt when it is missing or not a regular file.
inline std::optional<FileStamp> stamp_of(const std::filesystem::path& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) return std::nullopt;
    FileStamp stamp;
    stamp.size = static_cast<std::uint64_t>(info.st_size);
    stamp.mtime_ns = static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1000000000LL + info.st_mtim.tv_nsec;
    stamp.inode = static_cast<std::uint64_t>(info.st_ino);
    stamp.device = static_cast<std::uint64_t>(info.st_dev);
    return stamp;
}

/// One installed file.
struct InstallRecord {
    std::string path;  ///< absolute, normalised
    FileStamp stamp;
    std::string sha256;
    std::string identity;   ///< the plan's identity ("url:...", "hf:repo@commit/file", ...)
    std::string validator;  ///< the plan's validator (ETag or commit), may be empty
    std::string installed_at;
};

/// The key records are stored under.
inline std::string record_key(const std::filesystem::path& target) {
    std::error_code ignored;
    return std::filesystem::absolute(target, ignored).lexically_normal().string();
}

/// The version of installed.json this code writes and reads.
inline constexpr int install_records_version = 1;

/// The records as the JSON text of installed.json.
inline std::string install_records_text(const std::map<std::string, InstallRecord>& records) {
    nlohmann::json files = nlohmann::json::object();
    for (const auto& [key, record] : records) {
        files[key] = {
            {"size", record.stamp.size},     {"mtime_ns", record.stamp.mtime_ns},
            {"inode", record.stamp.inode},   {"device", record.stamp.device},
            {"sha256", record.sha256},       {"identity", record.identity},
            {"validator", record.validator}, {"installed_at", record.installed_at},
        };
    }
    nlohmann::json document = {
        {"format", "provision-installed"}, {"version", install_records_version}, {"files", files}};
    return document.dump(1) + "\n";
}

/// Reads the text of installed.json. Anyone may have written it: an unreadable
/// or foreign file, or a malformed record, only costs re-verification (the
/// records it drops are hashed again), never a wrong file.
inline std::map<std::string, InstallRecord> parse_install_records(std::string_view text) {
    std::map<std::string, InstallRecord> records;
    auto document = nlohmann::json::parse(text, nullptr, false);
    if (document.is_discarded() || !document.is_object() || !json_field_is(document, "format", "provision-installed") ||
        json_field_unsigned(document, "version") != std::uint64_t{install_records_version})
        return records;
    auto files = document.find("files");
    if (files == document.end() || !files->is_object()) return records;
    for (auto item = files->begin(); item != files->end(); ++item) {
        try {
            const auto& value = item.value();
            InstallRecord record;
            record.path = item.key();
            auto size = json_unsigned(value.at("size"));
            auto mtime_ns = json_signed(value.at("mtime_ns"));
            auto inode = json_unsigned(value.at("inode"));
            auto device = json_unsigned(value.at("device"));
            if (!size || !mtime_ns || !inode || !device) continue;  // re-hashed, as for any odd record
            record.stamp = FileStamp{*size, *mtime_ns, *inode, *device};
            record.sha256 = value.at("sha256").get<std::string>();
            record.identity = value.at("identity").get<std::string>();
            record.validator = value.value("validator", "");
            record.installed_at = value.value("installed_at", "");
            records[record.path] = record;
        } catch (const nlohmann::json::exception&) {
            continue;
        }
    }
    return records;
}

inline std::map<std::string, InstallRecord> read_install_records(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return parse_install_records(text.str());
}

class InstallRegistry {
  public:
    explicit InstallRegistry(std::filesystem::path file) : file_(std::move(file)) {}

    const std::filesystem::path& file() const { return file_; }

    std::optional<InstallRecord> find(const std::filesystem::path& target) {
        std::lock_guard<std::mutex> lock(mutex_);
        reload_if_changed();
        auto found = records_.find(record_key(target));
        if (found == records_.end()) return std::nullopt;
        return found->second;
    }

    /// For files named by the server: the record of `identity` directly inside `folder`.
    std::optional<InstallRecord> find_by_identity(const std::string& identity, const std::filesystem::path& folder) {
        std::lock_guard<std::mutex> lock(mutex_);
        reload_if_changed();
        std::string prefix = record_key(folder);
        for (const auto& [key, record] : records_) {
            if (record.identity != identity) continue;
            if (std::filesystem::path(key).parent_path().string() == prefix) return record;
        }
        return std::nullopt;
    }

    Result<void> put(InstallRecord record) {
        record.path = record_key(record.path);
        if (record.installed_at.empty()) record.installed_at = utc_timestamp();
        return update([&](std::map<std::string, InstallRecord>& records) { records[record.path] = record; });
    }

    Result<void> erase(const std::filesystem::path& target) {
        std::string key = record_key(target);
        return update([&](std::map<std::string, InstallRecord>& records) { records.erase(key); });
    }

    /// Makes the latest update durable. Updates themselves skip fsync (they
    /// are a cache: losing one after a power cut costs a re-hash, not a
    /// wrong file), so the provisioner calls this once at the end of a run.
    void sync() {
        int fd = ::open(file_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ::fsync(fd);
            ::close(fd);
        }
        sync_folder(file_.parent_path());
    }

  private:
    // Both called with mutex_ held.
    void reload_if_changed() {
        auto stamp = stamp_of(file_);
        if (!stamp) {
            if (loaded_) records_.clear();
            loaded_.reset();
            return;
        }
        if (loaded_ && *loaded_ == *stamp) return;
        records_ = read_install_records(file_);
        loaded_ = stamp;
    }

    Result<void> update(const std::function<void(std::map<std::string, InstallRecord>&)>& change) {
        std::lock_guard<std::mutex> lock(mutex_);
        std::error_code fs_error;
        std::filesystem::create_directories(file_.parent_path(), fs_error);
        if (fs_error)
            return make_error(errc::io, "cannot create " + file_.parent_path().string() + ": " + fs_error.message());
        auto lock_file = file_;
        lock_file += ".lock";
        auto opened = open_for_writing(lock_file, O_RDWR | O_CREAT);
        if (!opened) return opened.error();
        int lock_fd = opened.value();
        while (::flock(lock_fd, LOCK_EX) != 0 && errno == EINTR) {
        }
        reload_if_changed();
        change(records_);
        auto written = write_file_atomically(file_, install_records_text(records_), false, false);
        if (written) loaded_ = stamp_of(file_);
        ::close(lock_fd);  // releases the flock
        return written;
    }

    std::filesystem::path file_;
    std::mutex mutex_;
    std::map<std::string, InstallRecord> records_;
    std::optional<FileStamp> loaded_;
};

}  // namespace detail
}  // namespace provision

#endif
