// SPDX-License-Identifier: MIT
// The provision CLI's text output: one line per event, and the final summary.
#ifndef PROVISION_EXAMPLES_CONSOLE_HPP
#define PROVISION_EXAMPLES_CONSOLE_HPP

#include <provision/provision.hpp>

#include <cstdio>
#include <mutex>
#include <string>

namespace console {

/// "1.5 GiB", "312 KiB", "17 B"
inline std::string human_bytes(std::uint64_t bytes) {
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

/// Prints events as plain lines (suitable for terminals and container logs alike).
class EventPrinter {
  public:
    explicit EventPrinter(bool verbose) : verbose_(verbose) {}

    void operator()(const provision::Event& event) {
        using provision::EventKind;
        std::string line;
        switch (event.kind) {
        case EventKind::start:
            line = "downloading " + event.key_path + " -> " + event.path;
            if (event.bytes_total) line += " (" + human_bytes(*event.bytes_total) + ")";
            break;
        case EventKind::progress:
            if (!verbose_) return;
            line = "  " + event.key_path + ": " + human_bytes(event.bytes_done);
            if (event.bytes_total) line += " of " + human_bytes(*event.bytes_total);
            break;
        case EventKind::retry: line = "retrying " + event.key_path + ": " + event.message; break;
        case EventKind::done: line = event.message + " " + event.key_path + " -> " + event.path; break;
        case EventKind::failed: line = "FAILED " + event.message; break;
        case EventKind::plan:
            line = "would download " + event.key_path + " -> " + (event.path.empty() ? "(name chosen by the server)" : event.path) +
                   " from " + event.message;
            if (event.bytes_total) line += " (" + human_bytes(*event.bytes_total) + ")";
            break;
        case EventKind::message: line = event.message; break;
        }
        std::lock_guard<std::mutex> lock(mutex_);
        std::fprintf(stderr, "%s\n", line.c_str());
        std::fflush(stderr);
    }

  private:
    bool verbose_;
    std::mutex mutex_;
};

/// The end-of-run table: each entry, its outcome, size and time; then totals.
inline void print_summary(const provision::Report& report, bool dry_run) {
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
    std::printf("\n%s summary for %s\n", dry_run ? "Dry-run" : "Provisioning", report.origin.c_str());
    for (const auto& entry : report.entries) {
        const char* status = provision::to_string(entry.status);
        if (entry.status == provision::EntryOutcome::Status::failed) {
            ++failed;
            std::printf("  %-9s %s\n            %s\n", status, entry.key_path.c_str(), entry.error.message.c_str());
            continue;
        }
        bytes += entry.bytes;
        std::printf("  %-9s %s -> %s (%s, %.1f s)\n", status, entry.key_path.c_str(),
                    entry.path.empty() ? "(name chosen by the server)" : entry.path.string().c_str(),
                    human_bytes(entry.bytes).c_str(), entry.seconds);
    }
    std::printf("%zu entr%s, %zu ok, %zu failed, %s\n", report.entries.size(), report.entries.size() == 1 ? "y" : "ies",
                report.entries.size() - failed, failed, human_bytes(bytes).c_str());
    std::fflush(stdout);
}

}  // namespace console

#endif
