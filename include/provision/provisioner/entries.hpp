// SPDX-License-Identifier: MIT
// provision: ProvisioningSystem::one entry's way, from resolving it to its outcome.
// Each runs on a pool thread; what escapes it fails that entry alone. Also the
// shared parts every entry uses: events (redacted, logged), download options,
// credentials in the report, and the lockfile written after a full run.
// Before the guard: provisioner.hpp includes its definitions, this file in its
// place among them, whichever of them is included first.
#include "../provisioner.hpp"

#ifndef PROVISION_PROVISIONER_ENTRIES_HPP
#define PROVISION_PROVISIONER_ENTRIES_HPP

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace provision {

inline void ProvisioningSystem::emit(const Event& original) {
    Event event = original;
    event.message = redactor_.apply(std::move(event.message));
    if (event.kind != EventKind::progress) {
        std::string line = std::string(to_string(event.kind));
        if (!event.key_path.empty()) line += " " + event.key_path;
        if (!event.path.empty()) line += " -> " + event.path;
        if (!event.message.empty()) line += ": " + event.message;
        log_.write(line);
    }
    if (options_.on_event) {
        std::lock_guard<std::mutex> lock(emit_mutex_);
        options_.on_event(event);
    }
}
inline DownloadOptions ProvisioningSystem::download_options() {
    DownloadOptions download = options_.download;
    download.cancel = options_.cancel;
    download.on_event = [this](const Event& event) { emit(event); };
    download.connection_budget = connection_budget_;
    download.registry = registry_;
    return download;
}
inline EntryOutcome ProvisioningSystem::finish_entry(EntryOutcome outcome, EntryOutcome::Status status,
                                                     std::chrono::steady_clock::time_point started) {
    outcome.status = status;
    outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    outcome.error.message = redactor_.apply(std::move(outcome.error.message));  // the report is output too
    if (outcome.pin && (status == EntryOutcome::Status::installed || status == EntryOutcome::Status::present))
        finish_lock_record(*outcome.pin, outcome.path, outcome.bytes, outcome.sha256, options_.workspace);
    else outcome.pin.reset();
    if (status == EntryOutcome::Status::failed)
        emit(Event{EventKind::failed, outcome.key_path, outcome.path.string(), 0, std::nullopt, outcome.error.message});
    else
        emit(Event{EventKind::done, outcome.key_path, outcome.path.string(), outcome.bytes, outcome.bytes,
                   to_string(status)});
    return outcome;
}
inline EntryOutcome ProvisioningSystem::escaped(EntryOutcome outcome, const Entry& entry, PendingEntry& pending,
                                                const std::string& what) {
    pending.plan.reset();  // whatever it got to, it is not downloaded
    outcome.key_path = entry.key_path;
    outcome.category = entry.category;
    outcome.source = entry.source;
    outcome.error = make_error(errc::internal, entry.key_path + ": " + what);
    return finish_entry(outcome, EntryOutcome::Status::failed, pending.started);
}
inline EntryOutcome ProvisioningSystem::prepare_entry(const Entry& entry, const std::filesystem::path& folder,
                                                      PendingEntry& pending) {
    pending.started = std::chrono::steady_clock::now();
    EntryOutcome outcome;
    outcome.key_path = entry.key_path;
    outcome.category = entry.category;
    outcome.source = entry.source;
    if (options_.cancel && options_.cancel->load()) {
        outcome.error = make_error(errc::cancelled, entry.key_path + ": stopped before it started");
        return finish_entry(outcome, EntryOutcome::Status::failed, pending.started);
    }
    ResolveContext context{http_, options_.credentials, options_.hf_endpoint};
    auto plan = options_.locked ? resolve_locked(entry, context, *options_.locked) : resolve_entry(entry, context);
    if (!plan) {
        outcome.error = plan.error();
        describe_credentials(entry, outcome);
        return finish_entry(outcome, EntryOutcome::Status::failed, pending.started);
    }
    if (options_.dry_run && entry.source == SourceKind::url && detail::starts_with(plan->identity, "url:")) {
        // Other sources asked their service already; a plain URL is asked
        // for its first byte, so a dead or refused link fails the dry run.
        auto reachable = sources::probe_url_plan(http_, plan.value());
        if (!reachable) {
            outcome.error = reachable.error();
            describe_credentials(entry, outcome);
            return finish_entry(outcome, EntryOutcome::Status::failed, pending.started);
        }
    }
    plan->folder = folder;
    outcome.identity = plan->identity;
    outcome.pin = lock_record_for(entry, plan.value());
    outcome.expected_size = plan->size;
    outcome.digest_known = !plan->sha256.empty() || !plan->git_sha1.empty();
    describe_credentials(entry, outcome);
    if (!plan->file_name.empty()) outcome.path = folder / plan->file_name;
    // Every resolved entry is announced, so a live view can count what is
    // still queued before its transfer starts.
    if (options_.dry_run) outcome.bytes = plan->size.value_or(0);
    emit(Event{EventKind::plan, entry.key_path, outcome.path.string(), 0, plan->size, plan->url.redacted()});
    // No request: the install record (or, without one, the file's digest)
    // says whether it is already in place.
    Downloader downloader(http_, download_options());
    pending.check = downloader.check(plan.value());
    if (options_.dry_run && !pending.check.present) {
        pending.plan = std::move(plan).value();  // kept for the space check, never downloaded
        return finish_entry(outcome, EntryOutcome::Status::planned, pending.started);
    }
    if (pending.check.present) {
        outcome.path = pending.check.present->path;
        outcome.bytes = pending.check.present->size;
        outcome.sha256 = pending.check.present->sha256;
        return finish_entry(outcome, EntryOutcome::Status::present, pending.started);
    }
    if (!pending.check.reason.empty()) log_.write("replacing " + outcome.path.string() + ": " + pending.check.reason);
    pending.plan = std::move(plan).value();
    outcome.status = EntryOutcome::Status::planned;
    return outcome;
}
inline EntryOutcome ProvisioningSystem::download_entry(EntryOutcome outcome, PendingEntry& pending) {
    Downloader downloader(http_, download_options());
    auto installed = downloader.download(*pending.plan, pending.check);
    if (!installed) {
        outcome.error =
            options_.locked ? explain_locked_failure(installed.error(), *options_.locked) : installed.error();
        return finish_entry(outcome, EntryOutcome::Status::failed, pending.started);
    }
    outcome.path = installed->path;
    outcome.bytes = installed->size;
    outcome.sha256 = installed->sha256;
    return finish_entry(outcome,
                        installed->already_present ? EntryOutcome::Status::present : EntryOutcome::Status::installed,
                        pending.started);
}
inline void ProvisioningSystem::refuse_shared_targets(Report& report, const Manifest& manifest,
                                                      std::vector<PendingEntry>& pending) {
    std::map<std::filesystem::path, std::vector<std::size_t>> claims;
    for (std::size_t i = 0; i < report.entries.size(); ++i) {
        const auto& outcome = report.entries[i];
        bool placed = outcome.status != EntryOutcome::Status::failed || pending[i].plan;
        std::filesystem::path where = outcome.path;
        // A plain URL without filename is named by its server; the engine
        // takes the URL's own name until the answer says otherwise, and so
        // does this check (a server that renames it meets the file lock).
        if (where.empty() && pending[i].plan && detail::starts_with(pending[i].plan->identity, "url:")) {
            std::string guess = detail::sanitize_file_name(pending[i].plan->url.last_segment());
            if (!guess.empty()) where = pending[i].plan->folder / guess;
        }
        if (placed && !where.empty()) claims[where.lexically_normal()].push_back(i);
    }
    for (const auto& [path, claimants] : claims) {
        if (claimants.size() < 2) continue;
        std::string names;
        for (std::size_t k = 0; k < claimants.size(); ++k)
            names += (k == 0                      ? ""
                      : k + 1 == claimants.size() ? " and "
                                                  : ", ") +
                     manifest.entries[claimants[k]].key_path;
        std::string message =
            names + (claimants.size() == 2 ? " would both be saved as " : " would all be saved as ") + path.string() +
            "; nothing was downloaded for them: give each its own filename = \"...\" (or remove the duplicate)";
        for (std::size_t index : claimants) {
            EntryOutcome outcome = report.entries[index];
            outcome.error = make_error(errc::config, manifest.entries[index].key_path + ": " + message);
            pending[index].plan.reset();
            report.entries[index] = finish_entry(outcome, EntryOutcome::Status::failed, pending[index].started);
        }
    }
}
/// Which credential an entry uses, whether it must have it, and whether it is set.
inline void ProvisioningSystem::describe_credentials(const Entry& entry, EntryOutcome& outcome) const {
    bool refused = outcome.status == EntryOutcome::Status::failed && outcome.error.code == errc::auth;
    switch (entry.source) {
    case SourceKind::huggingface:
        outcome.credential = "HF_TOKEN";
        outcome.credential_present = !detail::trim(options_.credentials.hf_token).empty();
        outcome.credential_needed = entry.gated || refused;
        break;
    case SourceKind::civitai:
        outcome.credential = "CIVITAI_TOKEN";
        outcome.credential_present = !detail::trim(options_.credentials.civitai_token).empty();
        outcome.credential_needed = refused;
        break;
    case SourceKind::url:
        outcome.credential = entry.headers.empty() ? "" : "headers";
        outcome.credential_present = !entry.headers.empty();
        outcome.credential_needed = !entry.headers.empty() || refused;
        break;
    }
}
/// provision.lock after a run that put every entry in place. A dry run
/// installed nothing, and a --locked run installed what its lock already says.
inline void ProvisioningSystem::write_lock(const Report& report) {
    if (!options_.write_lock || options_.dry_run || options_.locked || !report.ok()) return;
    Lockfile lock;
    lock.config = report.origin;
    lock.created = detail::utc_timestamp();
    for (const auto& entry : report.entries)
        if (entry.pin) lock.files.push_back(*entry.pin);
    std::filesystem::path path =
        options_.lock_file.empty() ? options_.workspace / "provision.lock" : options_.lock_file;
    auto written = write_lockfile(path, lock);
    emit(Event{EventKind::message, "", written ? path.string() : "", 0, std::nullopt,
               written ? "wrote " + path.string() + " (" + std::to_string(lock.files.size()) +
                             (lock.files.size() == 1 ? " file pinned)" : " files pinned)")
                       : "warning: " + written.error().message});
}
}  // namespace provision

#endif  // PROVISION_PROVISIONER_ENTRIES_HPP
