// SPDX-License-Identifier: MIT
// provision: the command-line provisioner (the seed's provision.py, in C++).
//
//   provision [CONFIG_PATH_OR_URL] [--dry-run] [--workspace DIR] [--jobs N]
//             [--cacert FILE] [--connect-to HOST1:PORT1:HOST2:PORT2]... [--help] [--version]
//             [--locked LOCK] [--lock-out FILE] [--print-schema]
#include "build_info.hpp"
#include "json_output.hpp"
#include "plan_table.hpp"
#include "progress_view.hpp"
#include "schema_text.hpp"  // generated from schema/provision.schema.json
#include "summary.hpp"

#include <provision/provision.hpp>

#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

namespace {

std::atomic<bool> stop_requested{false};
std::atomic<int> stop_signal{0};

extern "C" void on_stop_signal(int signal_number) {
    stop_signal.store(signal_number);
    stop_requested.store(true);
}

const char* exit_codes_help =
    "Exit codes:\n"
    "  0    every entry is in place and verified\n"
    "  2    usage or configuration error (with --locked: the config and the lock disagree)\n"
    "  3    authentication: a token is missing, invalid or lacks access\n"
    "  4    not found: repo, file, version or URL does not exist\n"
    "  5    network failure that survived retries\n"
    "  6    rate limited\n"
    "  7    disk full\n"
    "  8    integrity: size or digest mismatch, a web page instead of a model, an unsafe name,\n"
    "       an untrusted TLS certificate;\n"
    "       with --locked: upstream moved (a branch now names other bytes, a changed file)\n"
    "  9    local file-system error\n"
    "  70   internal error (an exception escaped the library): that entry failed, the others ran\n"
    "  130  interrupted (SIGINT), 143 terminated (SIGTERM)\n";

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"provision " PROVISION_VERSION_STRING
                 ": download the models a TOML config lists into the web UI's folders"};
    app.footer(
        std::string("Environment: PROVISION_URL (config when none is given), WORKSPACE (default /workspace),\n"
                    "  HF_TOKEN, CIVITAI_TOKEN, HF_ENDPOINT, SSL_CERT_FILE, HTTPS_PROXY, HTTP_PROXY, NO_PROXY,\n"
                    "  PROVISION_ALLOW_VARS, PROVISION_ALLOW_REMOTE_PATHS, PROVISION_ALLOW_HTTP_CONFIG.\n"
                    "Files: $WORKSPACE/logs/provision.log (appended per run, rotated at 8 MiB, 3 old logs kept);\n"
                    "  $WORKSPACE/provision.lock (written after a successful run; see --locked).\n"
                    // One example per line, "command  # what it does": tools/manpage.py
                    // turns each into a paragraph of provision(1).
                    "Examples:\n"
                    "  provision models.toml  # fill $WORKSPACE's model folders from a local config\n"
                    "  PROVISION_URL=https://example.com/models.toml provision  # the config from a URL\n"
                    "  provision --dry-run models.toml  # what would be fetched, from metadata alone\n"
                    "  provision --locked provision.lock models.toml  # the exact files of an earlier run\n"
                    "  provision --verify --json models.toml  # re-hash what is in place; events as JSON\n") +
        exit_codes_help);
    std::string config;
    bool dry_run = false;
    bool verbose = false;
    std::string workspace;
    std::size_t jobs = 5;
    std::size_t connections = provision::DownloadOptions{}.connections_per_file;
    int retries = provision::RetryPolicy{}.max_attempts;
    bool verify = false;
    std::vector<std::string> allowed_variables;
    bool allow_remote_paths = false;
    bool allow_http_config = false;
    std::vector<std::string> ca_files;
    std::vector<std::string> connect_to;
    app.add_option("config", config, "TOML config: a local path or an http(s) URL (default: $PROVISION_URL)");
    app.add_flag(
        "--dry-run", dry_run,
        "resolve every entry (metadata requests only, no model bytes) and print a table: target, size, digest, "
        "credentials, already in place; totals and free space per filesystem; non-zero exit if any entry would fail");
    app.add_option("--workspace", workspace, "target directory (default: $WORKSPACE or /workspace)");
    app.add_option("-j,--jobs", jobs, "entries downloaded at once (default 5)")->check(CLI::Range(1, 64));
    app.add_option("--connections", connections,
                   "connections per file when the server supports Range (default 16; at most 16 open over all files, "
                   "shared by the files downloading at once, or N if larger)")
        ->check(CLI::Range(1, 64));
    app.add_flag("--verify", verify, "re-hash files already in place instead of trusting the install record");
    app.add_option("--retries", retries,
                   "retries of a failing download (server errors, 429, broken or stalled connections) before its entry "
                   "fails (default 8; "
                   "waits double from 1 s up to 30 s, or what the server asks, up to 10 minutes)")
        ->check(CLI::Range(0, 100));
    app.add_option("--cacert", ca_files, "extra trusted CA certificates (PEM file); may repeat")
        ->check(CLI::ExistingFile)
        ->allow_extra_args(false);
    app.add_option("--connect-to", connect_to,
                   "HOST1:PORT1:HOST2:PORT2: connect there instead (curl semantics); may repeat")
        ->allow_extra_args(false);
    std::string layout_name;
    std::string models_dir;
    app.add_option("--layout", layout_name,
                   "folder layout: sdnext (default), a1111, forge or comfyui; overrides [settings]")
        ->check(CLI::IsMember({"sdnext", "a1111", "forge", "comfyui"}));
    app.add_option("--models-dir", models_dir, "the UI's models folder (default: the layout's, inside the workspace)");
    bool quiet = false;
    bool json = false;
    std::string report_file;
    app.add_flag("-v,--verbose", verbose, "also show resolved sources and files already in place");
    app.add_flag("-q,--quiet", quiet, "show only failures, notices and the summary")->excludes("--verbose");
    app.add_flag("--json", json, "write newline-delimited JSON events and a final report object to stdout");
    app.add_option("--report", report_file, "also write the final report as JSON to this file");
    std::string locked_file;
    std::string lock_out;
    app.add_option("--locked", locked_file,
                   "install exactly the files this provision.lock pins; fail any entry whose upstream moved");
    app.add_option("--allow-var", allowed_variables,
                   "a ${VAR} a config fetched from a URL may expand (local configs expand any); may repeat")
        ->allow_extra_args(false);
    app.add_flag("--allow-remote-paths", allow_remote_paths,
                 "let a config fetched from a URL place files outside the workspace (absolute or .. folders)");
    app.add_flag("--allow-http-config", allow_http_config,
                 "accept a config over plain http from a host that is not loopback");
    app.add_option("--lock-out", lock_out,
                   "where a successful run writes its lock (default: $WORKSPACE/provision.lock)");
    bool print_schema = false;
    app.add_flag("--print-schema", print_schema,
                 "print the config's JSON Schema and exit (save it beside provision.toml for editors; see README)");
    app.set_version_flag("--version", console::version_text());
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }

    provision::ProvisionOptions options;
    if (print_schema) {
        std::fputs(provision_schema_json, stdout);
        return std::fflush(stdout) == 0 ? 0 : provision::exit_code(provision::errc::io);
    }
    try {
        options = provision::ProvisionOptions::from_environment();
    } catch (const provision::error& e) {  // e.g. an unusable HTTPS_PROXY value
        std::fprintf(stderr, "error: %s\n", e.what());
        return provision::exit_code(e.code());
    }
    if (!workspace.empty()) options.workspace = workspace;
    if (config.empty()) {
        if (auto url = options.env("PROVISION_URL"); url && !url->empty()) config = *url;
    }
    if (config.empty()) {
        std::fprintf(stderr, "error: no config given: pass a path or URL, or set PROVISION_URL\n%s",
                     app.help().c_str());
        return 2;
    }
    if (auto cert_file = options.env("SSL_CERT_FILE"); cert_file && !cert_file->empty()) ca_files.push_back(*cert_file);
    options.http.ca_files = ca_files;
    for (const auto& rule_text : connect_to) {
        auto rule = provision::ConnectTo::parse(rule_text);
        if (!rule) {
            std::fprintf(stderr, "error: %s\n", rule.error().message.c_str());
            return 2;
        }
        options.http.connect_to.push_back(rule.value());
    }
    for (const auto& name : allowed_variables) options.remote_config.allowed_variables.push_back(name);
    if (allow_remote_paths) options.remote_config.allow_paths = true;
    if (allow_http_config) options.allow_http_config = true;
    options.layout_name = layout_name;
    options.models_dir = models_dir;
    options.jobs = jobs;
    options.download.connections_per_file = connections;
    options.download.retry.max_attempts = retries;
    options.download.verify = verify;
    options.dry_run = dry_run;
    options.cancel = &stop_requested;
    if (!lock_out.empty()) options.lock_file = lock_out;
    if (!locked_file.empty()) {
        auto lock = provision::read_lockfile(locked_file);
        if (!lock) {
            std::fprintf(stderr, "error: %s\n", lock.error().message.c_str());
            return provision::exit_code(lock.error().code);
        }
        options.locked = std::move(lock).value();
    }
    console::JsonEventWriter json_writer(stdout);
    console::ProgressView view(json ? console::ViewOptions{} : console::detect_view_options(quiet, verbose));
    if (json) {
        options.on_event = [&json_writer](const provision::Event& event) { json_writer(event); };
    } else {
        options.on_event = [&view](const provision::Event& event) { view.on_event(event); };
    }

    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);

    try {
        provision::ProvisioningSystem system(options);
        provision::Report report = system.provision(config);
        view.finish();
        // The status is decided once, before anything is printed, so the
        // summary, the JSON report and the process agree: a run stopped by
        // SIGTERM exits 143, not the 130 its cancelled entries map to.
        int status = stop_requested.load() ? (stop_signal.load() == SIGTERM ? 143 : 130) : report.exit_code();
        auto report_object = console::report_json(report, dry_run, status);
        if (json) {
            json_writer.write(report_object);
        } else if (dry_run && report.config_errors.empty() && !report.entries.empty()) {
            console::print_plan_table(report, options.workspace);
        } else {
            console::print_summary(report, dry_run, status);
        }
        if (!report_file.empty() && !console::write_report_file(report_file, report_object)) {
            std::fprintf(stderr, "error: cannot write the report to %s\n", report_file.c_str());
            if (report.ok()) return provision::exit_code(provision::errc::io);
        }
        if (stop_requested.load()) {
            std::size_t left = 0;
            for (const auto& entry : report.entries)
                if (entry.status == provision::EntryOutcome::Status::failed &&
                    entry.error.code == provision::errc::cancelled)
                    ++left;
            std::fprintf(
                stderr,
                "interrupted: %zu entr%s left unfinished; partial downloads are kept and the next run continues them\n",
                left, left == 1 ? "y" : "ies");
        }
        return status;
    } catch (const provision::error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return provision::exit_code(e.code());
    }
}
