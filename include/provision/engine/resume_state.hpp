// SPDX-License-Identifier: MIT
// provision: the resume state kept beside a "<name>.part" file.
//
// "<name>.part.state" says which source the partial file belongs to (its
// identity and validators: ETag, expected SHA-256, size) and which byte ranges
// of it are complete. The downloader flushes the .part to disk *before* it
// writes a state that lists new ranges, and the state itself is written to a
// temporary file, synced and renamed, so after kill -9 or a power cut the
// state never claims bytes the disk does not hold. The format is versioned
// JSON: a state from a version we do not understand is ignored (the file is
// downloaded again), never guessed at.
#ifndef PROVISION_ENGINE_RESUME_STATE_HPP
#define PROVISION_ENGINE_RESUME_STATE_HPP

#include "../error.hpp"
#include "../support/files.hpp"
#include "../support/json_fields.hpp"
#include "segment_scheduler.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

namespace provision {
namespace detail {

struct ResumeState {
    static constexpr int format_version = 1;

    std::string identity;       ///< the plan's identity ("hf:repo@commit/path", "url:...")
    std::string validator;      ///< the plan's validator (ETag or commit from the source), may be empty
    std::string sha256;         ///< the expected digest, may be empty
    std::string etag;           ///< the server's ETag for these bytes, may be empty
    std::string last_modified;  ///< the server's Last-Modified, may be empty
    std::uint64_t size = 0;     ///< total size of the file
    RangeSet done;              ///< byte ranges on disk (flushed before they were recorded)
};

/// "<target>.part.state"
inline std::filesystem::path resume_state_path(const std::filesystem::path& part) {
    auto path = part;
    path += ".state";
    return path;
}

inline std::string to_json_text(const ResumeState& state) {
    nlohmann::json ranges = nlohmann::json::array();
    for (const auto& span : state.done.spans()) ranges.push_back({span.begin, span.end});
    nlohmann::json document = {
        {"format", "provision-resume"},
        {"version", ResumeState::format_version},
        {"identity", state.identity},
        {"validator", state.validator},
        {"sha256", state.sha256},
        {"etag", state.etag},
        {"last_modified", state.last_modified},
        {"size", state.size},
        {"done", ranges},
    };
    return document.dump() + "\n";
}

/// Reads the text of a state file; nullopt when it is not one, is from another
/// format version, or is inconsistent (ranges outside the file). The file sits
/// in the workspace, where anything may have written it, so nothing is trusted.
inline std::optional<ResumeState> parse_resume_state(std::string_view text) {
    auto document = nlohmann::json::parse(text, nullptr, false);
    if (document.is_discarded() || !document.is_object()) return std::nullopt;
    try {
        if (!json_field_is(document, "format", "provision-resume") ||
            json_field_unsigned(document, "version") != std::uint64_t{ResumeState::format_version})
            return std::nullopt;
        ResumeState state;
        state.identity = document.at("identity").get<std::string>();
        state.validator = document.value("validator", "");
        state.sha256 = document.value("sha256", "");
        state.etag = document.value("etag", "");
        state.last_modified = document.value("last_modified", "");
        auto size = json_unsigned(document.at("size"));
        if (!size) return std::nullopt;
        state.size = *size;
        for (const auto& range : document.at("done")) {
            auto begin = json_unsigned(range.at(0));
            auto end = json_unsigned(range.at(1));
            if (!begin || !end || *begin > *end || *end > state.size) return std::nullopt;
            state.done.add(*begin, *end);
        }
        return state;
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
}

/// Reads a state file; nullopt when it is missing, unreadable or not a valid state.
inline std::optional<ResumeState> load_resume_state(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream text;
    text << in.rdbuf();
    return parse_resume_state(text.str());
}

/// Writes `text` to `path` atomically: temporary file, fsync, rename. With
/// `sync_folder_after`, the rename itself is made durable too.
inline Result<void> write_file_atomically(const std::filesystem::path& path, const std::string& text,
                                          bool sync_folder_after = true, bool sync_data = true) {
    auto temporary = path;
    temporary += ".tmp";
    auto created = create_fresh(temporary);
    if (!created) return created.error();
    int fd = created.value();
    auto written = write_all_at(fd, text.data(), text.size(), 0, temporary.string());
    if (written && sync_data && ::fsync(fd) != 0) written = errno_error("cannot flush " + temporary.string(), errno);
    ::close(fd);
    if (!written) {
        ::unlink(temporary.c_str());
        return written;
    }
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
        int code = errno;
        ::unlink(temporary.c_str());
        return errno_error("cannot replace " + path.string(), code);
    }
    if (sync_folder_after) sync_folder(path.parent_path());
    return {};
}

inline Result<void> save_resume_state(const std::filesystem::path& path, const ResumeState& state) {
    // The folder is synced too: after a power cut the state must exist
    // whenever the data it describes does.
    return write_file_atomically(path, to_json_text(state));
}

inline void remove_resume_state(const std::filesystem::path& path) {
    ::unlink(path.c_str());
    auto temporary = path;
    temporary += ".tmp";
    ::unlink(temporary.c_str());
}

}  // namespace detail
}  // namespace provision

#endif
