// SPDX-License-Identifier: MIT
// provision: executes download plans.
//
// One file at a time per Downloader::download() call (the provisioner runs
// several calls at once). For each file:
//   * a lock per target ("<name>.lock") so two provisioners never write it together;
//   * an install record check: a file already in place is not fetched again;
//   * the bytes go to a preallocated "<name>.part" (a full disk shows up at
//     the start, not after 20 GB), over several connections when the server
//     honours Range (engine/segment_scheduler.hpp), in positional writes of
//     up to 256 KiB (DownloadOptions::write_batch);
//   * SHA-256 is computed while the data arrives, on a thread of its own that
//     reads back the complete prefix (engine/prefix_hasher.hpp);
//   * resume state beside the .part (engine/resume_state.hpp) lets a later
//     run continue after kill -9 or a power cut;
//   * failed requests are retried with backoff, honouring Retry-After and
//     RateLimit (http/retry_policy.hpp); a connection that delivers nothing
//     for stall_timeout is dropped and its bytes fetched again;
//   * size and digest are checked before the file is synced and renamed into
//     place: nothing half-written or unverified ever sits under a final model
//     name, and a web page is never saved where a model was expected.
#ifndef PROVISION_ENGINE_DOWNLOADER_HPP
#define PROVISION_ENGINE_DOWNLOADER_HPP

#include "download_options.hpp"
#include "file_lock.hpp"
#include "../error.hpp"
#include "../events.hpp"
#include "../http/client.hpp"
#include "../plan.hpp"

#include <filesystem>
#include <optional>

namespace provision {

class Downloader {
  public:
    Downloader(HttpClient& http, DownloadOptions options) : http_(http), options_(std::move(options)) {}

    /// Downloads one plan (or finds it in place). Thread-safe: several plans
    /// may run at once on one Downloader.
    Result<InstalledFile> download(const DownloadPlan& plan);
    /// Same, reusing a check() done just before (no second look at the disk).
    Result<InstalledFile> download(const DownloadPlan& plan, const PlanCheck& checked);

    /// Is the plan's file in place? Reads the install record (and, with
    /// options.verify or without a record, hashes the file when a digest is
    /// known). Sends no request.
    PlanCheck check(const DownloadPlan& plan);

    const DownloadOptions& options() const { return options_; }

  private:
    Result<InstalledFile> run(const DownloadPlan& plan, const PlanCheck* checked);
    /// Locks `path` for this process, waiting (and saying so) while another
    /// holds it; sets `need_check` when it waited, since the holder may have
    /// installed the file meanwhile.
    Result<void> lock_target(const DownloadPlan& plan, const std::filesystem::path& path, detail::FileLock& lock,
                             bool& need_check);
    /// Transfers until one finishes: again from scratch after a digest
    /// mismatch (once), a file that changed mid-way (three times), or a name
    /// the server chose that another process was downloading.
    Result<InstalledFile> transfer_until_done(const DownloadPlan& plan, std::optional<std::filesystem::path> target,
                                              bool name_guessed, detail::FileLock& lock);
    PlanCheck check_target(const DownloadPlan& plan, const std::filesystem::path& target);
    void emit(const Event& event) const {
        if (options_.on_event) options_.on_event(event);
    }
    bool cancelled() const { return options_.cancel && options_.cancel->load(); }

    HttpClient& http_;
    DownloadOptions options_;
};

}  // namespace provision

// The definitions, apart so that this file reads as the API.
#include "impl/downloader_inl.hpp"

#endif
