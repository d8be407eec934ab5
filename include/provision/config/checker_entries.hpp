// SPDX-License-Identifier: MIT
// provision: the config checker's definitions for one entry: its simple or
// table form, which source it is, its category, and the keys every source shares
// (filename, sha256, headers, auth_header).
// Before the guard: config.hpp includes the whole parser, this file
// in its place among the others.
#include "config.hpp"

#ifndef PROVISION_CONFIG_CHECKER_ENTRIES_HPP
#define PROVISION_CONFIG_CHECKER_ENTRIES_HPP

#include "checker.hpp"
#include "civitai_link.hpp"
#include "../support/digest.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace provision {
namespace detail {
namespace config_parser {

inline Entry Checker::new_entry(const Candidate& candidate) const {
    Entry entry;
    entry.category = candidate.category;
    entry.name = candidate.name;
    entry.key_path = candidate.key_path;
    entry.where = location(candidate.value->source());
    return entry;
}

inline std::optional<Entry> Checker::check_simple_entry(const Candidate& candidate, const std::string& text) {
    Entry entry = new_entry(candidate);
    entry.source = SourceKind::url;
    if (!check_url(text, *candidate.value, candidate.key_path)) return std::nullopt;
    entry.url = text;
    const std::size_t problems_before = manifest_.diagnostics.size();
    if (is_civitai_link(text)) civitai_link_to_ids(*candidate.value, candidate.key_path, entry);
    check_auto_category(entry, candidate.value->source());
    if (manifest_.diagnostics.size() != problems_before) return std::nullopt;
    return entry;
}

inline bool Checker::check_url(const std::string& text, const toml::node& value, const std::string& key_path) {
    auto parsed = parse_url(text);
    if (parsed) return true;
    // parse_url's message repeats the URL, which may carry a token: keep only the reason.
    std::string reason = parsed.error().message;
    std::string prefix = "invalid URL \"" + detail::unparsed_url_for_message(text) + "\": ";
    if (starts_with(reason, prefix)) reason = reason.substr(prefix.size());
    report(value.source(), key_path, "not a usable URL: " + reason);
    return false;
}

inline std::optional<SourceKind> Checker::entry_source(const Candidate& candidate, const toml::table& table) {
    static const char* choices = "use source = \"huggingface\", \"civitai\" or \"url\"";
    if (const toml::node* source = table.get("source")) {
        std::string path = child_path(candidate.key_path, "source");
        const auto* text = source->as_string();
        if (!text) {
            wrong_type(*source, path, "a string (\"huggingface\", \"civitai\" or \"url\")");
            return std::nullopt;
        }
        const std::string& name = text->get();
        if (name == "huggingface") return SourceKind::huggingface;
        if (name == "civitai") return SourceKind::civitai;
        if (name == "url") return SourceKind::url;
        // No aliases on purpose (one spelling per source keeps configs greppable),
        // but point at the intended one when it is obvious.
        std::string message = "unknown source " + quote_untrusted(name) + "; " + choices;
        std::string lower = to_lower(name);
        if (lower == "hf" || lower == "hugging face" || lower == "hugging_face" || lower == "hugging-face" ||
            lower == "huggingface")
            message += " (did you mean \"huggingface\"?)";
        else if (lower == "civitai" || lower == "civit" || lower == "civit.ai")
            message += " (did you mean \"civitai\"?)";
        else if (lower == "url" || lower == "http" || lower == "https" || lower == "gdrive" ||
                 lower == "google_drive" || lower == "googledrive" || lower == "google-drive" || lower == "drive")
            message += " (did you mean \"url\"? Google Drive links use source = \"url\")";
        report(source->source(), path, message);
        return std::nullopt;
    }
    // No source: infer it from the one key that only one source has.
    std::vector<std::pair<const char*, SourceKind>> hints;
    if (table.contains("repo")) hints.emplace_back("repo", SourceKind::huggingface);
    if (table.contains("version_id")) hints.emplace_back("version_id", SourceKind::civitai);
    else if (table.contains("model_id")) hints.emplace_back("model_id", SourceKind::civitai);
    else if (table.contains("air")) hints.emplace_back("air", SourceKind::civitai);
    if (table.contains("url")) hints.emplace_back("url", SourceKind::url);
    if (hints.size() == 1) return hints.front().second;
    if (hints.empty()) {
        report(table.source(), candidate.key_path,
               std::string("missing \"source\"; ") + choices +
                   " (or give repo, version_id or url and the source is inferred from it)");
        // Often the reason: the key that names the source is misspelt
        // ("sorce", "verison_id"). Each key no source knows is named on its
        // own line, with the key it most likely means.
        std::vector<std::string_view> known;
        for (SourceKind kind : {SourceKind::huggingface, SourceKind::civitai, SourceKind::url})
            for (std::string_view key : allowed_keys(kind))
                if (std::find(known.begin(), known.end(), key) == known.end()) known.push_back(key);
        for (const auto& [key_ptr, value_ptr] : in_file_order(table)) {
            std::string_view key = key_ptr->str();
            // A table inside is a deeper header, not a misspelt key.
            if (value_ptr->is_table() || std::find(known.begin(), known.end(), key) != known.end()) continue;
            std::string message = "unknown key " + quote_untrusted(key);
            std::string meant = closest_name(key, known);
            message += meant.empty() ? " (no source has it)" : " (did you mean \"" + meant + "\"?)";
            report(key_ptr->source(), child_path(candidate.key_path, key), message);
        }
    } else {
        std::string keys;
        for (const auto& hint : hints) keys += (keys.empty() ? "\"" : " and \"") + std::string(hint.first) + "\"";
        report(table.source(), candidate.key_path,
               "cannot tell the source: the entry has both " + keys +
                   "; add source = \"...\" and remove the keys of the other source");
    }
    return std::nullopt;
}

inline std::optional<Entry> Checker::check_table_entry(const Candidate& candidate, const toml::table& table) {
    const std::size_t problems_before = manifest_.diagnostics.size();
    Entry entry = new_entry(candidate);
    std::optional<SourceKind> kind = entry_source(candidate, table);
    if (!kind) return std::nullopt;  // without a source the other keys cannot be judged
    entry.source = *kind;
    const auto& allowed = allowed_keys(*kind);
    std::vector<std::string_view> seen;
    const toml::node* headers = nullptr;
    const toml::node* auth_header = nullptr;
    for (const auto& [key_ptr, value_ptr] : in_file_order(table)) {
        const toml::node& value = *value_ptr;
        std::string_view key = key_ptr->str();
        std::string path = child_path(candidate.key_path, key);
        if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
            report(key_ptr->source(), path, unknown_key_message(key, *kind));
            continue;
        }
        seen.push_back(key);
        if (key == "source") {
            // checked above
        } else if (key == "headers") {
            headers = &value;  // checked after the loop, together with auth_header
        } else if (key == "auth_header") {
            auth_header = &value;
        } else if (key == "gated") {
            if (const auto* flag = value.as_boolean()) entry.gated = flag->get();
            else wrong_type(value, path, "true or false");
        } else if (key == "version_id" || key == "file_id" || key == "model_id") {
            check_numeric_id(value, path, key,
                             key == "version_id" ? entry.version_id
                             : key == "file_id"  ? entry.file_id
                                                 : entry.model_id);
        } else if (key == "files" || key == "include" || key == "exclude") {
            check_repo_path_list(value, path, key,
                                 key == "files"     ? entry.files
                                 : key == "include" ? entry.include
                                                    : entry.exclude);
        } else if (const auto* text = value.as_string()) {
            check_string_key(key, text->get(), value, path, entry);
        } else {
            wrong_type(value, path, "a string");
        }
    }
    if (headers || auth_header) check_headers(headers, auth_header, candidate.key_path, entry);
    if (!entry.url.empty() && (*kind == SourceKind::civitai || (is_civitai_link(entry.url) && entry.headers.empty()))) {
        civitai_link_to_ids(*table.get("url"), child_path(candidate.key_path, "url"), entry);
        kind = entry.source;
    }
    check_auto_category(entry, table.source());
    auto require = [&](std::string_view key, const char* example) {
        if (std::find(seen.begin(), seen.end(), key) == seen.end())
            report(table.source(), candidate.key_path,
                   "missing required key \"" + std::string(key) + "\" for source \"" + to_string(*kind) + "\"; add " +
                       example);
    };
    switch (*kind) {
    case SourceKind::huggingface:
        require("repo", "repo = \"owner/name\", e.g. repo = \"stabilityai/stable-diffusion-xl-base-1.0\"");
        check_file_selection(table, candidate.key_path, seen);
        break;
    case SourceKind::civitai: check_civitai_ids(table, candidate.key_path, seen); break;
    case SourceKind::url: require("url", "url = \"https://...\""); break;
    }
    if (manifest_.diagnostics.size() != problems_before) return std::nullopt;
    return entry;
}

inline void Checker::check_auto_category(const Entry& entry, const toml::source_region& where) {
    if (entry.category == "auto" && entry.source != SourceKind::civitai)
        report(
            where, entry.key_path,
            "[models.auto] places files by their CivitAI model type, and this entry is not from CivitAI; put it under "
            "[models.<category>] (e.g. [models.checkpoints." +
                child_path("", entry.name) + "])");
}

inline std::string Checker::unknown_key_message(std::string_view key, SourceKind kind) {
    std::string message = "unknown key " + quote_untrusted(key) + " for source \"" + to_string(kind) +
                          "\"; allowed keys: " + join(allowed_keys(kind));
    if (kind == SourceKind::civitai && (key == "modelId" || key == "id" || key == "model"))
        message += " (write model_id for the model's id, version_id for a version's)";
    else if (kind == SourceKind::civitai && (key == "modelVersionId" || key == "version"))
        message += " (write version_id)";
    else if (key == "token" || key == "api_key" || key == "hf_token" || key == "civitai_token")
        message +=
            kind == SourceKind::url
                ? " (put secrets in the environment and write auth_header = \"Bearer ${MY_TOKEN}\")"
                : " (tokens come from the HF_TOKEN and CIVITAI_TOKEN environment variables, not from the config)";
    else {
        bool elsewhere = false;
        for (SourceKind other : {SourceKind::huggingface, SourceKind::civitai, SourceKind::url}) {
            const auto& keys = allowed_keys(other);
            if (other != kind && std::find(keys.begin(), keys.end(), key) != keys.end()) {
                message +=
                    std::string(" (") + quote_untrusted(key) + " belongs to source = \"" + to_string(other) + "\")";
                elsewhere = true;
                break;
            }
        }
        if (std::string meant = closest_name(key, allowed_keys(kind)); !elsewhere && !meant.empty())
            message += " (did you mean \"" + meant + "\"?)";
    }
    return message;
}

inline void Checker::check_string_key(std::string_view key, const std::string& text, const toml::node& value,
                                      const std::string& path, Entry& entry) {
    auto fail = [&](const std::string& message) { report(value.source(), path, message); };
    if (key == "repo") {
        if (!is_repo_id(text)) {
            std::string message =
                "expected a repo id \"owner/name\" (e.g. \"stabilityai/stable-diffusion-xl-base-1.0\"), got " +
                quote_untrusted(text);
            if (text.find("://") != std::string::npos) message += "; give the repo id, not its URL";
            fail(message);
        }
        entry.repo = text;
    } else if (key == "file") {
        std::string problem = repo_path_problem(text);
        if (!problem.empty()) fail(problem);
        entry.file = text;
    } else if (key == "revision") {
        bool bad = text.empty() || text.front() == '/' || text.find("..") != std::string::npos;
        for (unsigned char c : text) bad = bad || c <= 0x20 || c == 0x7f || c == '\\';
        if (bad)
            fail("expected a branch, tag or commit (e.g. \"main\" or \"refs/pr/1\"), got " + quote_untrusted(text));
        entry.revision = text;
    } else if (key == "repo_type") {
        if (text == "model" || text == "dataset" || text == "space") {
            entry.repo_type = text;
        } else {
            std::string message = "unknown repo_type " + quote_untrusted(text) +
                                  "; use \"model\" (the default), \"dataset\" or \"space\"";
            if (text == "models" || text == "datasets" || text == "spaces")
                message += " (singular: \"" + text.substr(0, text.size() - 1) + "\")";
            fail(message);
        }
    } else if (key == "type") {
        if (text.empty())
            fail("the file type is empty; write e.g. type = \"Model\" or type = \"VAE\", or remove the key");
        entry.file_type = text;
    } else if (key == "url") {
        if (check_url(text, value, path)) entry.url = text;
    } else if (key == "air") {
        auto ref = parse_civitai_air(text);
        if (!ref) return fail(ref.error().message + " (got " + quote_untrusted(text) + ")");
        entry.model_id = ref->model_id;
        entry.version_id = ref->version_id;
        entry.file_id = ref->file_id;
    } else if (key == "filename") {
        if (const char* problem = filename_problem(text)) fail(problem);
        entry.filename = text;
    } else if (key == "sha256") {
        std::string digest = to_lower(text);
        if (!is_hex_of_length(digest, 64))
            fail("expected a SHA-256 digest: 64 hexadecimal characters, got " + std::to_string(text.size()) +
                 (digest.size() == 64 ? " characters that are not all hexadecimal" : " characters"));
        entry.sha256 = digest;
    }
    // description and notes: documentation for the reader, nothing to check.
}

inline void Checker::check_headers(const toml::node* headers, const toml::node* auth_header,
                                   const std::string& entry_path, Entry& entry) {
    auto add = [&](const std::string& name, const std::string& raw, const toml::node& value, const std::string& path) {
        if (!is_header_value(raw)) {
            report(value.source(), path,
                   "the header value contains a line break or control character; a header value must be one line");
            return;
        }
        std::string expanded, problem;
        bool unavailable = false;
        if (!expand_variables(raw, env_, trust_, expanded, problem, unavailable)) {
            // A variable this machine lacks fails only this entry, as a
            // missing token does; text that is wrong fails the config.
            if (!unavailable) report(value.source(), path, problem);
            else if (entry.unresolved.empty()) entry.unresolved = path + ": " + problem;
            return;
        }
        for (const auto& existing : entry.headers)
            if (iequals(existing.first, name)) {
                report(value.source(), path,
                       name == "Authorization" && path == child_path(entry_path, "auth_header")
                           ? "auth_header and headers.Authorization both set the Authorization header; keep one"
                           : "the header " + quote_untrusted(name) +
                                 " is given twice (header names are case-insensitive)");
                return;
            }
        entry.headers.emplace_back(name, std::move(expanded));
    };
    if (headers) {
        std::string headers_path = child_path(entry_path, "headers");
        if (const toml::table* table = headers->as_table()) {
            for (const auto& [key, value] : in_file_order(*table)) {
                std::string name(key->str());
                std::string path = child_path(headers_path, name);
                if (!is_header_name(name)) {
                    report(key->source(), path,
                           "not a valid HTTP header name: " + quote_untrusted(name) +
                               "; use letters, digits and '-', e.g. \"Authorization\"");
                } else if (const auto* text = value->as_string()) {
                    add(name, text->get(), *value, path);
                } else {
                    wrong_type(*value, path, "a string");
                }
            }
        } else {
            wrong_type(*headers, headers_path,
                       "a table of header names and values, e.g. headers = { \"X-Api-Key\" = \"${MY_KEY}\" }");
        }
    }
    if (auth_header) {
        std::string path = child_path(entry_path, "auth_header");
        if (const auto* text = auth_header->as_string()) add("Authorization", text->get(), *auth_header, path);
        else wrong_type(*auth_header, path, "a string, e.g. auth_header = \"Bearer ${MY_TOKEN}\"");
    }
}

}  // namespace config_parser
}  // namespace detail
}  // namespace provision

#endif
