// SPDX-License-Identifier: MIT
// provision: ProvisioningSystem ties config, layout, sources and downloader together.
//
// text -> manifest -> plans -> transfers -> installed files + report. One failed
// entry never stops the others; the report says what happened to each.
#ifndef PROVISION_PROVISIONER_HPP
#define PROVISION_PROVISIONER_HPP

#include "config.hpp"
#include "detail/log_file.hpp"
#include "detail/thread_pool.hpp"
#include "downloader.hpp"
#include "error.hpp"
#include "events.hpp"
#include "http.hpp"
#include "layout.hpp"
#include "plan.hpp"
#include "sources.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
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
    std::optional<Layout> layout;  ///< default: Layout::sdnext(workspace)
    std::filesystem::path log_file;  ///< default: workspace/logs/provision.log
    EventHandler on_event;
    const std::atomic<bool>* cancel = nullptr;
    EnvLookup env = process_environment();

    /// Defaults filled from WORKSPACE, HF_TOKEN, CIVITAI_TOKEN, HF_ENDPOINT and SSL_CERT_FILE.
    static ProvisionOptions from_environment(const EnvLookup& env = process_environment()) {
        ProvisionOptions options;
        options.env = env;
        if (auto workspace = env("WORKSPACE"); workspace && !workspace->empty()) options.workspace = *workspace;
        if (auto token = env("HF_TOKEN")) options.credentials.hf_token = *token;
        if (auto token = env("CIVITAI_TOKEN")) options.credentials.civitai_token = *token;
        if (auto endpoint = env("HF_ENDPOINT"); endpoint && !endpoint->empty()) options.hf_endpoint = *endpoint;
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
    std::string origin;                    ///< the config it came from
    std::optional<Error> fatal;            ///< the config could not be read or parsed
    std::vector<Diagnostic> config_errors; ///< every problem found in the config
    std::vector<EntryOutcome> entries;     ///< in config order

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
        : options_(std::move(options)), http_(options_.http),
          layout_(options_.layout ? *options_.layout : Layout::sdnext(options_.workspace)) {
        if (options_.jobs == 0) throw error(errc::usage, "jobs must be at least 1");
        if (options_.log_file.empty()) options_.log_file = options_.workspace / "logs" / "provision.log";
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
    Report provision_from_text(const std::string& text, const std::string& origin);

    std::future<Report> provision_from_file_async(std::filesystem::path path) {
        return std::async(std::launch::async, [this, path] { return provision_from_file(path); });
    }
    std::future<Report> provision_from_url_async(std::string url) {
        return std::async(std::launch::async, [this, url] { return provision_from_url(url); });
    }

    const Layout& layout() const { return layout_; }
    const ProvisionOptions& options() const { return options_; }

    /// Fetches config text from a URL (exposed for the CLI's dry-run and tests).
    Result<std::string> fetch_config(const std::string& url);

  private:
    void emit(const Event& event);
    EntryOutcome run_entry(const Entry& entry, const std::filesystem::path& folder);

    ProvisionOptions options_;
    HttpClient http_;
    Layout layout_;
    detail::LogFile log_;
    std::mutex emit_mutex_;
};

// ----------------------------------------------------------------------------
// implementation

inline void ProvisioningSystem::emit(const Event& event) {
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
    HttpRequest request;
    request.url = url.value();
    auto response = http_.fetch(request, 4u << 20);
    if (!response) return make_error(response.error().code, "cannot download the config: " + response.error().message);
    if (response->status != 200)
        return make_error(response->status == 404 ? errc::not_found : response->status == 401 || response->status == 403 ? errc::auth : errc::network,
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
        report.fatal = make_error(errc::usage, "cannot read the config file " + path.string() + ": " +
                                                   (std::filesystem::exists(path) ? "permission denied" : "no such file"));
        return report;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return provision_from_text(text.str(), path.string());
}

inline Report ProvisioningSystem::provision_from_url(const std::string& url) {
    log_.open(options_.log_file);
    auto text = fetch_config(url);
    if (!text) {
        Report report;
        report.origin = redact_url(url);
        report.fatal = text.error();
        log_.write("error: " + text.error().message);
        return report;
    }
    return provision_from_text(text.value(), redact_url(url));
}

inline Report ProvisioningSystem::provision_from_text(const std::string& text, const std::string& origin) {
    if (!log_.is_open()) log_.open(options_.log_file);
    log_.write("---- provision " PROVISION_VERSION_STRING " run: " + origin + (options_.dry_run ? " (dry run)" : ""));
    Report report;
    report.origin = origin;
    Manifest manifest = parse_config(text, origin, options_.env);
    report.config_errors = manifest.diagnostics;

    // Every category must exist before anything is downloaded: a typo is a config error.
    std::vector<std::filesystem::path> folders;
    for (const auto& entry : manifest.entries) {
        auto folder = layout_.folder_for(entry.category);
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

    report.entries.resize(manifest.entries.size());
    detail::ThreadPool pool(std::min(options_.jobs, manifest.entries.size()));
    for (std::size_t i = 0; i < manifest.entries.size(); ++i) {
        pool.submit([this, &report, &manifest, &folders, i] {
            report.entries[i] = run_entry(manifest.entries[i], folders[i]);
        });
    }
    pool.wait();
    return report;
}

inline EntryOutcome ProvisioningSystem::run_entry(const Entry& entry, const std::filesystem::path& folder) {
    auto started = std::chrono::steady_clock::now();
    EntryOutcome outcome;
    outcome.key_path = entry.key_path;
    outcome.category = entry.category;
    outcome.source = entry.source;
    auto finish = [&](EntryOutcome::Status status) {
        outcome.status = status;
        outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        if (status == EntryOutcome::Status::failed)
            emit(Event{EventKind::failed, entry.key_path, outcome.path.string(), 0, std::nullopt, outcome.error.message});
        else
            emit(Event{EventKind::done, entry.key_path, outcome.path.string(), outcome.bytes, outcome.bytes, to_string(status)});
        return outcome;
    };
    try {
        ResolveContext context{http_, options_.credentials, options_.hf_endpoint};
        auto plan = resolve_entry(entry, context);
        if (!plan) {
            outcome.error = plan.error();
            return finish(EntryOutcome::Status::failed);
        }
        plan->folder = folder;
        outcome.identity = plan->identity;
        if (!plan->file_name.empty()) outcome.path = folder / plan->file_name;
        if (options_.dry_run) {
            outcome.bytes = plan->size.value_or(0);
            emit(Event{EventKind::plan, entry.key_path, outcome.path.string(), 0, plan->size, plan->url.redacted()});
            return finish(EntryOutcome::Status::planned);
        }
        DownloadOptions download_options;
        download_options.cancel = options_.cancel;
        download_options.on_event = [this](const Event& event) { emit(event); };
        Downloader downloader(http_, download_options);
        auto installed = downloader.download(plan.value());
        if (!installed) {
            outcome.error = installed.error();
            return finish(EntryOutcome::Status::failed);
        }
        outcome.path = installed->path;
        outcome.bytes = installed->size;
        outcome.sha256 = installed->sha256;
        return finish(installed->already_present ? EntryOutcome::Status::present : EntryOutcome::Status::installed);
    } catch (const std::exception& e) {
        outcome.error = make_error(errc::internal, entry.key_path + ": unexpected failure: " + e.what());
        return finish(EntryOutcome::Status::failed);
    }
}

}  // namespace provision

#endif
