// SPDX-License-Identifier: MIT
// provision: free space per filesystem, and what a run still has to write.
//
// Checked before the first byte is fetched: a 20 GB checkpoint that fails at
// 19 GB because the disk is full wastes the whole transfer and leaves the
// disk full for everything else. Files that share a filesystem share its
// free space, so needs are summed per device, not per folder.
#ifndef PROVISION_ENGINE_DISK_SPACE_HPP
#define PROVISION_ENGINE_DISK_SPACE_HPP

#include "../error.hpp"
#include "../support/files.hpp"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace provision {
namespace detail {

struct FilesystemSpace {
    std::uint64_t device = 0;           ///< st_dev: files with equal devices share the space
    std::filesystem::path mount_point;  ///< the highest folder on the same device (for messages)
    std::uint64_t available = 0;        ///< bytes an unprivileged writer may still use
};

/// The nearest folder at or above `path` that exists (targets are often not created yet).
inline std::filesystem::path existing_ancestor(std::filesystem::path path) {
    std::error_code ignored;
    path = std::filesystem::absolute(path, ignored).lexically_normal();
    while (!path.empty() && !std::filesystem::exists(path, ignored)) {
        auto parent = path.parent_path();
        if (parent == path) break;
        path = parent;
    }
    return path;
}

/// Free space of the filesystem that holds (or will hold) `folder`.
inline Result<FilesystemSpace> filesystem_space(const std::filesystem::path& folder) {
    auto probe = existing_ancestor(folder);
    struct stat info {};
    if (::stat(probe.c_str(), &info) != 0) return errno_error("cannot inspect " + probe.string(), errno);
    struct statvfs space {};
    if (::statvfs(probe.c_str(), &space) != 0)
        return errno_error("cannot read the free space of " + probe.string(), errno);
    FilesystemSpace out;
    out.device = static_cast<std::uint64_t>(info.st_dev);
    out.available = static_cast<std::uint64_t>(space.f_bavail) * static_cast<std::uint64_t>(space.f_frsize);
    // Walk up while the device stays the same: that folder is the mount point.
    out.mount_point = probe;
    while (out.mount_point.has_parent_path() && out.mount_point.parent_path() != out.mount_point) {
        struct stat parent {};
        if (::stat(out.mount_point.parent_path().c_str(), &parent) != 0 || parent.st_dev != info.st_dev) break;
        out.mount_point = out.mount_point.parent_path();
    }
    return out;
}

/// Bytes a file already occupies on disk (a preallocated .part holds its
/// whole size, so resuming it needs no more space). 0 when it does not exist.
inline std::uint64_t allocated_bytes(const std::filesystem::path& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) return 0;
    return static_cast<std::uint64_t>(info.st_blocks) * 512u;
}

/// "1.5 GiB", "312 KiB", "17 B"
inline std::string human_size(std::uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024 && unit < 4) {
        value /= 1024;
        ++unit;
    }
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
    return buffer;
}

/// Space one file still has to take, and where.
struct SpaceNeed {
    std::filesystem::path folder;  ///< where the file goes (need not exist yet)
    std::uint64_t bytes = 0;
    std::string label;  ///< the entry, for the message
};

/// nullopt when every need fits its filesystem's free space; otherwise an
/// error listing, per short filesystem, what is needed, what is free and for
/// which entries.
inline std::optional<Error> space_shortfall(const std::vector<SpaceNeed>& needs) {
    struct Group {
        FilesystemSpace space;
        std::uint64_t needed = 0;
        std::vector<const SpaceNeed*> members;
    };
    std::vector<Group> groups;
    for (const auto& need : needs) {
        if (need.bytes == 0) continue;
        auto space = filesystem_space(need.folder);
        if (!space) continue;  // cannot tell: the write will say so if it fails
        auto group =
            std::find_if(groups.begin(), groups.end(), [&](const Group& g) { return g.space.device == space->device; });
        if (group == groups.end()) {
            groups.push_back(Group{space.value(), 0, {}});
            group = std::prev(groups.end());
        }
        group->needed += need.bytes;
        group->members.push_back(&need);
    }
    std::string text;
    for (const auto& group : groups) {
        if (group.needed <= group.space.available) continue;
        text += "\n  " + group.space.mount_point.string() + ": needs " + human_size(group.needed) + " for " +
                std::to_string(group.members.size()) + (group.members.size() == 1 ? " file" : " files") + ", has " +
                human_size(group.space.available) + " free (" + human_size(group.needed - group.space.available) +
                " short)";
        for (const auto* need : group.members)
            text += "\n    " + need->label + ": " + human_size(need->bytes) + " in " + need->folder.string();
    }
    if (text.empty()) return std::nullopt;
    return make_error(errc::disk_full, "not enough disk space for the downloads; nothing was downloaded:" + text +
                                           "\nfree some space (or point WORKSPACE at a larger disk) and run again");
}

}  // namespace detail
}  // namespace provision

#endif
