// SPDX-License-Identifier: MIT
// provision: ProvisioningSystem ties config, layout, sources and downloader together.
//
// text -> manifest -> plans -> transfers -> installed files + report. One failed
// entry never stops the others; the report says what happened to each.
#ifndef PROVISION_PROVISIONER_HPP
#define PROVISION_PROVISIONER_HPP

#include "config/config.hpp"
#include "report/log_file.hpp"
#include "report/redact.hpp"
#include "engine/thread_pool.hpp"
#include "engine/downloader.hpp"
#include "error.hpp"
#include "events.hpp"
#include "sources/gdrive/gdrive.hpp"
#include "http/client.hpp"
#include "layout/layout.hpp"
#include "lockfile/lockfile.hpp"
#include "plan.hpp"
#include "sources/sources.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace provision {

struct ProvisionOptions {
    std::filesystem::path workspace = "/workspace";
    std::size_t jobs = 5;  ///< entries downloaded at once
    bool dry_run = false;  ///< resolve and report, download nothing
    HttpOptions http;
    Credentials credentials;
    std::string hf_endpoint = "https://huggingface.co";
    std::string layout_name;           ///< --layout: overrides the config's [settings] layout (default sdnext)
    std::filesystem::path models_dir;  ///< --models-dir: overrides the config's [settings] models_dir
    std::optional<Layout> layout;      ///< a complete custom layout; when set, the two above and [settings] are ignored
    std::filesystem::path log_file;    ///< default: workspace/logs/provision.log
    EventHandler on_event;
    const std::atomic<bool>* cancel = nullptr;
    EnvLookup env = process_environment();
    /// What a config fetched from a URL may do beyond the defaults (see
    /// ConfigTrust): PROVISION_ALLOW_VARS, PROVISION_ALLOW_REMOTE_PATHS.
    ConfigTrust remote_config;
    /// Accept a config over plain http from a host that is not loopback
    /// (PROVISION_ALLOW_HTTP_CONFIG=1): anyone on the path could rewrite it.
    bool allow_http_config = false;
    /// The download engine's settings: connections per file (--connections),
    /// --verify, segment sizes, timeouts, retries. cancel, on_event, the
    /// connection budget and the install record are filled in by the system.
    DownloadOptions download;
    std::size_t max_connections =
        16;  ///< connections open at once over all files (at least download.connections_per_file)
    /// --locked: install exactly the files this lock pins; an entry whose upstream moved fails (lockfile/lockfile.hpp).
    std::optional<Lockfile> locked;
    std::filesystem::path lock_file;  ///< written after a successful run; default: workspace/provision.lock
    bool write_lock = true;           ///< false: write no lock (never written by dry or --locked runs)

    /// Defaults filled from WORKSPACE, HF_TOKEN, CIVITAI_TOKEN, HF_ENDPOINT and the proxy variables.
    /// Throws provision::error for an invalid proxy variable.
    static ProvisionOptions from_environment(const EnvLookup& env = process_environment()) {
        ProvisionOptions options;
        options.env = env;
        if (auto workspace = env("WORKSPACE"); workspace && !workspace->empty()) options.workspace = *workspace;
        if (auto token = env("HF_TOKEN")) options.credentials.hf_token = *token;
        if (auto token = env("CIVITAI_TOKEN")) options.credentials.civitai_token = *token;
        if (auto endpoint = env("HF_ENDPOINT"); endpoint && !endpoint->empty()) options.hf_endpoint = *endpoint;
        auto proxy = ProxySettings::from_environment(env);
        if (!proxy) throw error(proxy.error().code, proxy.error().message);
        options.http.proxy = proxy.value();
        if (auto names = env("PROVISION_ALLOW_VARS")) {
            std::size_t start = 0;
            while (start <= names->size()) {
                std::size_t comma = names->find(',', start);
                if (comma == std::string::npos) comma = names->size();
                std::string name(detail::trim(names->substr(start, comma - start)));
                if (!name.empty()) options.remote_config.allowed_variables.push_back(name);
                start = comma + 1;
            }
        }
        options.remote_config.allow_paths = env("PROVISION_ALLOW_REMOTE_PATHS").value_or("") == "1";
        options.allow_http_config = env("PROVISION_ALLOW_HTTP_CONFIG").value_or("") == "1";
        return options;
    }
};

