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

    // The phases of provision_from_text, in order (provisioner/run.hpp).
    /// The layout for this config and each entry's folder; problems become config errors.
    std::vector<std::filesystem::path> place_entries(Report& report, const Manifest& manifest, Layout& layout);
    /// Multi-file and [models.auto] entries become one entry per file; the
    /// result holds each new entry's listing error, if its listing failed.
    std::vector<std::optional<Error>> expand_entries_in_place(Manifest& manifest, const Layout& layout,
                                                              std::vector<std::filesystem::path>& folders);
    /// Fails the entries that cannot succeed (gated without access, failed
    /// listing) before any download; true marks each one settled so.
    std::vector<bool> fail_unreachable_entries(Report& report, const Manifest& manifest,
                                               const std::vector<std::filesystem::path>& folders,
                                               const std::vector<std::optional<Error>>& listing_errors);
    /// Resolves and checks every unsettled entry against the disk, on the pool.
    std::vector<PendingEntry> prepare_entries(Report& report, const Manifest& manifest,
                                              const std::vector<std::filesystem::path>& folders,
                                              const std::vector<bool>& settled);
    /// True (and every pending entry failed) when the downloads would not fit.
    bool refuse_if_short_of_space(Report& report, const Manifest& manifest, const std::vector<PendingEntry>& pending);
    void download_entries(Report& report, const Manifest& manifest, std::vector<PendingEntry>& pending);

    // One entry, and what every entry shares (provisioner/entries.hpp).
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

}  // namespace provision

// The definitions, apart so that this file reads as the API (each includes
// this file first, so any of them may also be included on its own):
#include "provisioner/config_source.hpp"
#include "provisioner/run.hpp"
#include "provisioner/entries.hpp"

#endif
