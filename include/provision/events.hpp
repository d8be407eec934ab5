// SPDX-License-Identifier: MIT
// provision: what the provisioner reports while it works.
#ifndef PROVISION_EVENTS_HPP
#define PROVISION_EVENTS_HPP

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace provision {

enum class EventKind {
    plan,      ///< an entry was resolved: path and size are known
    start,     ///< a transfer started
    progress,  ///< bytes arrived (rate-limited by the emitter)
    retry,     ///< a request failed and will be retried
    done,      ///< an entry is in place (installed or already present)
    failed,    ///< an entry failed; message says why
    message,   ///< a general notice (warnings, token checks)
};

inline const char* to_string(EventKind kind) noexcept {
    switch (kind) {
    case EventKind::plan: return "plan";
    case EventKind::start: return "start";
    case EventKind::progress: return "progress";
    case EventKind::retry: return "retry";
    case EventKind::done: return "done";
    case EventKind::failed: return "error";
    case EventKind::message: return "message";
    }
    return "message";
}

struct Event {
    EventKind kind = EventKind::message;
    std::string key_path;  ///< the entry, empty for run-wide messages
    std::string path;      ///< target file when known
    std::uint64_t bytes_done = 0;
    std::optional<std::uint64_t> bytes_total;
    std::string message;  ///< human text, already redacted
};

using EventHandler = std::function<void(const Event&)>;

}  // namespace provision

#endif
