// SPDX-License-Identifier: MIT
// provision: the definitions behind sources/gdrive/gdrive.hpp: parsing every
// share form, and Drive's download flow (redirects, warning pages, refusals).
// Before the guard: gdrive.hpp includes this file at its end, and this
// file may also be included on its own.
#include "../gdrive.hpp"

#ifndef PROVISION_SOURCES_GDRIVE_IMPL_GDRIVE_INL_HPP
#define PROVISION_SOURCES_GDRIVE_IMPL_GDRIVE_INL_HPP

#include "../drive_page.hpp"
#include "../../../config/config.hpp"
#include "../../../http/content_range.hpp"
#include "../../../http/probe.hpp"
#include "../../../layout/file_name.hpp"
#include "../../../support/query.hpp"

#include <map>
#include <string_view>
#include <vector>

namespace provision {

namespace detail {

inline bool is_drive_id(std::string_view id) {
    if (id.empty() || id.size() > 256) return false;
    for (unsigned char c : id)
        if (!(std::isalnum(c) || c == '-' || c == '_')) return false;
    return true;
}

inline bool all_digits(std::string_view text) {
    if (text.empty()) return false;
    for (unsigned char c : text)
        if (!std::isdigit(c)) return false;
    return true;
}

/// Human names of Google's native item types, for messages.
inline const char* google_doc_name(std::string_view doc_type) {
    if (doc_type == "document") return "a Google Docs document";
    if (doc_type == "spreadsheets") return "a Google Sheets spreadsheet";
    if (doc_type == "presentation") return "a Google Slides presentation";
    if (doc_type == "forms") return "a Google Form";
    if (doc_type == "drawings") return "a Google Drawing";
    return "a Google Docs item";
}

/// The first request of the flow.
inline Url drive_start_url(const DriveLink& link) {
    Url url;
    url.scheme = "https";
    url.host = "drive.google.com";
    url.port = 443;
    url.path = "/uc";
    QueryParameters query{{"export", "download"}, {"id", link.id}};
    if (!link.resource_key.empty()) query.emplace_back("resourcekey", link.resource_key);
    url.query = build_query(query);
    return url;
}

/// Drive's rule: a success with Content-Disposition is the file; anything else is a page.
inline bool is_drive_file_response(const HttpResponse& response) {
    return response.status >= 200 && response.status < 300 && response.header("Content-Disposition").has_value();
}

/// Cookies Drive sets during the flow, sent back to Drive's hosts on later steps.
class DriveCookies {
  public:
    void take(const std::vector<Header>& headers) {
        for (const auto& [name, value] : headers) {
            if (!iequals(name, "Set-Cookie")) continue;
            std::string_view cookie = value;
            cookie = cookie.substr(0, cookie.find(';'));
            std::size_t eq = cookie.find('=');
            if (eq == std::string_view::npos) continue;
            std::string key(trim(cookie.substr(0, eq)));
            if (!key.empty()) values_[key] = std::string(trim(cookie.substr(eq + 1)));
        }
    }
    bool empty() const { return values_.empty(); }
    std::string header() const {
        std::string out;
        for (const auto& [name, value] : values_) out += (out.empty() ? "" : "; ") + name + "=" + value;
        return out;
    }

