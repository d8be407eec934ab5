// SPDX-License-Identifier: MIT
// provision: plain URL entries (source = "url" and the simple name = "https://..." form).
#ifndef PROVISION_SOURCES_URL_SOURCE_HPP
#define PROVISION_SOURCES_URL_SOURCE_HPP

#include "../config.hpp"
#include "../gdrive.hpp"
#include "../plan.hpp"
#include "gdrive_source.hpp"

namespace provision {
namespace sources {

/// Describes a non-success answer to a plain URL download.
inline Error explain_url_failure(const std::string& key_path, const HttpResponse& response) {
    std::string where = key_path + ": " + response.url.redacted() + " answered HTTP " + std::to_string(response.status);
    switch (response.status) {
    case 401:
    case 403:
        return make_error(errc::auth, where + " (access denied): the file needs credentials; add them with headers or "
                                              "auth_header in the entry, or check that the link is public");
    case 404:
    case 410: return make_error(errc::not_found, where + " (not found): check the URL");
    case 429: return make_error(errc::rate_limited, where + " (too many requests): try again later");
    default:
        if (response.status >= 500) return make_error(errc::network, where + " (server error): try again later");
        return make_error(errc::network, where);
    }
}

/// A plain URL entry needs no metadata request: the plan is the URL itself.
/// Google Drive links are the exception: they go through Drive's flow.
inline Result<DownloadPlan> resolve_url(const Entry& entry, ResolveContext& context) {
    auto url = parse_url(entry.url);
    if (!url) return make_error(errc::config, entry.key_path + ": " + url.error().message);
    if (auto drive = parse_drive_link(url.value())) return plan_drive_download(context.http, entry, *drive);
    if (is_drive_host(url.value()))
        return make_error(errc::config, entry.key_path + ": " + url->redacted() +
                                            " is a Google Drive address that names no file; use the file's share link "
                                            "(https://drive.google.com/file/d/FILE_ID/view)");
    DownloadPlan plan;
    plan.key_path = entry.key_path;
    plan.url = url.value();
    plan.scoped_headers = entry.headers;
    plan.sha256 = entry.sha256;
    plan.file_name = entry.filename;
    plan.identity = "url:" + url->redacted();
    std::string key_path = entry.key_path;
    plan.explain = [key_path](const HttpResponse& response) { return explain_url_failure(key_path, response); };
    return plan;
}

}  // namespace sources
}  // namespace provision

#endif
