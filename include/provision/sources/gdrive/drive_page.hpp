// SPDX-License-Identifier: MIT
// provision: reading the HTML pages Google Drive answers with instead of a file.
//
// Drive puts a page in front of files it cannot virus-scan, and explains its
// refusals (quota, deleted file, infected file) with pages too. Each reader
// here handles one shape of page and is tested on its own; read_drive_page()
// applies them in the order the shapes are checked by long-lived clients
// (current form first, then the pre-2024 variants, then error captions).
#ifndef PROVISION_SOURCES_GDRIVE_DRIVE_PAGE_HPP
#define PROVISION_SOURCES_GDRIVE_DRIVE_PAGE_HPP

#include "../../config/config.hpp"
#include "../../url.hpp"
#include "html.hpp"
#include "../../support/query.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace provision {
namespace detail {

/// The confirmed download URL from the virus-scan warning's
/// <form id="download-form" action=...> (id "downloadForm" before late 2022):
/// the action's own query plus every hidden input of the form, whatever their
/// names (id, export, confirm, uuid, at, authuser, ... change over time).
inline std::optional<Url> drive_confirmation_form_url(std::string_view page, const Url& page_url) {
    for (auto form = next_html_tag(page, "form"); form; form = next_html_tag(page, "form", form->end)) {
        auto id = form->attribute("id");
        if (!id || (*id != "download-form" && *id != "downloadForm")) continue;
        auto action = form->attribute("action");
        if (!action || action->empty()) return std::nullopt;
        auto target = resolve_reference(page_url, *action);
        if (!target) return std::nullopt;
        QueryParameters parameters = parse_query(target->query);
        std::size_t form_end = find_case_insensitive(page, "</form", form->end);
        if (form_end == std::string_view::npos) form_end = page.size();
        for (auto input = next_html_tag(page, "input", form->end); input && input->begin < form_end;
             input = next_html_tag(page, "input", input->end)) {
            auto type = input->attribute("type");
            auto name = input->attribute("name");
            if (!type || to_lower(*type) != "hidden" || !name || name->empty()) continue;
            set_query_parameter(parameters, *name, input->attribute("value").value_or(""));
        }
        Url confirmed = std::move(target).value();
        confirmed.query = build_query(parameters);
        confirmed.fragment.clear();
        return confirmed;
    }
    return std::nullopt;
}

/// The pre-2022 "Download anyway" link: <a href="/uc?export=download&amp;confirm=XXXX&amp;id=...">,
/// relative to docs.google.com.
inline std::optional<Url> drive_legacy_confirm_link(std::string_view page) {
    for (auto anchor = next_html_tag(page, "a"); anchor; anchor = next_html_tag(page, "a", anchor->end)) {
        auto href = anchor->attribute("href");
        if (!href || !starts_with(*href, "/uc?export=download")) continue;
        auto url = parse_url("https://docs.google.com" + *href);
        if (url) return url.value();
    }
    return std::nullopt;
}

/// Undoes JavaScript string escapes (\u003d, \/, \\, \") in a string taken from a script.
inline std::string js_unescape(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\' || i + 1 >= text.size()) {
            out += text[i];
            continue;
        }
        char next = text[i + 1];
        if (next == 'u' && i + 5 < text.size()) {
            std::uint32_t code = 0;
            bool valid = true;
            for (std::size_t k = i + 2; k < i + 6; ++k) {
                int digit = hex_value(text[k]);
                if (digit < 0) valid = false;
                code = code * 16 + static_cast<std::uint32_t>(digit < 0 ? 0 : digit);
            }
            if (valid) {
                append_utf8(out, code);
                i += 5;
                continue;
            }
        }
        out += next == 'n' ? '\n' : next == 't' ? '\t' : next;
        ++i;
    }
    return out;
}

/// The "downloadUrl":"..." some Drive viewer pages embed in a script.
inline std::optional<Url> drive_viewer_download_url(std::string_view page) {
    const std::string_view marker = "\"downloadUrl\":\"";
    std::size_t start = page.find(marker);
    if (start == std::string_view::npos) return std::nullopt;
    start += marker.size();
    std::size_t end = start;
    while (end < page.size() && page[end] != '"') end += page[end] == '\\' ? 2 : 1;
    if (end >= page.size()) return std::nullopt;  // no closing quote
    auto url = parse_url(js_unescape(page.substr(start, end - start)));
    if (!url || !url->is_https()) return std::nullopt;
    return url.value();
}

