// SPDX-License-Identifier: MIT
// provision: provision.lock, the exact bits a successful run installed.
//
// A config names moving things: a branch, a CivitAI version whose files can be
// re-uploaded, a URL whose content can change. After a successful run the
// provisioner writes provision.lock (TOML, so a person can read and diff it)
// with one [[file]] table per installed file: the entry, where its bytes came
// from (Hugging Face commit, CivitAI file id, URL), where it went, its size
// and SHA-256. `--locked` resolves every entry at exactly those coordinates
// and fails an entry, saying what moved, when upstream no longer serves the
// same bytes: a fleet either gets identical files on every machine or a clear
// failure, never a silent drift.
#ifndef PROVISION_LOCKFILE_LOCKFILE_HPP
#define PROVISION_LOCKFILE_LOCKFILE_HPP

#include "../config/config.hpp"
#include "../error.hpp"
#include "../plan.hpp"
#include "../sources/sources.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace provision {

/// One installed file, pinned. Records are keyed by (entry, file): an entry
/// that installs several files has one record per file.
struct LockRecord {
    std::string entry;  ///< key path, e.g. "models.lora.detail-tweaker"
    std::string file;   ///< the file's name inside its category folder (may contain '/')
    SourceKind source = SourceKind::url;
    // huggingface
    std::string repo;
    std::string repo_type;  ///< model, dataset or space
    std::string revision;   ///< as the config said (branch, tag, commit)
    std::string commit;     ///< what the revision pointed at when the lock was written
    std::string repo_file;  ///< the file's path inside the repo
    // civitai
    std::string version_id;
    std::string file_id;
    // url and Google Drive (redacted: never a token)
    std::string url;
    // every source
    std::string path;  ///< where it was installed: relative to the workspace, absolute when outside it
    std::uint64_t size = 0;
    std::string sha256;    ///< lower-case hex
    SourceLocation where;  ///< the record's [[file]] table, when read from a lock file
};

/// A whole provision.lock.
struct Lockfile {
    static constexpr int format_version = 1;
    std::string origin;   ///< the file (or URL) it was read from, for messages
    std::string config;   ///< the config the run used (redacted)
    std::string created;  ///< UTC time of the run that wrote it
    std::vector<LockRecord> files;

    /// The records of one entry (several for an entry that installs several files).
    std::vector<const LockRecord*> records_of(const std::string& entry) const {
        std::vector<const LockRecord*> out;
        for (const auto& record : files)
            if (record.entry == entry) out.push_back(&record);
        return out;
    }
};

/// Parses lock text; every problem is named with file:line:column and its key path.
inline Result<Lockfile> parse_lockfile(std::string_view text, const std::string& origin);
/// Reads and parses a lock file.
inline Result<Lockfile> read_lockfile(const std::filesystem::path& path);
/// The TOML text of a lock (records in the order given).
inline std::string lockfile_text(const Lockfile& lock);
/// Writes a lock atomically (a reader never sees half of one).
inline Result<void> write_lockfile(const std::filesystem::path& path, const Lockfile& lock);

/// The source facts of a resolved plan; path, size and sha256 are filled in
/// once the file is in place (finish_lock_record).
inline LockRecord lock_record_for(const Entry& entry, const DownloadPlan& plan);
/// Completes a record with the installed file.
inline void finish_lock_record(LockRecord& record, const std::filesystem::path& installed, std::uint64_t size,
                               const std::string& sha256, const std::filesystem::path& workspace);

/// --locked: resolves an entry at the coordinates its lock record pins and
/// checks that upstream still serves the pinned bytes. The plan expects the
/// pinned size and SHA-256, so the download itself verifies them too.
inline Result<DownloadPlan> resolve_locked(const Entry& entry, ResolveContext& context, const Lockfile& lock);
/// Adds to a download failure under --locked what it means for the lock.
inline Error explain_locked_failure(const Error& failure, const Lockfile& lock);
/// Lock records whose entry the config no longer has, each as an error naming it.
inline std::vector<std::pair<const LockRecord*, Error>> lock_records_not_in(const Lockfile& lock,
                                                                            const std::vector<Entry>& entries);

}  // namespace provision

// The definitions, apart so that this file reads as the API.
#include "impl/lockfile_inl.hpp"

#endif
