// SPDX-License-Identifier: MIT
// Fuzz target: provision.lock. `--locked FILE` reads it from the workspace or
// from anywhere the user points; what it says decides which bytes are installed.
//
// Input: the lock file's text.
#include "fuzz_support.hpp"

#include <provision/lockfile/lockfile.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace {

void check_same(const provision::LockRecord& a, const provision::LockRecord& b) {
    using provision::SourceKind;
    PROVISION_FUZZ_CHECK(a.entry == b.entry && a.file == b.file && a.source == b.source);
    PROVISION_FUZZ_CHECK(a.path == b.path && a.size == b.size && a.sha256 == b.sha256);
    if (a.source == SourceKind::huggingface) {
        PROVISION_FUZZ_CHECK(a.repo == b.repo && a.repo_type == b.repo_type && a.revision == b.revision);
        PROVISION_FUZZ_CHECK(a.commit == b.commit && a.repo_file == b.repo_file);
    }
    if (a.source == SourceKind::civitai) PROVISION_FUZZ_CHECK(a.version_id == b.version_id && a.file_id == b.file_id);
    // A URL is written redacted, so it comes back as its redacted form, which redacts to itself.
    if (a.source == SourceKind::url) PROVISION_FUZZ_CHECK(provision::redact_url(a.url) == b.url);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text = provision_fuzz::as_text(data, size);
    auto lock = provision::parse_lockfile(text, "provision.lock");
    if (!lock) {
        // Refusals name the file and say how to get out of it.
        const std::string& message = lock.error().message;
        PROVISION_FUZZ_CHECK(message.rfind("the lock file provision.lock is not usable:", 0) == 0);
        PROVISION_FUZZ_CHECK(message.find("run without --locked") != std::string::npos);
        return 0;
    }
    for (const auto& record : lock->files) {
        PROVISION_FUZZ_CHECK(!record.entry.empty() && !record.file.empty() && !record.path.empty());
        PROVISION_FUZZ_CHECK(record.sha256.size() == 64);
    }

    // What we write, we read back: the same records, in the same order.
    const std::string written = provision::lockfile_text(lock.value());
    auto again = provision::parse_lockfile(written, "provision.lock");
    if (!again) std::fprintf(stderr, "%s\n--- written:\n%s\n", again.error().message.c_str(), written.c_str());
    PROVISION_FUZZ_CHECK(again.ok());
    PROVISION_FUZZ_CHECK(again->files.size() == lock->files.size());
    for (std::size_t i = 0; i < lock->files.size(); ++i) check_same(lock->files[i], again->files[i]);
    PROVISION_FUZZ_CHECK(again->config == lock->config && again->created == lock->created);
    // Written twice, byte for byte the same (nothing depends on the clock or on order).
    PROVISION_FUZZ_CHECK(provision::lockfile_text(again.value()) == written);
    return 0;
}