  private:
    std::map<std::string, std::string> values_;
};

/// Where a redirect during the flow leads.
enum class DriveHop { follow, sign_in, throttled, google_doc, foreign };

inline DriveHop classify_drive_redirect(const Url& target) {
    if (target.host == "accounts.google.com") return DriveHop::sign_in;
    if ((target.host == "google.com" || ends_with(target.host, ".google.com")) && starts_with(target.path, "/sorry"))
        return DriveHop::throttled;
    if (auto link = parse_drive_link(target); link && link->kind == DriveLinkKind::google_doc)
        return DriveHop::google_doc;
    if (is_drive_host(target) || ends_with(target.host, ".googleusercontent.com")) return DriveHop::follow;
    return DriveHop::foreign;
}

inline Error drive_doc_refusal(const std::string& subject, const DriveLink& link) {
    return make_error(errc::integrity, subject + ": the Google Drive item " + link.id + " is " +
                                           google_doc_name(link.doc_type) +
                                           ", not a file: it has no model file to download, only document exports; "
                                           "upload the file itself to Drive and use its share link");
}

inline Error drive_not_public(const std::string& who, const DriveLink& link) {
    std::string message = who +
                          " is not shared publicly: Drive asks for a Google sign-in; in Drive, open Share and set "
                          "General access to \"Anyone with the link\"";
    if (link.resource_key.empty())
        message += " (for a link shared before 2021, keep its resourcekey=... parameter in the URL)";
    return make_error(errc::auth, message);
}

inline Error drive_quota_error(const std::string& who) {
    return make_error(
        errc::rate_limited,
        who +
            ": Drive will not serve it right now: \"Too many users have viewed or downloaded this file "
            "recently\" (Drive's per-file download quota); try again later (it can take up to 24 hours), or "
            "host a copy elsewhere, e.g. on Hugging Face");
}

inline Error drive_throttled(const std::string& who) {
    return make_error(errc::rate_limited,
                      who +
                          ": Google is throttling this machine's address (HTTP 429, \"unusual traffic\"); "
                          "wait and try again later, or download from another network");
}

/// Asks Drive's viewer whether an id is a native Google item (Docs, Sheets, ...):
/// for those, `uc` answers 500 and `open?id=` redirects to docs.google.com.
inline std::optional<DriveLink> drive_item_as_google_doc(HttpClient& http, const DriveLink& link) {
    HttpRequest request;
    request.url = drive_start_url(link);
    request.url.path = "/open";
    request.url.query = build_query({{"id", link.id}});
    request.redirects = RedirectPolicy::none;
    auto probed = probe(http, request, nullptr, 64 * 1024);
    if (!probed || !probed->response.is_redirect()) return std::nullopt;
    auto location = probed->response.header("Location");
    if (!location) return std::nullopt;
    auto target = resolve_reference(probed->response.url, *location);
    if (!target) return std::nullopt;
    auto item = parse_drive_link(target.value());
    if (item && item->kind == DriveLinkKind::google_doc) return item;
    return std::nullopt;
}

/// The DriveFile for a response that is the file.
inline Result<DriveFile> drive_file_from(ProbeResult& probed, const DriveCookies& cookies, const std::string& who,
                                         const DriveFetchOptions& options) {
    const HttpResponse& response = probed.response;
    if (probed.truncated)
        return make_error(errc::config, who + " is larger than " + std::to_string(options.keep_body_up_to) +
                                            " bytes, which is too large for what was expected here (a config file)");
    DriveFile file;
    file.url = response.url;
    file.cookie_header = cookies.header();
    if (auto disposition = response.header("Content-Disposition"))
        if (auto proposed = content_disposition_filename(*disposition)) file.file_name = sanitize_file_name(*proposed);
    if (response.status == 206) {
        // "bytes 0-0/TOTAL": the size is the total, not the one byte sent.
        if (auto range = parse_content_range(response.header("Content-Range").value_or(""))) file.size = range->total;
    } else if (auto length = response.header("Content-Length")) {
        if (auto size = decimal_value(trim(*length))) file.size = size;
    }
    if (auto etag = response.header("ETag")) file.validator = *etag;
    else if (auto modified = response.header("Last-Modified")) file.validator = *modified;
    file.body = std::move(probed.response.body);
    return file;
}

}  // namespace detail

inline std::optional<DriveLink> parse_drive_link(const Url& url) {
    if (!is_drive_host(url)) return std::nullopt;
    std::vector<std::string> segments;  // empty ones kept: "/file/d//view" names no file
    for (std::size_t pos = 1; pos <= url.path.size();) {
        std::size_t slash = url.path.find('/', pos);
        if (slash == std::string::npos) slash = url.path.size();
        segments.push_back(percent_decode(url.path.substr(pos, slash - pos)));
        pos = slash + 1;
    }
    std::size_t at = 0;
    // "/u/1/..." picks a signed-in account; "/a/example.com/..." a Workspace domain.
    auto skip_account = [&] {
        while (at + 1 < segments.size() && segments[at] == "u" && detail::all_digits(segments[at + 1])) at += 2;
    };
    skip_account();
    if (at + 1 < segments.size() && segments[at] == "a") {
        at += 2;
        skip_account();
    }
    auto id_after_d = [&]() -> std::optional<std::string> {
        skip_account();
        if (at + 1 < segments.size() && segments[at] == "d" && detail::is_drive_id(segments[at + 1]))
            return segments[at + 1];
        return std::nullopt;
    };

    DriveLink link;
    link.resource_key = detail::query_value(url.query, "resourcekey").value_or("");
    static const char* doc_types[] = {"document", "spreadsheets", "presentation", "forms", "drawings"};
    if (at < segments.size()) {
        const std::string& head = segments[at];
        if (head == "file") {
            ++at;
            if (auto id = id_after_d()) {
                link.id = *id;
                return link;
            }
            return std::nullopt;
        }
        for (const char* type : doc_types) {
            if (head != type) continue;
            ++at;
            if (auto id = id_after_d()) {
                link.kind = DriveLinkKind::google_doc;
                link.doc_type = type;
                link.id = *id;
                return link;
            }
            return std::nullopt;
        }
        if (head == "drive") {
            ++at;
            skip_account();
            if (at + 1 < segments.size() && segments[at] == "folders" && detail::is_drive_id(segments[at + 1])) {
                link.kind = DriveLinkKind::folder;
                link.id = segments[at + 1];
                return link;
            }
            return std::nullopt;
        }
    }
    // open?id=, uc?id=, uc?export=download&id=, usercontent download?id=...: exactly one id.
    if (detail::query_count(url.query, "id") == 1) {
        std::string id = detail::query_value(url.query, "id").value_or("");
        if (!detail::is_drive_id(id)) return std::nullopt;
        link.id = id;
        return link;
    }
    return std::nullopt;
}

namespace detail {

/// Where a redirect from Drive may lead: on, within Google Drive and over
/// https; anything else (a sign-in, a throttle page, a Doc, another host) is
/// the error that explains it.
inline Result<Url> follow_drive_redirect(const HttpResponse& response, const std::string& who,
                                         const std::string& subject, const DriveLink& link) {
    auto location = response.header("Location");
    if (!location)
        return make_error(errc::network,
                          who + ": Drive answered HTTP " + std::to_string(response.status) + " without a Location");
    auto target = resolve_reference(response.url, *location);
    if (!target)
        return make_error(errc::network, who + ": Drive redirected to an unusable address: " + target.error().message);
    if (!target->is_https())
        return make_error(errc::unsafe,
                          who + ": Drive redirected to the unencrypted " + target->redacted() + "; refusing it");
    switch (classify_drive_redirect(target.value())) {
    case DriveHop::sign_in: return drive_not_public(who, link);
    case DriveHop::throttled: return drive_throttled(who);
    case DriveHop::google_doc: return drive_doc_refusal(subject, *parse_drive_link(target.value()));
    case DriveHop::foreign:
        return make_error(errc::network, who + ": Drive redirected to " + target->host +
                                             ", which is not a Google Drive host; refusing to follow it");
    case DriveHop::follow: break;
    }
    return target;
}

/// What a page from Drive asks for: the confirmed download URL (a
/// confirmation form), an error it states, or nullopt when it is not one of
/// Drive's known pages.
inline Result<std::optional<Url>> drive_page_next(DrivePageReading reading, const std::string& who,
                                                  const DriveLink& link, int& confirmations) {
    using Kind = DrivePageReading::Kind;
    switch (reading.kind) {
    case Kind::confirm: {
        if (++confirmations > 3)
            return make_error(errc::network, who + ": Drive kept asking to confirm the download; try again later");
        auto confirmed_id = query_value(reading.next->query, "id");
        if (confirmed_id && *confirmed_id != link.id)
            return make_error(errc::unsafe, who + ": Drive's confirmation page points at another file (" +
                                                *confirmed_id + "); refusing it");
        if (!reading.next->is_https() || classify_drive_redirect(*reading.next) != DriveHop::follow)
            return make_error(errc::unsafe, who + ": Drive's confirmation page points outside Google Drive (" +
                                                reading.next->redacted() + "); refusing it");
        Url confirmed = std::move(*reading.next);
        if (!link.resource_key.empty() && !query_value(confirmed.query, "resourcekey")) {
            auto query = parse_query(confirmed.query);
            query.emplace_back("resourcekey", link.resource_key);
            confirmed.query = build_query(query);
        }
        return std::optional<Url>(std::move(confirmed));
    }
    case Kind::quota_exceeded: return drive_quota_error(who);
    case Kind::infected:
        return make_error(errc::unsafe, who +
                                            ": Drive reports that the file is infected with a virus and lets only "
                                            "its owner download it; ask the owner for a clean copy");
    case Kind::not_found:
        return make_error(errc::not_found,
                          who + " does not exist (Drive: \"" + excerpt(reading.text) + "\"); check the link");
    case Kind::error_caption:
        return make_error(errc::network, who + ": Drive refused the download: \"" + excerpt(reading.text) + "\"");
    case Kind::sign_in: return drive_not_public(who, link);
    case Kind::unknown: break;
    }
    return std::optional<Url>();
}

/// A page Drive answered that no step understood, in words.
inline Error drive_page_failure(const std::string& who, int status, const DrivePageReading& reading) {
    const std::string http_status = "HTTP " + std::to_string(status);
    if (status == 401 || status == 403)
        return make_error(errc::auth, who + ": Drive denied access (" + http_status +
                                          "); check that the file is shared with \"Anyone with the link\"");
    if (status >= 200 && status < 300)
        return make_error(errc::integrity,
                          who + ": Drive answered with a web page" +
                              (reading.text.empty() ? std::string() : " (\"" + excerpt(reading.text) + "\")") +
                              " instead of the file; check that the link is a file shared with "
                              "\"Anyone with the link\"");
    return make_error(errc::network, who + ": Drive answered " + http_status);
}

}  // namespace detail

inline Result<DriveFile> resolve_drive_file(HttpClient& http, const DriveLink& link, const std::string& subject,
                                            const DriveFetchOptions& options) {
    const std::string who = subject + ": Google Drive file " + link.id;
    if (link.kind == DriveLinkKind::google_doc) return detail::drive_doc_refusal(subject, link);
    if (link.kind == DriveLinkKind::folder)
        return make_error(errc::config,
                          subject + ": the link names the Google Drive folder " + link.id +
                              ", not a file; provision downloads single files: share each file and use its "
                              "link (https://drive.google.com/file/d/FILE_ID/view)");

    const Url start = detail::drive_start_url(link);
    Url next = start;
    detail::DriveCookies cookies;
    bool cookie_confirmation_tried = false;
    int confirmations = 0;
    // A model's first byte is enough to learn its name, size and validator:
    // without Range, Drive starts sending the whole file, and a re-run that
    // finds it in place would pull megabytes only to close the connection.
    // A page answered in part (a server that ranges HTML too) is asked again
    // without Range, so its form can be read.
    bool first_byte_only = options.keep_body_up_to == 0;
    const int max_steps = 12;
    for (int step = 0; step < max_steps; ++step) {
        HttpRequest request;
        request.url = next;
        request.redirects = RedirectPolicy::none;
        if (!cookies.empty()) request.headers.emplace_back("Cookie", cookies.header());
        if (first_byte_only) request.headers.emplace_back("Range", "bytes=0-0");
        auto probed = detail::probe(http, request, detail::is_drive_file_response, 1u << 20, options.keep_body_up_to);
        if (!probed) return make_error(probed.error().code, who + ": " + probed.error().message);
        const HttpResponse& response = probed->response;
        cookies.take(response.headers);
        if (probed->payload) return detail::drive_file_from(probed.value(), cookies, who, options);
        if (response.status == 206) {
            first_byte_only = false;
            continue;
        }
        if (response.is_redirect()) {
            auto target = detail::follow_drive_redirect(response, who, subject, link);
            if (!target) return target.error();
            next = std::move(target).value();
            continue;
        }

        const int status = response.status;
        const std::string http_status = "HTTP " + std::to_string(status);
        if (status == 429) return detail::drive_throttled(who);
        if (status == 404 || status == 410)
            return make_error(errc::not_found, who + " does not exist (" + http_status +
                                                   "): it was deleted or the link is mistyped; check the link");
        if (status >= 500) {
            // Native Google items make `uc` fail; the viewer tells them apart.
            if (next.str() == start.str())
                if (auto doc = detail::drive_item_as_google_doc(http, link))
                    return detail::drive_doc_refusal(subject, *doc);
            return make_error(errc::network, who + ": Drive answered " + http_status + "; try again later");
        }

        auto reading = detail::read_drive_page(response.body, response.url);
        auto page_next = detail::drive_page_next(reading, who, link, confirmations);
        if (!page_next) return page_next.error();
        if (page_next.value()) {
            next = std::move(*page_next.value());
            continue;
        }
        // The pre-2022 flow put the confirm token in a download_warning cookie.
        if (auto token = detail::drive_download_warning_cookie(response.headers); token && !cookie_confirmation_tried) {
            cookie_confirmation_tried = true;
            next = start;
            auto query = detail::parse_query(next.query);
            query.emplace_back("confirm", *token);
            next.query = detail::build_query(query);
            continue;
        }
        return detail::drive_page_failure(who, status, reading);
    }
    return make_error(errc::network, who + ": Drive kept redirecting (more than " + std::to_string(max_steps) +
                                         " steps); try again later");
}

inline Result<std::string> fetch_drive_text(HttpClient& http, const DriveLink& link, const std::string& subject,
                                            std::size_t max_size) {
    DriveFetchOptions options;
    options.keep_body_up_to = max_size;
    auto file = resolve_drive_file(http, link, subject, options);
    if (!file) return file.error();
    return std::move(file->body);
}

inline Error explain_drive_download_failure(const std::string& subject, const std::string& file_id,
                                            const HttpResponse& response) {
    std::string who = subject + ": Google Drive file " + file_id;
    std::string http_status = "HTTP " + std::to_string(response.status);
    switch (response.status) {
    case 401:
    case 403:
        return make_error(errc::auth, who + ": Drive refused the confirmed download link (" + http_status +
                                          "): the file may no longer be shared with \"Anyone with the link\", or the "
                                          "confirmation expired; check the sharing and run provision again");
    case 404:
    case 410:
        return make_error(errc::not_found,
                          who + " is gone (" + http_status + "): it was deleted or moved; check the link");
    case 429: return detail::drive_throttled(who);
    default:
        return make_error(errc::network,
                          who + ": Drive answered " + http_status + " to the confirmed download link; try again later");
    }
}

}  // namespace provision

#endif
