// SPDX-License-Identifier: MIT
// provision: ProvisioningSystem::provision_from_text, one run in its phases:
// parse and place every entry (a config error stops the run before any
// request), expand multi-file and [models.auto] entries, fail the entries that
// cannot succeed (gated without access, a listing that failed), resolve and
// check the rest against the disk, make sure they fit, download, then report
// lock records the config no longer has and write the lockfile.
// Before the guard: provisioner.hpp includes its definitions, this file in its
// place among them, whichever of them is included first.
#include "../provisioner.hpp"

#ifndef PROVISION_PROVISIONER_RUN_HPP
#define PROVISION_PROVISIONER_RUN_HPP

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace provision {

inline Report ProvisioningSystem::provision_from_text(const std::string& text, const std::string& origin,
                                                      const ConfigTrust& trust) {
    if (!log_.is_open()) log_.open(options_.log_file);
    log_.write("---- provision " PROVISION_VERSION_STRING " run: " + origin + (options_.dry_run ? " (dry run)" : ""));
    Report report;
    report.origin = origin;
    Manifest manifest = parse_config(text, origin, options_.env, trust);
    report.config_sha256 = manifest.sha256;
    log_.write("config: " + origin + (trust.remote ? " (fetched from a URL)" : " (a local file)") + ", sha256 " +
               manifest.sha256);
    for (const auto& entry : manifest.entries) {
        for (const auto& header : entry.headers) redactor_.add(header.second);
        redactor_.add_url_credentials(entry.url);
    }
    report.config_errors = manifest.diagnostics;

    Layout layout = layout_;
    std::vector<std::filesystem::path> folders = place_entries(report, manifest, layout);
    for (const auto& diagnostic : report.config_errors) log_.write("config error: " + diagnostic.str());
    if (!report.config_errors.empty()) return report;

    auto listing_errors = expand_entries_in_place(manifest, layout, folders);
    report.entries.resize(manifest.entries.size());
    auto settled = fail_unreachable_entries(report, manifest, folders, listing_errors);
    // Every entry is resolved and checked against the disk before the first
    // model byte moves: entries already in place are done at once, and the
    // rest must fit on their filesystems (a download that fails at 19 of
    // 20 GB for lack of space wastes the whole transfer).
    auto pending = prepare_entries(report, manifest, folders, settled);
    refuse_shared_targets(report, manifest, pending);
    if (refuse_if_short_of_space(report, manifest, pending)) return report;
    download_entries(report, manifest, pending);
    if (!options_.dry_run) registry_->sync();
    if (options_.locked) {
        for (auto& [record, problem] : lock_records_not_in(*options_.locked, manifest.entries)) {
            EntryOutcome stale;
            stale.key_path = record->entry;
            stale.source = record->source;
            stale.error = problem;
            report.entries.push_back(
                finish_entry(stale, EntryOutcome::Status::failed, std::chrono::steady_clock::now()));
        }
    }
    write_lock(report);
    return report;
}

inline std::vector<std::filesystem::path> ProvisioningSystem::place_entries(Report& report, const Manifest& manifest,
                                                                            Layout& layout) {
    // Every category must exist before anything is downloaded: a typo is a config error.
    if (auto chosen = layout_for(manifest.settings)) {
        layout = chosen.value();
    } else {
        report.config_errors.push_back(Diagnostic{manifest.settings.layout_where, "settings", chosen.error().message});
    }
    std::vector<std::filesystem::path> folders;
    for (const auto& entry : manifest.entries) {
        if (entry.category == "auto") {  // [models.auto]: the folder follows the CivitAI model type (expand_entries)
            folders.emplace_back();
            continue;
        }
        auto folder = layout.folder_for(entry.category);
        if (!folder) {
            SourceLocation where = entry.where;
            report.config_errors.push_back(Diagnostic{where, "models." + entry.category, folder.error().message});
            folders.emplace_back();
        } else {
            folders.push_back(folder.value());
        }
    }
    return folders;
}

inline std::vector<std::optional<Error>> ProvisioningSystem::expand_entries_in_place(
    Manifest& manifest, const Layout& layout, std::vector<std::filesystem::path>& folders) {
    // Hugging Face entries with several files (files, include/exclude) are listed
    // once, pinned to one commit, and go on as one entry per file; [models.auto]
    // CivitAI entries learn their category from the model type (sources/sources.hpp).
    std::vector<std::optional<Error>> listing_errors;
    ResolveContext listing{http_, options_.credentials, options_.hf_endpoint};
    std::vector<Entry> entries;
    std::vector<std::filesystem::path> entry_folders;
    for (auto& expanded : provision::expand_entries(manifest.entries, listing)) {
        std::filesystem::path folder = folders[expanded.from];
        if (!expanded.error && expanded.entry.category != manifest.entries[expanded.from].category) {
            auto placed = layout.folder_for(expanded.entry.category);
            if (placed) folder = placed.value();
            else expanded.error = make_error(errc::config, expanded.entry.key_path + ": " + placed.error().message);
        }
        entries.push_back(std::move(expanded.entry));
        entry_folders.push_back(folder);
        listing_errors.push_back(std::move(expanded.error));
    }
    manifest.entries = std::move(entries);
    folders = std::move(entry_folders);
    return listing_errors;
}

inline std::vector<bool> ProvisioningSystem::fail_unreachable_entries(
    Report& report, const Manifest& manifest, const std::vector<std::filesystem::path>& folders,
    const std::vector<std::optional<Error>>& listing_errors) {
    // Gated Hugging Face entries need a working token: it is checked once, up
    // front, and only the entries that cannot succeed are failed; the rest run.
    std::vector<bool> settled(manifest.entries.size(), false);
    ResolveContext gated_check{http_, options_.credentials, options_.hf_endpoint};
    auto problems = sources::check_gated_entries(manifest.entries, gated_check);
    for (std::size_t i = 0; i < listing_errors.size(); ++i)
        if (listing_errors[i]) problems.push_back(sources::GatedEntryProblem{i, *listing_errors[i]});
    for (auto& problem : problems) {
        if (settled[problem.index]) continue;  // a gated entry whose listing failed too: one reason is enough
        const Entry& entry = manifest.entries[problem.index];
        EntryOutcome& outcome = report.entries[problem.index];
        outcome.key_path = entry.key_path;
        outcome.category = entry.category;
        outcome.source = entry.source;
        outcome.status = EntryOutcome::Status::failed;
        outcome.error = problem.error;
        outcome.error.message = redactor_.apply(outcome.error.message);
        describe_credentials(entry, outcome);
        if (entry.source == SourceKind::huggingface && !folders[problem.index].empty())  // where it would have gone
            outcome.path = folders[problem.index] / (entry.filename.empty() ? entry.file : entry.filename);
        settled[problem.index] = true;
        emit(Event{EventKind::message, entry.key_path, "", 0, std::nullopt, problem.error.message});
    }
    return settled;
}

inline std::vector<ProvisioningSystem::PendingEntry> ProvisioningSystem::prepare_entries(
    Report& report, const Manifest& manifest, const std::vector<std::filesystem::path>& folders,
    const std::vector<bool>& settled) {
    std::vector<PendingEntry> pending(manifest.entries.size());
    detail::ThreadPool pool(std::min(options_.jobs, manifest.entries.size()));
    for (std::size_t i = 0; i < manifest.entries.size(); ++i) {
        if (settled[i]) continue;
        pool.submit([this, &report, &manifest, &folders, &pending,
                     i] { report.entries[i] = prepare_entry(manifest.entries[i], folders[i], pending[i]); },
                    [this, &report, &manifest, &pending, i](const std::string& what) {
                        report.entries[i] = escaped(EntryOutcome{}, manifest.entries[i], pending[i], what);
                    });
    }
    pool.wait();
    return pending;
}

inline bool ProvisioningSystem::refuse_if_short_of_space(Report& report, const Manifest& manifest,
                                                         const std::vector<PendingEntry>& pending) {
    std::vector<detail::SpaceNeed> needs;
    for (std::size_t i = 0; i < manifest.entries.size(); ++i)
        if (pending[i].plan && pending[i].check.bytes_needed)
            needs.push_back({pending[i].plan->folder, *pending[i].check.bytes_needed, manifest.entries[i].key_path});
    auto shortfall = detail::space_shortfall(needs);
    if (!shortfall) return false;
    report.fatal = *shortfall;
    log_.write("error: " + shortfall->message);
    for (std::size_t i = 0; i < manifest.entries.size(); ++i) {
        if (!pending[i].plan) continue;
        report.entries[i].error =
            make_error(errc::disk_full, manifest.entries[i].key_path + ": not downloaded: not enough disk space");
        report.entries[i].status = EntryOutcome::Status::failed;
    }
    return true;
}

inline void ProvisioningSystem::download_entries(Report& report, const Manifest& manifest,
                                                 std::vector<PendingEntry>& pending) {
    detail::ThreadPool pool(std::min(options_.jobs, manifest.entries.size()));
    for (std::size_t i = 0; i < manifest.entries.size(); ++i) {
        if (!pending[i].plan || options_.dry_run) continue;
        pool.submit([this, &report, &pending, i] { report.entries[i] = download_entry(report.entries[i], pending[i]); },
                    [this, &report, &manifest, &pending, i](const std::string& what) {
                        report.entries[i] = escaped(report.entries[i], manifest.entries[i], pending[i], what);
                    });
    }
    pool.wait();
}

}  // namespace provision

#endif  // PROVISION_PROVISIONER_RUN_HPP