/// What happened to one entry.
struct EntryOutcome {
    enum class Status { installed, present, planned, failed };
    std::string key_path;
    std::string category;
    SourceKind source = SourceKind::url;
    Status status = Status::failed;
    std::filesystem::path path;
    std::uint64_t bytes = 0;
    std::string sha256;
    std::string identity;
    Error error;  ///< when failed
    double seconds = 0;
    std::optional<LockRecord> pin;  ///< what exactly is in place (installed or present), for provision.lock
    // What a dry run's table shows; filled once the entry is resolved (or refused for credentials).
    std::optional<std::uint64_t> expected_size;  ///< the size the source announces
    bool digest_known = false;                   ///< a SHA-256 (or git SHA-1) will verify the bytes
    std::string credential;                      ///< "HF_TOKEN", "CIVITAI_TOKEN", "headers" or empty: what it sends
    bool credential_needed = false;              ///< the source requires it (gated, refused without it, user headers)
    bool credential_present = false;
};

inline const char* to_string(EntryOutcome::Status status) noexcept {
    switch (status) {
    case EntryOutcome::Status::installed: return "installed";
    case EntryOutcome::Status::present: return "present";
    case EntryOutcome::Status::planned: return "planned";
    case EntryOutcome::Status::failed: return "failed";
    }
    return "failed";
}

/// The result of a run.
struct Report {
    std::string origin;                     ///< the config it came from
    std::string config_sha256;              ///< of the config's text, when it was read
    std::optional<Error> fatal;             ///< the config could not be read or parsed
    std::vector<Diagnostic> config_errors;  ///< every problem found in the config
    std::vector<EntryOutcome> entries;      ///< in config order

    bool ok() const {
        if (fatal || !config_errors.empty()) return false;
        for (const auto& entry : entries)
            if (entry.status == EntryOutcome::Status::failed) return false;
        return true;
    }
    /// 0 when ok(); otherwise the exit code of the first failure's class.
    int exit_code() const {
        if (fatal) return provision::exit_code(fatal->code);
        if (!config_errors.empty()) return provision::exit_code(errc::config);
        for (const auto& entry : entries)
            if (entry.status == EntryOutcome::Status::failed) return provision::exit_code(entry.error.code);
        return 0;
    }
};

class ProvisioningSystem {
  public:
    explicit ProvisioningSystem(ProvisionOptions options)
        : options_(std::move(options)),
          http_(options_.http),
          layout_(options_.layout ? *options_.layout : Layout::sdnext(options_.workspace)) {
        redactor_.add(options_.credentials.hf_token);
        redactor_.add(options_.credentials.civitai_token);
        if (!options_.layout_name.empty()) {
            auto named = Layout::by_name(options_.layout_name, options_.workspace, options_.models_dir);
            if (!named) throw error(errc::usage, named.error().message);
            layout_ = named.value();
        }
        if (options_.jobs == 0) throw error(errc::usage, "jobs must be at least 1");
        if (options_.log_file.empty()) options_.log_file = options_.workspace / "logs" / "provision.log";
        if (options_.download.connections_per_file == 0) throw error(errc::usage, "connections must be at least 1");
        connection_budget_ = std::make_shared<ConnectionBudget>(
            std::max(options_.max_connections, options_.download.connections_per_file));
        registry_ = std::make_shared<InstallRegistry>(options_.workspace / ".provision" / "installed.json");
    }

    /// Reads a local TOML file and provisions it.
    Report provision_from_file(const std::filesystem::path& path);
    /// Downloads a TOML config over http(s) and provisions it.
    Report provision_from_url(const std::string& url);
    /// A local path or an http(s) URL.
    Report provision(const std::string& path_or_url) {
        return detail::starts_with(path_or_url, "http://") || detail::starts_with(path_or_url, "https://")
                   ? provision_from_url(path_or_url)
                   : provision_from_file(path_or_url);
    }
    /// Provisions config text already in memory; `origin` names it in messages.
    Report provision_from_text(const std::string& text, const std::string& origin, const ConfigTrust& trust = {});

