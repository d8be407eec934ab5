// SPDX-License-Identifier: MIT
// The provision CLI's --dry-run answer: a table of what a real run would do.
//
// One row per entry (source, target, size, whether a digest will verify it,
// the credential it needs and whether it is set, whether it is already in
// place), then the entries that would fail and why, the totals, the bytes
// still to fetch and the free space of every filesystem that receives files.
// Everything but the free space comes from the library's Report: the table
// shows what the provisioner found, not a guess made beside it.
#ifndef PROVISION_EXAMPLES_PLAN_TABLE_HPP
#define PROVISION_EXAMPLES_PLAN_TABLE_HPP

#include "format.hpp"

#include <provision/provision.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace console {

/// "HF_TOKEN: needed, set", "CIVITAI_TOKEN: needed, MISSING", "HF_TOKEN: not needed", "-"
inline std::string credential_cell(const provision::EntryOutcome& entry) {
    if (entry.credential.empty()) return "-";
    if (entry.credential == "headers") return "headers: given";
    if (entry.credential_needed)
        return entry.credential + (entry.credential_present ? ": needed, set" : ": needed, MISSING");
    return entry.credential + (entry.credential_present ? ": set" : ": not needed");
}

/// A path shown relative to the workspace when it is inside it (shorter rows).
inline std::string target_cell(const provision::EntryOutcome& entry, const std::filesystem::path& workspace) {
    if (entry.path.empty())
        return entry.status == provision::EntryOutcome::Status::failed ? "-" : "(name chosen by the server)";
    auto relative = entry.path.lexically_relative(workspace);
    if (!relative.empty() && relative.native().compare(0, 2, "..") != 0) return relative.string();
    return entry.path.string();
}

/// Bytes a filesystem would receive, and what it has free.
struct FilesystemNeed {
    provision::detail::FilesystemSpace space;
    std::uint64_t needed = 0;
    std::size_t files = 0;
};

/// Groups the files still to fetch by filesystem (statvfs), so files that
/// share a disk are summed against its one free-space figure.
/// Whether an entry still has bytes to come: planned, or failed only for want of space.
inline bool still_to_fetch(const provision::EntryOutcome& entry) {
    return entry.status == provision::EntryOutcome::Status::planned ||
           (entry.status == provision::EntryOutcome::Status::failed && entry.error.code == provision::errc::disk_full);
}

inline std::vector<FilesystemNeed> filesystem_needs(const provision::Report& report) {
    std::vector<FilesystemNeed> out;
    for (const auto& entry : report.entries) {
        if (!still_to_fetch(entry) || entry.path.empty()) continue;
        auto space = provision::detail::filesystem_space(entry.path.parent_path());
        if (!space) continue;
        auto group = std::find_if(out.begin(), out.end(),
                                  [&](const FilesystemNeed& need) { return need.space.device == space->device; });
        if (group == out.end()) {
            out.push_back(FilesystemNeed{space.value(), 0, 0});
            group = std::prev(out.end());
        }
        group->needed += entry.expected_size.value_or(0);
        ++group->files;
    }
    return out;
}

/// Prints the dry-run table to `out`. Returns nothing: the exit code is the report's.
inline void print_plan_table(const provision::Report& report, const std::filesystem::path& workspace,
                             std::FILE* out = stdout) {
    using Status = provision::EntryOutcome::Status;
    if (!report.config_errors.empty() || (report.fatal && report.entries.empty())) return;  // the summary says why

    const std::vector<std::string> header = {"ENTRY", "SOURCE", "TARGET", "SIZE", "DIGEST", "CREDENTIALS", "IN PLACE"};
    std::vector<std::vector<std::string>> rows;
    std::uint64_t to_fetch = 0;
    std::size_t planned = 0, present = 0, failed = 0, unknown_size = 0;
    for (const auto& entry : report.entries) {
        std::string size = entry.expected_size               ? human_bytes(*entry.expected_size)
                           : entry.status == Status::present ? human_bytes(entry.bytes)
                                                             : "?";
        std::string in_place = entry.status == Status::present  ? "yes"
                               : entry.status == Status::failed ? "FAILS"
                                                                : "no";
        rows.push_back({entry.key_path, provision::to_string(entry.source), target_cell(entry, workspace), size,
                        entry.digest_known || entry.status == Status::present ? "yes" : "no", credential_cell(entry),
                        in_place});
        if (entry.status == Status::failed) ++failed;
        if (entry.status == Status::present) ++present;
        if (entry.status == Status::planned) ++planned;
        if (still_to_fetch(entry)) {
            if (entry.expected_size) to_fetch += *entry.expected_size;
            else ++unknown_size;
        }
    }
    std::vector<std::size_t> widths(header.size());
    for (std::size_t c = 0; c < header.size(); ++c) {
        widths[c] = header[c].size();
        for (const auto& row : rows) widths[c] = std::max(widths[c], row[c].size());
    }
    auto print_row = [&](const std::vector<std::string>& row) {
        std::string line;
        for (std::size_t c = 0; c < row.size(); ++c) {
            std::string cell = row[c];
            if (c + 1 < row.size()) cell.resize(widths[c] + 2, ' ');
            line += cell;
        }
        std::fprintf(out, "%s\n", line.c_str());
    };
    std::fprintf(out, "\nDry run for %s (sha256 %s): nothing was downloaded\n\n", report.origin.c_str(),
                 report.config_sha256.c_str());
    print_row(header);
    for (const auto& row : rows) print_row(row);

    if (failed) {
        std::fprintf(out, "\nWould fail:\n");
        for (const auto& entry : report.entries)
            if (entry.status == Status::failed) std::fprintf(out, "  %s\n", entry.error.message.c_str());
    }
    std::fprintf(out, "\n%zu entr%s: %zu to fetch, %zu already in place, %zu would fail\n", report.entries.size(),
                 report.entries.size() == 1 ? "y" : "ies", planned, present, failed);
    std::fprintf(out, "Still to fetch: %s", human_bytes(to_fetch).c_str());
    if (unknown_size) std::fprintf(out, " plus %zu file%s of unknown size", unknown_size, unknown_size == 1 ? "" : "s");
    std::fprintf(out, "\n");
    auto needs = filesystem_needs(report);
    if (!needs.empty()) std::fprintf(out, "Free space:\n");
    for (const auto& need : needs) {
        bool short_of_space = need.needed > need.space.available;
        std::fprintf(out, "  %s: %s free, %s needed for %zu file%s\n", need.space.mount_point.string().c_str(),
                     human_bytes(need.space.available).c_str(), human_bytes(need.needed).c_str(), need.files,
                     need.files == 1 ? "" : "s");
        if (short_of_space)
            std::fprintf(out, "  WARNING: %s is %s short; free some space or point WORKSPACE at a larger disk\n",
                         need.space.mount_point.string().c_str(),
                         human_bytes(need.needed - need.space.available).c_str());
    }
    if (report.fatal) std::fprintf(out, "\nerror: %s\n", report.fatal->message.c_str());
    int code = report.exit_code();
    if (code != 0)
        std::fprintf(out, "\nA real run would fail: exit code %d (see --help for what each code means)\n", code);
    else std::fprintf(out, "\nA real run should succeed.\n");
    std::fflush(out);
}

}  // namespace console

#endif
