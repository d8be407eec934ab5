// SPDX-License-Identifier: MIT
// check_lockfile: the lockfile component. provision.lock pins every file a
// successful run installed (entry, source coordinates, path, size, SHA-256);
// read_lockfile() parses one, naming file:line:column and the key of any
// problem. Here the pins are checked against a workspace on disk, with no
// request: each file must be where the lock says, with its size and SHA-256.
//
//   check_lockfile provision.lock WORKSPACE
//
// Exit status: 0 when every pinned file matches, 1 when any is missing or
// differs, 2 when the lock cannot be read.
#include <provision/engine/downloader.hpp>
#include <provision/lockfile/lockfile.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s provision.lock WORKSPACE\n", argv[0]);
        return 2;
    }
    provision::Result<provision::Lockfile> lock = provision::read_lockfile(argv[1]);
    if (!lock) {
        std::fprintf(stderr, "error: %s\n", lock.error().message.c_str());
        return 2;
    }
    const std::filesystem::path workspace = argv[2];
    std::printf("%s: %zu files pinned by a run of %s at %s\n", argv[1], lock->files.size(), lock->config.c_str(),
                lock->created.c_str());

    // Downloader::check() is the engine's "is this plan's file in place?":
    // it sends no request, and without an install record (none is given
    // here, so nothing is read from or written to .provision/) it proves the
    // file by hashing it against the plan's SHA-256.
    provision::HttpClient unused_http;
    provision::Downloader checker(unused_http, provision::DownloadOptions{});
    std::size_t matching = 0;
    for (const provision::LockRecord& record : lock->files) {
        std::filesystem::path file =
            workspace / record.path;  // an absolute path (outside the workspace) stays as it is
        provision::DownloadPlan plan;
        plan.key_path = record.entry;
        plan.folder = file.parent_path();
        plan.file_name = file.filename().string();
        plan.size = record.size;
        plan.sha256 = record.sha256;
        std::error_code error;
        std::uintmax_t size = std::filesystem::file_size(file, error);
        std::string status = "ok";
        std::string detail;
        if (error) {
            status = "missing";
        } else if (size != record.size) {  // no need to hash a file of the wrong size
            status = "differs";
            detail = ": " + std::to_string(size) + " bytes, the lock says " + std::to_string(record.size);
        } else if (!checker.check(plan).present) {
            status = "differs";
            detail = ": its SHA-256 is not the lock's " + record.sha256;
        }
        if (status == "ok") ++matching;
        std::printf("%-8s %s  %s%s\n", status.c_str(), record.entry.c_str(), record.path.c_str(), detail.c_str());
    }
    std::printf("%zu of %zu files match %s\n", matching, lock->files.size(), argv[1]);
    return matching == lock->files.size() ? 0 : 1;
}
