// SPDX-License-Identifier: MIT
// provision: where a file's bytes wait before they are installed ("<name>.part"),
// the identity they are recorded under, and the hash of a file found in place.
#ifndef PROVISION_ENGINE_PART_FILE_HPP
#define PROVISION_ENGINE_PART_FILE_HPP

#include "../error.hpp"
#include "../plan.hpp"
#include "../support/digest.hpp"
#include "../support/files.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <cerrno>
#include <filesystem>
#include <string>

namespace provision {
namespace detail {

/// Hash a whole file (for files found in place).
inline Result<std::string> sha256_file(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_error("cannot read " + path.string(), errno);
    auto hasher = Hasher::sha256();
    std::string buffer(1 << 20, '\0');
    while (true) {
        ssize_t got = ::read(fd, buffer.data(), buffer.size());
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int code = errno;
            ::close(fd);
            return errno_error("cannot read " + path.string(), code);
        }
        if (got == 0) break;
        hasher.update(buffer.data(), static_cast<std::size_t>(got));
    }
    ::close(fd);
    return hasher.hex_digest();
}

/// The identity a plan's bytes are recorded under.
inline std::string plan_identity(const DownloadPlan& plan) {
    return plan.identity.empty() ? "url:" + plan.url.redacted() : plan.identity;
}

/// "<target>.part"
inline std::filesystem::path part_path_for(const std::filesystem::path& target) {
    auto path = target;
    path += ".part";
    return path;
}

}  // namespace detail
}  // namespace provision

#endif  // PROVISION_ENGINE_PART_FILE_HPP
