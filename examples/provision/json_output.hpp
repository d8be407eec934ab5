// SPDX-License-Identifier: MIT
// The provision CLI's machine-readable output (--json, --report FILE).
//
// --json writes newline-delimited JSON to stdout: one object per event, then a
// final report object. Field names are stable and documented in the README.
// Progress events are limited to one per entry per second so a log stays small.
#ifndef PROVISION_EXAMPLES_JSON_OUTPUT_HPP
#define PROVISION_EXAMPLES_JSON_OUTPUT_HPP

#include <provision/provision.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>

namespace console {

inline double seconds_since_epoch() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// One event as a JSON object: {"event", "time", "entry", "path", "bytes", "total", "message"}.
inline nlohmann::json event_json(const provision::Event& event) {
    nlohmann::json out;
    out["event"] = provision::to_string(event.kind);
    out["time"] = seconds_since_epoch();
    if (!event.key_path.empty()) out["entry"] = event.key_path;
    if (!event.path.empty()) out["path"] = event.path;
    if (event.kind == provision::EventKind::progress || event.kind == provision::EventKind::done)
        out["bytes"] = event.bytes_done;
    if (event.bytes_total) out["total"] = *event.bytes_total;
    if (!event.message.empty()) out[event.kind == provision::EventKind::done ? "status" : "message"] = event.message;
    return out;
}

/// The whole run as one JSON object; `exit_code` is the status the process
/// exits with (a stop signal decides it, not only the report).
inline nlohmann::json report_json(const provision::Report& report, bool dry_run, int exit_code) {
    nlohmann::json out;
    out["event"] = "report";
    out["origin"] = report.origin;
    out["config_sha256"] = report.config_sha256;
    out["ok"] = report.ok();
    out["exit_code"] = exit_code;
    out["dry_run"] = dry_run;
    if (report.fatal)
        out["error"] = {{"kind", provision::to_string(report.fatal->code)}, {"message", report.fatal->message}};
    nlohmann::json problems = nlohmann::json::array();
    for (const auto& diagnostic : report.config_errors)
        problems.push_back({{"file", diagnostic.where.file},
                            {"line", diagnostic.where.line},
                            {"column", diagnostic.where.column},
                            {"key", diagnostic.key_path},
                            {"message", diagnostic.message}});
    out["config_errors"] = problems;
    nlohmann::json entries = nlohmann::json::array();
    std::uint64_t bytes = 0;
    std::size_t failed = 0;
    for (const auto& entry : report.entries) {
        nlohmann::json item;
        item["entry"] = entry.key_path;
        item["category"] = entry.category;
        item["source"] = provision::to_string(entry.source);
        item["status"] = provision::to_string(entry.status);
        item["path"] = entry.path.string();
        item["size"] = entry.bytes;
        item["sha256"] = entry.sha256;
        item["identity"] = entry.identity;
        item["seconds"] = entry.seconds;
        item["expected_size"] = entry.expected_size ? nlohmann::json(*entry.expected_size) : nlohmann::json(nullptr);
        item["digest_known"] = entry.digest_known;
        item["credential"] = {
            {"name", entry.credential}, {"needed", entry.credential_needed}, {"present", entry.credential_present}};
        if (entry.status == provision::EntryOutcome::Status::failed) {
            ++failed;
            item["error"] = {{"kind", provision::to_string(entry.error.code)},
                             {"exit_code", provision::exit_code(entry.error.code)},
                             {"message", entry.error.message}};
        } else {
            bytes += entry.bytes;
        }
        entries.push_back(item);
    }
    out["entries"] = entries;
    out["totals"] = {{"entries", report.entries.size()}, {"failed", failed}, {"bytes", bytes}};
    return out;
}

/// Writes events as JSON lines, with progress limited per entry.
class JsonEventWriter {
  public:
    explicit JsonEventWriter(std::FILE* out) : out_(out) {}

    void operator()(const provision::Event& event) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto now = std::chrono::steady_clock::now();
        if (event.kind == provision::EventKind::progress) {
            auto& last = last_progress_[event.key_path];
            if (now - last < std::chrono::seconds(1)) return;
            last = now;
        }
        write(event_json(event));
    }

    void write(const nlohmann::json& object) {
        std::string line = object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        std::fputs(line.c_str(), out_);
        std::fflush(out_);
    }

  private:
    std::FILE* out_;
    std::mutex mutex_;
    std::map<std::string, std::chrono::steady_clock::time_point> last_progress_;
};

}  // namespace console

#endif
