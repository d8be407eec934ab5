// SPDX-License-Identifier: MIT
// provision: what a Downloader is told (DownloadOptions, RetryPolicy) and what
// it answers (InstalledFile, PlanCheck), apart from the engine that does the
// work, so a reader of the API sees these first.
#ifndef PROVISION_ENGINE_DOWNLOAD_OPTIONS_HPP
#define PROVISION_ENGINE_DOWNLOAD_OPTIONS_HPP

#include "connection_budget.hpp"
#include "install_record.hpp"
#include "../events.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace provision {

/// Caps the connections open at once over every file of a run; share one
/// between the Downloaders of a run (the provisioner does).
using ConnectionBudget = detail::ConnectionBudget;
/// The record of installed files (${WORKSPACE}/.provision/installed.json).
using InstallRegistry = detail::InstallRegistry;

/// How often and how patiently failed requests are tried again.
struct RetryPolicy {
    /// A connection gives up after this many failures in a row without
    /// receiving a byte; the file fails when its last connection gives up.
    int max_attempts = 8;
    std::chrono::milliseconds base_delay{1000};  ///< first backoff (doubles each time, with jitter)
    std::chrono::milliseconds max_delay{30000};  ///< backoff never waits longer
    std::chrono::milliseconds max_server_delay{
        std::chrono::minutes(10)};  ///< longest Retry-After / RateLimit wait honoured
};

struct DownloadOptions {
    const std::atomic<bool>* cancel = nullptr;  ///< set to stop transfers promptly (partial files are kept)
    EventHandler on_event;                      ///< reports; called on the thread that runs download()
    std::chrono::milliseconds progress_interval{250};

    /// Connections one file may use at once. CDNs cap each connection (20 MB/s
    /// and less is common), so one large file alone may take the whole run's
    /// budget (ProvisionOptions::max_connections, 16); files downloading at the
    /// same time share it, as connections give way to waiting files.
    std::size_t connections_per_file = 16;
    std::shared_ptr<ConnectionBudget> connection_budget;  ///< cap over all files; null: only the per-file cap
    std::uint64_t min_segment_size =
        8u << 20;  ///< files under twice this use one connection; no piece is split below it
    std::uint64_t max_segment_size = 64u << 20;      ///< largest piece handed to a connection at once
    std::chrono::milliseconds stall_timeout{30000};  ///< a connection silent this long is dropped and retried
    /// A connection must deliver at least this much per stall_timeout, or it
    /// counts as stalled: a server dripping a few bytes a second would
    /// otherwise never time out (about 550 bytes/s with the defaults).
    std::uint64_t stall_min_bytes = 16 * 1024;
    RetryPolicy retry;
    std::chrono::milliseconds checkpoint_interval{1000};  ///< how often resume state is flushed
    /// Bytes a connection collects before it writes (also its buffer). Small
    /// reads (TLS records, a slow server) are collected; writes are cut at
    /// 256 KiB pieces anyway (support/files.hpp), so a larger batch would only
    /// hold more memory: 16 connections with 1 MiB each held 16 MiB.
    std::size_t write_batch = 256u << 10;
    /// Reserve the whole .part before the first byte (fallocate), so a full
    /// disk fails at once. Off, the .part grows as bytes arrive (as on a
    /// filesystem without fallocate) and a full disk fails mid-way.
    bool preallocate = true;

    std::shared_ptr<InstallRegistry> registry;  ///< records installed files; null: none kept
    bool verify = false;                        ///< re-hash recorded files instead of trusting their records
};

/// A file that is in place and verified.
struct InstalledFile {
    std::filesystem::path path;
    std::uint64_t size = 0;
    std::string sha256;
    bool already_present = false;  ///< nothing was downloaded
};

/// What a plan still needs, found without any request.
struct PlanCheck {
    std::optional<InstalledFile> present;       ///< in place and trusted: nothing to do
    std::filesystem::path target;               ///< empty when the server chooses the name
    std::optional<std::uint64_t> bytes_needed;  ///< disk space still to be taken; nullopt: size unknown
    std::string reason;                         ///< why it is not present, for the log (may be empty)
};

}  // namespace provision

#endif  // PROVISION_ENGINE_DOWNLOAD_OPTIONS_HPP