    std::future<Report> provision_from_file_async(std::filesystem::path path) {
        return std::async(std::launch::async, [this, path] { return provision_from_file(path); });
    }
    std::future<Report> provision_from_url_async(std::string url) {
        return std::async(std::launch::async, [this, url] { return provision_from_url(url); });
    }

    /// The layout used when a config has no [settings] (the config's own settings win over nothing but the CLI's).
    const Layout& layout() const { return layout_; }
    /// The layout for one config: options first, then its [settings] and [directories].
    Result<Layout> layout_for(const ManifestSettings& settings) const;
    const ProvisionOptions& options() const { return options_; }

    /// Fetches config text from a URL (exposed for the CLI's dry-run and tests).
    Result<std::string> fetch_config(const std::string& url);

  private:
    /// An entry on its way: resolved into a plan, checked against the disk.
    struct PendingEntry {
        std::optional<DownloadPlan> plan;
        PlanCheck check;
        std::chrono::steady_clock::time_point started;
    };

    void emit(const Event& event);
    EntryOutcome finish_entry(EntryOutcome outcome, EntryOutcome::Status status,
                              std::chrono::steady_clock::time_point started);
    EntryOutcome prepare_entry(const Entry& entry, const std::filesystem::path& folder, PendingEntry& pending);
    EntryOutcome download_entry(EntryOutcome outcome, PendingEntry& pending);
    /// One file, one entry: entries whose files would land on one path are all
    /// failed before any download, each with one message naming the others.
    void refuse_shared_targets(Report& report, const Manifest& manifest, std::vector<PendingEntry>& pending);
    /// What escaped a task of the pool, as that entry's failure (the others go on).
    EntryOutcome escaped(EntryOutcome outcome, const Entry& entry, PendingEntry& pending, const std::string& what);
    DownloadOptions download_options();
    void describe_credentials(const Entry& entry, EntryOutcome& outcome) const;
    void write_lock(const Report& report);

    ProvisionOptions options_;
    HttpClient http_;
    Layout layout_;
    detail::LogFile log_;
    detail::SecretRedactor redactor_;  ///< every token and header value we know, scrubbed from all output
    std::mutex emit_mutex_;
    std::shared_ptr<ConnectionBudget> connection_budget_;
    std::shared_ptr<InstallRegistry> registry_;
};

// ----------------------------------------------------------------------------
// implementation

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

inline Result<std::string> ProvisioningSystem::fetch_config(const std::string& url_text) {
    auto url = parse_url(url_text);
    if (!url) return url.error();
    // A Drive share link names a file, not its bytes: run Drive's flow (sources/gdrive/gdrive.hpp).
    if (auto drive = parse_drive_link(url.value()))
        return fetch_drive_text(http_, *drive, "the config URL " + url->redacted(), 4u << 20);
    HttpRequest request;
    request.url = url.value();
    auto response = http_.fetch(request, 4u << 20);
    if (!response) return make_error(response.error().code, "cannot download the config: " + response.error().message);
    if (response->status != 200)
        return make_error(
            response->status == 404                              ? errc::not_found
            : response->status == 401 || response->status == 403 ? errc::auth
                                                                 : errc::network,
            "cannot download the config: " + url->redacted() + " answered HTTP " + std::to_string(response->status));
    if (detail::looks_like_html(response->body))
        return make_error(errc::config, "the config URL " + url->redacted() +
                                            " returned a web page, not a TOML file; link to the raw file");
    return response->body;
}

inline Report ProvisioningSystem::provision_from_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        Report report;
        report.origin = path.string();
        report.fatal =
            make_error(errc::usage, "cannot read the config file " + path.string() + ": " +
                                        (std::filesystem::exists(path) ? "permission denied" : "no such file"));
        return report;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return provision_from_text(text.str(), path.string());
}

