// SPDX-License-Identifier: MIT
// The provision CLI's end-of-run summary: each entry, its outcome, size and time; then totals.
#ifndef PROVISION_EXAMPLES_SUMMARY_HPP
#define PROVISION_EXAMPLES_SUMMARY_HPP

#include "format.hpp"

#include <provision/provision.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

namespace console {

/// `exit_status` is the status the process will exit with, named on the last
/// line when something failed.
inline void print_summary(const provision::Report& report, bool dry_run, int exit_status) {
    if (report.fatal) {
        std::fprintf(stderr, "error: %s\n", report.fatal->message.c_str());
        return;
    }
    if (!report.config_errors.empty()) {
        std::fprintf(stderr, "%s has %zu problem%s:\n", report.origin.c_str(), report.config_errors.size(),
                     report.config_errors.size() == 1 ? "" : "s");
        for (const auto& diagnostic : report.config_errors) std::fprintf(stderr, "  %s\n", diagnostic.str().c_str());
        return;
    }
    std::size_t failed = 0;
    std::uint64_t bytes = 0;
    double seconds = 0;
    std::printf("\n%s summary for %s\n", dry_run ? "Dry-run" : "Provisioning", report.origin.c_str());
    for (const auto& entry : report.entries) {
        const char* status = provision::to_string(entry.status);
        if (entry.status == provision::EntryOutcome::Status::failed) {
            ++failed;
            std::printf("  %-9s %s\n            %s\n", status, entry.key_path.c_str(), entry.error.message.c_str());
            continue;
        }
        bytes += entry.bytes;
        seconds = std::max(seconds, entry.seconds);
        std::string detail = human_bytes(entry.bytes);
        if (entry.status == provision::EntryOutcome::Status::installed) {
            char timing[64];
            std::snprintf(timing, sizeof timing, ", %.1f s", entry.seconds);
            detail += timing;
            if (entry.seconds > 0.05) detail += ", " + human_rate(entry.bytes / entry.seconds);
        }
        std::printf("  %-9s %s -> %s (%s)\n", status, entry.key_path.c_str(),
                    entry.path.empty() ? "(name chosen by the server)" : entry.path.string().c_str(), detail.c_str());
    }
    std::printf("%zu entr%s: %zu ok, %zu failed; %s\n", report.entries.size(), report.entries.size() == 1 ? "y" : "ies",
                report.entries.size() - failed, failed, human_bytes(bytes).c_str());
    if (failed) std::printf("exit code %d (see --help for what each code means)\n", exit_status);
    std::fflush(stdout);
}

/// Writes the report object to a file (atomically: a reader never sees half a report).
inline bool write_report_file(const std::string& path, const nlohmann::json& report) {
    std::string temporary = path + ".tmp";
    {
        std::ofstream out(temporary, std::ios::trunc);
        if (!out) return false;
        out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        if (!out) return false;
    }
    return std::rename(temporary.c_str(), path.c_str()) == 0;
}

}  // namespace console

#endif
