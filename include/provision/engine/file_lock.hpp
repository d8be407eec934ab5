// SPDX-License-Identifier: MIT
// provision: one writer per target file, across processes.
//
// "<name>.lock" beside the target carries an flock(2) and the holder's pid.
// The kernel drops an flock when its process dies, so kill -9 never leaves a
// lock that blocks the next run. The holder removes the file before it lets
// go; a waiter that then gets the lock on the removed file notices (the path
// no longer names what it locked) and tries again on the new one.
//
// flock is advisory and, on some network filesystems, silently a no-op; two
// provisioners sharing a workspace over NFS are not protected by this.
#ifndef PROVISION_ENGINE_FILE_LOCK_HPP
#define PROVISION_ENGINE_FILE_LOCK_HPP

#include "../error.hpp"
#include "../support/files.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <utility>

namespace provision {
namespace detail {

class FileLock {
  public:
    FileLock() = default;
    FileLock(FileLock&& other) noexcept : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}
    FileLock& operator=(FileLock&& other) noexcept {
        if (this != &other) {
            release();
            path_ = std::move(other.path_);
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;
    ~FileLock() { release(); }

    bool held() const { return fd_ >= 0; }
    const std::filesystem::path& path() const { return path_; }

    /// Removes the lock file and lets go (in that order: see the file comment).
    void release() {
        if (fd_ < 0) return;
        ::unlink(path_.c_str());
        ::close(fd_);
        fd_ = -1;
    }

    /// One attempt. Ok with held() == false when another process holds it;
    /// then `holder` is its pid (0 when unknown).
    static Result<FileLock> try_acquire(const std::filesystem::path& path, long& holder) {
        holder = 0;
        for (int round = 0; round < 16; ++round) {
            auto created = open_for_writing(path, O_RDWR | O_CREAT);
            if (!created) return created.error();
            int fd = created.value();
            if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
                int code = errno;
                if (code == EWOULDBLOCK || code == EINTR) {
                    holder = read_pid(fd);
                    ::close(fd);
                    return FileLock{};
                }
                ::close(fd);
                return errno_error("cannot lock " + path.string(), code);
            }
            // The previous holder may have removed the file between our open
            // and our flock: then we hold a lock on a name nobody else sees.
            struct stat opened {};
            struct stat named {};
            if (::fstat(fd, &opened) == 0 && ::stat(path.c_str(), &named) == 0 && opened.st_dev == named.st_dev &&
                opened.st_ino == named.st_ino) {
                std::string pid = std::to_string(::getpid()) + "\n";
                if (::ftruncate(fd, 0) == 0) (void)write_all_at(fd, pid.data(), pid.size(), 0, path.string());
                FileLock lock;
                lock.path_ = path;
                lock.fd_ = fd;
                return lock;
            }
            ::close(fd);
        }
        return make_error(errc::io, "cannot lock " + path.string() + ": it keeps being replaced");
    }

    /// Waits for the lock, polling so that `cancelled` is noticed promptly.
    /// `on_wait(pid)` runs once, when the first attempt finds it taken.
    /// `waited` tells the caller that someone else held it (and may have
    /// finished the work meanwhile).
    static Result<FileLock> acquire(const std::filesystem::path& path, const std::function<bool()>& cancelled,
                                    const std::function<void(long)>& on_wait, bool& waited) {
        waited = false;
        while (true) {
            long holder = 0;
            auto attempt = try_acquire(path, holder);
            if (!attempt || attempt->held()) return attempt;
            if (!waited && on_wait) on_wait(holder);
            waited = true;
            if (cancelled && cancelled())
                return make_error(errc::cancelled, "stopped while waiting for " + path.string());
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

  private:
    static long read_pid(int fd) {
        char buffer[32] = {};
        ssize_t got = ::pread(fd, buffer, sizeof buffer - 1, 0);
        if (got <= 0) return 0;
        return std::strtol(buffer, nullptr, 10);
    }

    std::filesystem::path path_;
    int fd_ = -1;
};

/// "<target>.lock"
inline std::filesystem::path lock_path_for(const std::filesystem::path& target) {
    auto path = target;
    path += ".lock";
    return path;
}

}  // namespace detail
}  // namespace provision

#endif