inline Report ProvisioningSystem::provision_from_url(const std::string& url) {
    log_.open(options_.log_file);
    auto parsed = parse_url(url);
    if (parsed && parsed->scheme == "http" && !detail::is_loopback_host(parsed->host) && !options_.allow_http_config) {
        Report report;
        report.origin = redact_url(url);
        report.fatal =
            make_error(errc::unsafe, "refusing the config at " + report.origin +
                                         ": over plain http anyone on the network path can rewrite it; serve it "
                                         "over https, or set PROVISION_ALLOW_HTTP_CONFIG=1 to accept it");
        log_.write("error: " + report.fatal->message);
        return report;
    }
    auto text = fetch_config(url);
    if (!text) {
        Report report;
        report.origin = redact_url(url);
        report.fatal = text.error();
        report.fatal->message = redactor_.apply(report.fatal->message);
        log_.write("error: " + report.fatal->message);
        return report;
    }
    ConfigTrust trust = options_.remote_config;
    trust.remote = true;
    return provision_from_text(text.value(), redact_url(url), trust);
}

inline Result<Layout> ProvisioningSystem::layout_for(const ManifestSettings& settings) const {
    if (options_.layout) return *options_.layout;
    std::string name = !options_.layout_name.empty() ? options_.layout_name
                       : !settings.layout.empty()    ? settings.layout
                                                     : "sdnext";
    std::filesystem::path models_dir = options_.models_dir;
    if (models_dir.empty() && !settings.models_dir.empty()) {
        models_dir = settings.models_dir;
        if (models_dir.is_relative()) models_dir = options_.workspace / models_dir;
    }
    auto layout = Layout::by_name(name, options_.workspace, models_dir);
    if (!layout) return layout.error();
    for (const auto& [category, folder] : settings.directories) layout->add(category, folder);
    return layout;
}

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

    // Every category must exist before anything is downloaded: a typo is a config error.
    Layout layout = layout_;
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
    for (const auto& diagnostic : report.config_errors) log_.write("config error: " + diagnostic.str());
    if (!report.config_errors.empty()) return report;

    // Hugging Face entries with several files (files, include/exclude) are listed
    // once, pinned to one commit, and go on as one entry per file; [models.auto]
    // CivitAI entries learn their category from the model type (sources/sources.hpp).
    std::vector<std::optional<Error>> listing_errors;
    {
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
    }
    report.entries.resize(manifest.entries.size());
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
    // Every entry is resolved and checked against the disk before the first
    // model byte moves: entries already in place are done at once, and the
    // rest must fit on their filesystems (a download that fails at 19 of
    // 20 GB for lack of space wastes the whole transfer).
    std::vector<PendingEntry> pending(manifest.entries.size());
    {
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
    }
    refuse_shared_targets(report, manifest, pending);
    std::vector<detail::SpaceNeed> needs;
    for (std::size_t i = 0; i < manifest.entries.size(); ++i)
        if (pending[i].plan && pending[i].check.bytes_needed)
            needs.push_back({pending[i].plan->folder, *pending[i].check.bytes_needed, manifest.entries[i].key_path});
    if (auto shortfall = detail::space_shortfall(needs)) {
        report.fatal = *shortfall;
        log_.write("error: " + shortfall->message);
        for (std::size_t i = 0; i < manifest.entries.size(); ++i) {
            if (!pending[i].plan) continue;
            report.entries[i].error =
                make_error(errc::disk_full, manifest.entries[i].key_path + ": not downloaded: not enough disk space");
            report.entries[i].status = EntryOutcome::Status::failed;
        }
        return report;
    }
    {
        detail::ThreadPool pool(std::min(options_.jobs, manifest.entries.size()));
        for (std::size_t i = 0; i < manifest.entries.size(); ++i) {
            if (!pending[i].plan || options_.dry_run) continue;
            pool.submit(
                [this, &report, &pending, i] { report.entries[i] = download_entry(report.entries[i], pending[i]); },
                [this, &report, &manifest, &pending, i](const std::string& what) {
                    report.entries[i] = escaped(report.entries[i], manifest.entries[i], pending[i], what);
                });
        }
        pool.wait();
    }
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

}  // namespace provision

#endif
