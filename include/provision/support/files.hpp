// SPDX-License-Identifier: MIT
// provision: file-system helpers: safe joins, durable writes, atomic installs.
#ifndef PROVISION_SUPPORT_FILES_HPP
#define PROVISION_SUPPORT_FILES_HPP

#include "../error.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

namespace provision {
namespace detail {

/// Joins a relative name (which may contain '/' separated folders) to a folder,
/// refusing anything that could land outside it: absolute names, "." and ".."
/// segments, empty segments, backslashes and control characters.
inline Result<std::filesystem::path> join_inside(const std::filesystem::path& folder, const std::string& relative) {
    auto refuse = [&](const std::string& why) {
        return make_error(errc::unsafe, "refusing the file name \"" + relative + "\": " + why);
    };
    if (relative.empty()) return refuse("it is empty");
    if (relative.front() == '/') return refuse("it is an absolute path");
    std::filesystem::path out = folder;
    std::size_t pos = 0;
    while (pos <= relative.size()) {
        std::size_t slash = relative.find('/', pos);
        if (slash == std::string::npos) slash = relative.size();
        std::string segment = relative.substr(pos, slash - pos);
        if (segment.empty()) return refuse("it has an empty path segment");
        if (segment == "." || segment == "..") return refuse("it climbs out of its folder");
        for (unsigned char c : segment)
            if (c < 0x20 || c == 0x7f || c == '\\') return refuse("it contains a control character or backslash");
        out /= segment;
        pos = slash + 1;
    }
    // Belt and braces: the lexical result must still start with the folder.
    auto normal_folder = folder.lexically_normal();
    auto normal_out = out.lexically_normal();
    auto mismatch = std::mismatch(normal_folder.begin(), normal_folder.end(), normal_out.begin(), normal_out.end());
    if (mismatch.first != normal_folder.end() && !mismatch.first->empty()) return refuse("it leaves its folder");
    return out;
}

/// errno as words, with disk-full mapped to its own error kind.
inline Error errno_error(const std::string& what, int code) {
    errc kind = (code == ENOSPC || code == EDQUOT) ? errc::disk_full : errc::io;
    std::string message = what + ": " + std::strerror(code);
    if (kind == errc::disk_full) message += " (free some space on that filesystem and run again)";
    return make_error(kind, message);
}

/// The one way provision opens a file it writes. The name itself is never
/// followed as a symbolic link (O_NOFOLLOW: a link someone planted in the
/// workspace fails instead of redirecting the write, or the truncation, to
/// the file it points to), and what is opened must be a regular file (not a
/// FIFO or a device; O_NONBLOCK keeps a FIFO from blocking the open). The
/// folders above are the operator's: a workspace mounted through a link is fine.
inline Result<int> open_for_writing(const std::filesystem::path& path, int flags, mode_t mode = 0644) {
    int fd = ::open(path.c_str(), flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode);
    if (fd < 0) {
        int code = errno;
        if (code == ELOOP)
            return make_error(errc::unsafe,
                              "refusing to write " + path.string() +
                                  ": it is a symbolic link (provision never writes through one; remove it)");
        return errno_error("cannot open " + path.string(), code);
    }
    struct stat info {};
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        ::close(fd);
        return make_error(errc::unsafe, "refusing to write " + path.string() + ": it is not a regular file");
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

/// A temporary file made new: whatever sits at its name (a stale one, a
/// planted link) is removed, then it is created with O_EXCL, so its bytes go
/// to a file of ours and nowhere else. `access` is O_WRONLY or O_RDWR.
inline Result<int> create_fresh(const std::filesystem::path& path, int access = O_WRONLY, mode_t mode = 0644) {
    ::unlink(path.c_str());
    return open_for_writing(path, access | O_CREAT | O_EXCL, mode);
}

/// Asks the kernel to start writing the file's dirty pages to disk, without
/// waiting for it (Linux; elsewhere a no-op, and the later fsync does it all).
inline void start_writeback(int fd) {
#if defined(__linux__)
    ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd;
#endif
}

/// Makes a rename durable by syncing the folder that holds the entry.
inline void sync_folder(const std::filesystem::path& folder) {
    int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

/// The most one pwrite() hands the kernel, cut at multiples of itself in the
/// file. The page cache sizes its folios by the write: 1 MiB writes get 1 MiB
/// folios, which come from the large free blocks that a virtual machine with
/// free page reporting has given back to its host, so every one of them is
/// faulted in again by the host. 256 KiB cost the least CPU of the sizes
/// tried; the figures are in BENCHMARKS.md ("Write size").
inline constexpr std::size_t page_cache_write_piece = 256 * 1024;

/// Writes all of `size` bytes at `offset`, retrying short writes, in pieces
/// of at most page_cache_write_piece aligned to it.
inline Result<void> write_all_at(int fd, const char* data, std::size_t size, std::uint64_t offset,
                                 const std::string& path) {
    while (size > 0) {
        std::size_t to_boundary = page_cache_write_piece - static_cast<std::size_t>(offset % page_cache_write_piece);
        ssize_t written = ::pwrite(fd, data, std::min(size, to_boundary), static_cast<off_t>(offset));
        if (written < 0) {
            if (errno == EINTR) continue;
            return errno_error("cannot write " + path, errno);
        }
        data += written;
        size -= static_cast<std::size_t>(written);
        offset += static_cast<std::uint64_t>(written);
    }
    return {};
}

}  // namespace detail
}  // namespace provision

#endif