/// The text of Drive's error captions (<p class="uc-error-caption"> and
/// "uc-error-subcaption"), joined; "" when the page has none.
inline std::string drive_error_caption(std::string_view page) {
    std::string caption;
    std::string subcaption;
    for (auto p = next_html_tag(page, "p"); p; p = next_html_tag(page, "p", p->end)) {
        if (caption.empty() && has_html_class(*p, "uc-error-caption")) caption = html_element_text(page, *p);
        if (subcaption.empty() && has_html_class(*p, "uc-error-subcaption")) subcaption = html_element_text(page, *p);
    }
    if (caption.empty()) return subcaption;
    if (subcaption.empty()) return caption;
    return caption + " " + subcaption;
}

/// Drive's per-file download quota page.
inline bool drive_quota_exceeded(std::string_view page) {
    return find_case_insensitive(page, "Too many users have viewed or downloaded this file recently") !=
               std::string_view::npos ||
           find_case_insensitive(html_title(page), "Quota exceeded") != std::string_view::npos;
}

/// A Google sign-in page (or a page whose only way on is signing in).
inline bool drive_sign_in_page(std::string_view page) {
    std::string title = html_title(page);
    return find_case_insensitive(title, "Sign in") != std::string_view::npos ||
           find_case_insensitive(title, "Sign-in") != std::string_view::npos ||
           find_case_insensitive(page, "accounts.google.com/ServiceLogin") != std::string_view::npos ||
           find_case_insensitive(page, "accounts.google.com/v3/signin") != std::string_view::npos;
}

/// The value of a pre-2022 `download_warning_*` cookie, which was the confirm token.
inline std::optional<std::string> drive_download_warning_cookie(const std::vector<Header>& headers) {
    for (const auto& [name, value] : headers) {
        if (!iequals(name, "Set-Cookie")) continue;
        std::string_view cookie = value;
        cookie = cookie.substr(0, cookie.find(';'));
        std::size_t eq = cookie.find('=');
        if (eq == std::string_view::npos) continue;
        if (starts_with(trim(cookie.substr(0, eq)), "download_warning"))
            return std::string(trim(cookie.substr(eq + 1)));
    }
    return std::nullopt;
}

/// What a Drive page (one that is not the file) tells us to do next.
struct DrivePageReading {
    enum class Kind {
        confirm,         ///< a confirmation leads to the file: request `next`
        quota_exceeded,  ///< "Too many users have viewed or downloaded this file recently"
        infected,        ///< only the owner may download a file Drive found infected
        not_found,       ///< "the file you have requested does not exist"
        error_caption,   ///< another explained refusal; `text` holds Drive's words
        sign_in,         ///< a Google sign-in page: the file is not public
        unknown,         ///< none of the above; `text` holds the page title
    };
    Kind kind = Kind::unknown;
    std::optional<Url> next;  ///< confirm: where to go
    std::string text;         ///< Drive's caption or the page title, for messages
};

/// Reads one Drive page; `page_url` resolves a relative form action.
inline DrivePageReading read_drive_page(std::string_view page, const Url& page_url) {
    DrivePageReading reading;
    reading.next = drive_confirmation_form_url(page, page_url);
    if (!reading.next) reading.next = drive_legacy_confirm_link(page);
    if (!reading.next) reading.next = drive_viewer_download_url(page);
    if (reading.next) {
        reading.kind = DrivePageReading::Kind::confirm;
        return reading;
    }
    std::string caption = drive_error_caption(page);
    reading.text = caption.empty() ? html_title(page) : caption;
    if (drive_quota_exceeded(page)) reading.kind = DrivePageReading::Kind::quota_exceeded;
    else if (find_case_insensitive(caption, "infected with a virus") != std::string::npos)
        reading.kind = DrivePageReading::Kind::infected;
    else if (find_case_insensitive(caption, "does not exist") != std::string::npos)
        reading.kind = DrivePageReading::Kind::not_found;
    else if (!caption.empty()) reading.kind = DrivePageReading::Kind::error_caption;
    else if (drive_sign_in_page(page)) reading.kind = DrivePageReading::Kind::sign_in;
    return reading;
}

}  // namespace detail
}  // namespace provision

#endif
