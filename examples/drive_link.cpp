// SPDX-License-Identifier: MIT
// drive_link: the Google Drive resolver on its own. A share link is not a
// file URL: parse_drive_link() finds the file id in any of Drive's link forms,
// and resolve_drive_file() walks Drive's flow (the redirect to
// drive.usercontent.google.com, the "cannot scan for viruses" page and its
// form) with metadata requests only, stopping before the first byte of the
// file. What it learns is what a download needs: the confirmed URL, the
// file's name and size.
//
//   drive_link LINK [--cacert FILE]... [--connect-to HOST1:PORT1:HOST2:PORT2]...
//
// Exit status: 0 when the link leads to a file, 2 when it is no Drive file
// link, otherwise the CLI's code for Drive's refusal (4 deleted or unknown,
// 3 not shared, 6 over its download quota, ...).
#include <provision/sources/gdrive/gdrive.hpp>

#include <cstdio>
#include <optional>
#include <string>

namespace {
int usage_error(const std::string& message) {
    std::fprintf(stderr, "error: %s\n", message.c_str());
    return 2;  // the CLI's code for usage errors
}
}  // namespace

int main(int argc, char** argv) {
    provision::HttpOptions http_options;
    std::string link_text;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--cacert" && i + 1 < argc) {
            http_options.ca_files.push_back(argv[++i]);
        } else if (arg == "--connect-to" && i + 1 < argc) {
            auto rule = provision::ConnectTo::parse(argv[++i]);  // the TLS name stays drive.google.com
            if (!rule) return usage_error(rule.error().message);
            http_options.connect_to.push_back(rule.value());
        } else if (link_text.empty()) {
            link_text = arg;
        } else {
            return usage_error(std::string("usage: ") + argv[0] + " LINK [--cacert FILE]... [--connect-to RULE]...");
        }
    }
    auto url = provision::parse_url(link_text);
    if (!url) return usage_error(url.error().message);
    std::optional<provision::DriveLink> link = provision::parse_drive_link(url.value());
    if (!link) return usage_error(url->redacted() + " is not a Google Drive link");
    // Folders and Google Docs items are recognised so they can be refused with a reason.
    if (link->kind != provision::DriveLinkKind::file)
        return usage_error(url->redacted() + " names a " +
                           (link->kind == provision::DriveLinkKind::folder ? "Drive folder" : "Google Docs item") +
                           ", not a file");
    std::printf("file id:  %s\n", link->id.c_str());
    if (!link->resource_key.empty()) std::printf("resource key: %s\n", link->resource_key.c_str());

    // The subject starts every message ("the link: Google Drive says ...").
    provision::HttpClient http(http_options);
    provision::Result<provision::DriveFile> file = provision::resolve_drive_file(http, *link, "the link");
    if (!file) {
        std::fprintf(stderr, "error: %s\n", file.error().message.c_str());
        return provision::exit_code(file.error().code);
    }
    std::printf("name:     %s\n", file->file_name.empty() ? "(Drive did not say)" : file->file_name.c_str());
    std::printf("size:     %s\n", file->size ? (std::to_string(*file->size) + " bytes").c_str() : "unknown");
    // The confirmation values (uuid, at) are short-lived credentials: the URL is
    // printed redacted, as everything provision prints is. A download needs the
    // URL itself and the cookies Drive set on the way (file->cookie_header).
    std::printf("download: %s\n", file->url.redacted().c_str());
    return 0;
}
