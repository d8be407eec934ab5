// SPDX-License-Identifier: MIT
// provision: url entries that are Google Drive links -> download plans.
//
// Why resolution runs Drive's whole flow: the downloader makes one plain GET
// of plan.url and treats anything but 200 as a failure, while Drive needs a
// redirect, maybe a confirmation page, and has refusals that only a page
// explains. So resolution walks the flow (sources/gdrive/gdrive.hpp) with metadata-only
// requests: it stops before the body as soon as a response is the file. The
// plan carries the confirmed URL the file answered on, its name and size from
// that response, and a refresh that walks the flow again, because the
// confirmation (uuid/at) is short-lived. The size doubles as a guard: a page
// served in the file's place later never matches it, so it is never installed.
#ifndef PROVISION_SOURCES_GDRIVE_SOURCE_HPP
#define PROVISION_SOURCES_GDRIVE_SOURCE_HPP

#include "../../config/config.hpp"
#include "gdrive.hpp"
#include "../../plan.hpp"

namespace provision {
namespace sources {

/// Resolves a url entry whose URL is a Drive link. `http` must outlive the
/// plan's refresh. User headers are not sent: Drive's public flow needs none,
/// and they were written for the host in the URL, not for Drive's other hosts.
inline Result<DownloadPlan> plan_drive_download(HttpClient& http, const Entry& entry, const DriveLink& link) {
    auto file = resolve_drive_file(http, link, entry.key_path);
    if (!file) return file.error();
    DownloadPlan plan;
    plan.key_path = entry.key_path;
    plan.url = file->url;
    if (!file->cookie_header.empty()) plan.scoped_headers.emplace_back("Cookie", file->cookie_header);
    plan.size = file->size;
    plan.sha256 = entry.sha256;
    plan.file_name = entry.filename.empty() ? file->file_name : entry.filename;
    if (plan.file_name.empty())
        return make_error(errc::config, entry.key_path + ": Google Drive did not name file " + link.id +
                                            "; set filename = \"...\" in the entry");
    plan.identity = "gdrive:" + link.id;
    plan.validator = file->validator;
    std::string key_path = entry.key_path;
    std::string id = link.id;
    plan.explain = [key_path, id](const HttpResponse& response) {
        return explain_drive_download_failure(key_path, id, response);
    };
    HttpClient* client = &http;
    plan.refresh = [client, entry, link]() { return plan_drive_download(*client, entry, link); };
    return plan;
}

}  // namespace sources
}  // namespace provision

#endif
