// SPDX-License-Identifier: MIT
// download_one: the download engine on its own. A provision::Downloader runs
// one DownloadPlan: the bytes go to NAME.part (over several connections when
// the server honours Range), are verified, and only then renamed into place.
// It reports through provision::Event callbacks, and stops promptly when the
// flag DownloadOptions::cancel points at is set, keeping the .part and its
// resume state so the next run fetches only the missing bytes.
//
//   download_one URL FOLDER [--sha256 HEX]
//
// Exit status: 0 once the file is in place, 130 when stopped by Ctrl-C
// (SIGINT), otherwise the CLI's code for the failure (4 not found, 8 a digest
// that does not match, ...). https URLs are checked against the system's CAs,
// or the bundle SSL_CERT_FILE names.
#include <provision/engine/downloader.hpp>
#include <provision/sources/sources.hpp>  // resolve_entry: the URL becomes a plan

#include <atomic>
#include <csignal>
#include <cstdio>
#include <string>

namespace {

// A signal handler may touch nothing but lock-free atomics; the engine's
// threads poll this one, so no signal reaches into the library itself.
std::atomic<bool> stop_requested{false};
extern "C" void on_sigint(int) { stop_requested.store(true); }

void print_event(const provision::Event& event) {
    std::string total = event.bytes_total ? std::to_string(*event.bytes_total) : "?";
    if (event.kind == provision::EventKind::start)
        std::printf("start %s (%s bytes)\n", event.path.c_str(), total.c_str());
    else if (event.kind == provision::EventKind::progress)  // at most one per progress_interval (250 ms)
        std::printf("progress %llu of %s bytes\n", static_cast<unsigned long long>(event.bytes_done), total.c_str());
    else std::printf("%s %s\n", provision::to_string(event.kind), event.message.c_str());  // retries, notices
    std::fflush(stdout);  // into a pipe or a log, each line as it happens
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGINT, on_sigint);
    if (argc != 3 && !(argc == 5 && std::string(argv[3]) == "--sha256")) {
        std::fprintf(stderr, "usage: %s URL FOLDER [--sha256 HEX]\n", argv[0]);
        return 2;
    }
    // The entry a config's `name = "URL"` line makes. For a plain URL
    // resolve_entry sends no request; a Google Drive link runs Drive's flow.
    provision::Entry entry;
    entry.key_path = "download_one";  // names the download in every message
    entry.source = provision::SourceKind::url;
    entry.url = argv[1];
    if (argc == 5) entry.sha256 = argv[4];
    provision::HttpClient http;
    provision::ResolveContext context{http, {}};  // no tokens: a plain URL needs none
    auto plan = provision::resolve_entry(entry, context);
    if (!plan) {
        std::fprintf(stderr, "error: %s\n", plan.error().message.c_str());
        return provision::exit_code(plan.error().code);
    }
    plan->folder = argv[2];  // the provisioner would take it from the layout

    provision::DownloadOptions options;
    options.cancel = &stop_requested;
    options.on_event = print_event;
    // No options.registry: without the install record a file already in
    // place is proven by its SHA-256 when one is known, else fetched again.
    provision::Downloader downloader(http, options);
    auto installed = downloader.download(plan.value());
    if (!installed) {
        // "stopped (... kept in NAME.part; the next run continues from there)"
        std::fprintf(stderr, "%s: %s\n", installed.error().code == provision::errc::cancelled ? "cancelled" : "error",
                     installed.error().message.c_str());
        return provision::exit_code(installed.error().code);  // cancelled: 130
    }
    std::printf("%s %s: %llu bytes, sha256 %s\n", installed->already_present ? "present" : "installed",
                installed->path.c_str(), static_cast<unsigned long long>(installed->size), installed->sha256.c_str());
    return 0;
}
