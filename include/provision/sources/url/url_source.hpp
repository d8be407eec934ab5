// SPDX-License-Identifier: MIT
// provision: plain URL entries (source = "url" and the simple name = "https://..." form).
#ifndef PROVISION_SOURCES_URL_URL_SOURCE_HPP
#define PROVISION_SOURCES_URL_URL_SOURCE_HPP

#include "../../config/config.hpp"
#include "../../http/content_range.hpp"
#include "../../layout/file_name.hpp"
#include "../../http/probe.hpp"
#include "../gdrive/gdrive.hpp"
#include "../../http/client.hpp"
#include "../../plan.hpp"
#include "../gdrive/source.hpp"

namespace provision {
namespace sources {

/// Describes a non-success answer to a plain URL download.
inline Error explain_url_failure(const std::string& key_path, const HttpResponse& response) {
    std::string where = key_path + ": " + response.url.redacted() + " answered HTTP " + std::to_string(response.status);
    switch (response.status) {
    case 401:
    case 403:
        return make_error(errc::auth, where +
                                          " (access denied): the file needs credentials; add them with headers or "
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

/// What a dry run learns about a plain URL without its body: the answer to a
/// GET for the first byte. (Not HEAD: links presigned for GET, as S3 and R2
/// issue them, refuse HEAD.) Fills in the size and, when the server names
/// the file, its name (else the URL's); a refusal is explained as the
/// download would be.
inline Result<void> probe_url_plan(HttpClient& http, DownloadPlan& plan) {
    HttpRequest request;
    request.url = plan.url;
    request.scoped_headers = plan.scoped_headers;
    request.headers = plan.headers;
    request.headers.emplace_back("Range", "bytes=0-0");
    auto is_success = [](const HttpResponse& response) { return response.status >= 200 && response.status < 300; };
    auto probed = detail::probe(http, request, is_success, 64 * 1024);
    if (!probed) return make_error(probed.error().code, plan.key_path + ": " + probed.error().message);
    const HttpResponse& response = probed->response;
    if (!probed->payload) {
        if (plan.explain) return plan.explain(response);
        return make_error(errc::network, plan.key_path + ": " + response.url.redacted() + " answered HTTP " +
                                             std::to_string(response.status));
    }
    std::string type = detail::to_lower(response.header("Content-Type").value_or(""));
    std::string name = plan.file_name;
    auto disposition = response.header("Content-Disposition");
    std::optional<std::string> proposed =
        disposition ? detail::content_disposition_filename(*disposition) : std::nullopt;
    if (name.empty() && proposed) name = detail::sanitize_file_name(*proposed);
    if (type.find("text/html") != std::string::npos &&
        (name.empty() || detail::is_model_file_name(name) || detail::is_model_file_name(response.url.path)))
        return make_error(errc::integrity, plan.key_path + ": " + response.url.redacted() +
                                               " answers with a web page, not a model file; the link may need a login "
                                               "or point to the page about the file rather than the file");
    if (response.status == 206) {
        if (auto range = detail::parse_content_range(response.header("Content-Range").value_or("")))
            plan.size = range->total;
    } else if (auto length = response.header("Content-Length")) {
        if (auto size = detail::decimal_value(detail::trim(*length))) plan.size = size;
    }
    // Without a name from the server the file is saved under the URL's own
    // (the rule Transfer::settle_name follows), so a dry run can show it.
    if (name.empty()) name = detail::sanitize_file_name(plan.url.last_segment());
    if (plan.file_name.empty() && !name.empty()) plan.file_name = name;
    return {};
}

}  // namespace sources
}  // namespace provision

#endif
