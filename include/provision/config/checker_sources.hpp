// SPDX-License-Identifier: MIT
// provision: the config checker's definitions for the keys of one source:
// CivitAI ids, links and AIR; Hugging Face file, files, include and exclude.
// Before the guard: config.hpp includes the whole parser, this file
// in its place among the others.
#include "config.hpp"

#ifndef PROVISION_CONFIG_CHECKER_SOURCES_HPP
#define PROVISION_CONFIG_CHECKER_SOURCES_HPP

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

inline bool Checker::is_civitai_link(const std::string& text) {
    auto url = parse_url(text);
    return url && is_civitai_host(url->host);
}

inline void Checker::civitai_link_to_ids(const toml::node& value, const std::string& path, Entry& entry) {
    auto url = parse_url(entry.url);
    entry.url.clear();
    entry.source = SourceKind::civitai;
    if (!url) return;  // check_url has reported it
    auto ref = parse_civitai_link(url.value());
    if (!ref) {
        report(value.source(), path, ref.error().message);
        return;
    }
    if (!entry.version_id.empty() || !entry.model_id.empty()) {
        report(value.source(), path, "the link already names the model; remove version_id and model_id (or the link)");
        return;
    }
    if (!ref->file_id.empty() && !entry.file_id.empty() && ref->file_id != entry.file_id) {
        report(value.source(), path,
               "the link's fileId " + ref->file_id + " differs from file_id " + entry.file_id + "; keep one");
        return;
    }
    entry.model_id = ref->model_id;
    entry.version_id = ref->version_id;
    if (!ref->file_id.empty()) entry.file_id = ref->file_id;
    entry.civitai_site = ref->site;
}

inline void Checker::check_civitai_ids(const toml::table& table, const std::string& key_path,
                                       const std::vector<std::string_view>& seen) {
    auto has = [&](std::string_view key) { return std::find(seen.begin(), seen.end(), key) != seen.end(); };
    const bool air = has("air"), url = has("url");
    if (air && url) {
        report(table.get("url")->source(), child_path(key_path, "url"),
               "\"air\" and \"url\" both name the model; keep one");
    } else if (air && (has("version_id") || has("model_id"))) {
        std::string_view other = has("version_id") ? "version_id" : "model_id";
        report(table.get(other)->source(), child_path(key_path, other),
               "the AIR id already names the model and version; remove " + std::string(other) + " (or air)");
    } else if (!air && !url && !has("version_id") && !has("model_id")) {
        report(
            table.source(), key_path,
            "missing required key \"version_id\" for source \"civitai\"; add version_id = \"<model version id>\" (the "
            "number after ?modelVersionId= in the model page's URL), or url = \"https://civitai.com/models/...\" (the "
            "page's link), model_id = <model id> (its default version), or air = "
            "\"urn:air:...:civitai:<model>@<version>\"");
    }
}

inline void Checker::check_repo_path_list(const toml::node& value, const std::string& path, std::string_view key,
                                          std::vector<std::string>& out) {
    const bool patterns = key != "files";
    const std::string example = patterns ? std::string(key) + " = [\"*.safetensors\", \"text_encoder/*\"]"
                                         : "files = [\"model.safetensors\", \"vae/config.json\"]";
    const toml::array* array = value.as_array();
    if (!array) {
        std::string message = "expected an array of strings, e.g. " + example + ", got " + type_phrase(value);
        if (!patterns && value.is_string()) message += " (for one file write file = \"...\")";
        report(value.source(), path, message);
        return;
    }
    if (array->empty()) {
        report(value.source(), path,
               "the list is empty; " +
                   std::string(patterns ? "give at least one pattern, e.g. " : "name at least one file, e.g. ") +
                   example + ", or remove the key");
        return;
    }
    for (std::size_t i = 0; i < array->size(); ++i) {
        const toml::node& item = *array->get(i);
        std::string item_path = path + "[" + std::to_string(i) + "]";
        const auto* text = item.as_string();
        if (!text) {
            wrong_type(item, item_path, "a string");
            continue;
        }
        std::string problem = patterns ? pattern_problem(text->get()) : repo_path_problem(text->get());
        if (!problem.empty()) {
            report(item.source(), item_path, problem);
            continue;
        }
        if (std::find(out.begin(), out.end(), text->get()) != out.end()) {
            report(item.source(), item_path, quote_untrusted(text->get()) + " is listed twice; remove one");
            continue;
        }
        out.push_back(text->get());
    }
}

inline std::string Checker::pattern_problem(std::string_view pattern) {
    if (pattern.empty()) return "the pattern is empty; write e.g. \"*.safetensors\"";
    if (has_control_char(pattern)) return "the pattern contains a control character";
    if (pattern.front() == '/') return "patterns match paths relative to the repo root; remove the leading '/'";
    return "";
}

inline void Checker::check_file_selection(const toml::table& table, const std::string& key_path,
                                          const std::vector<std::string_view>& seen) {
    auto has = [&](std::string_view key) { return std::find(seen.begin(), seen.end(), key) != seen.end(); };
    auto at = [&](std::string_view key) { return table.get(key)->source(); };
    const bool file = has("file"), files = has("files"), include = has("include"), exclude = has("exclude");
    if (file && (files || include || exclude)) {
        std::string_view other = files ? "files" : include ? "include" : "exclude";
        report(at(other), child_path(key_path, other),
               "\"file\" and \"" + std::string(other) +
                   "\" cannot be combined: file names one file; for several, "
                   "move it into files = [...] or select them with include = [...] (and exclude = [...])");
    } else if (files && (include || exclude)) {
        std::string_view other = include ? "include" : "exclude";
        report(at(other), child_path(key_path, other),
               "\"files\" and \"" + std::string(other) +
                   "\" cannot be combined: files lists exact paths, include and "
                   "exclude select by pattern; use one way");
    } else if (exclude && !include) {
        report(at("exclude"), child_path(key_path, "exclude"),
               "exclude needs include: write include = [\"*\"] to start from the whole repo, then exclude = [...] "
               "removes files");
    } else if (!file && !files && !include) {
        report(table.source(), key_path,
               "missing required key \"file\" for source \"huggingface\"; add file = \"<path of the file inside the "
               "repo>\", "
               "e.g. file = \"sd_xl_base_1.0.safetensors\" (for several: files = [\"a.safetensors\", \"sub/b.json\"], "
               "or include = [\"*\"] for the whole repo)");
    }
    if ((files || include) && !file) {
        if (has("filename"))
            report(at("filename"), child_path(key_path, "filename"),
                   "filename renames one file; an entry with files or include keeps the repo's names (and folders), so "
                   "remove it");
        if (has("sha256"))
            report(at("sha256"), child_path(key_path, "sha256"),
                   "sha256 checks one file; with files or include every file is verified against the digest Hugging "
                   "Face lists, so remove it");
    }
}

inline void Checker::check_numeric_id(const toml::node& value, const std::string& path, std::string_view key,
                                      std::string& out) {
    const char* expected = "expected a number or a string of digits";
    if (const auto* number = value.as_integer()) {
        if (number->get() <= 0) {
            report(value.source(), path,
                   std::string(expected) + ", got " + std::to_string(number->get()) + "; ids are positive");
            return;
        }
        out = std::to_string(number->get());
    } else if (const auto* text = value.as_string()) {
        if (!is_all_digits(text->get())) {
            std::string message = std::string(expected) + ", got " + quote_untrusted(text->get());
            if (key == "version_id") message += " (use the number after ?modelVersionId= in the CivitAI URL)";
            if (text->get().find("civitai.") != std::string::npos)
                message += "; or give the whole link as url = \"...\"";
            report(value.source(), path, message);
            return;
        }
        out = text->get();
    } else {
        report(value.source(), path, std::string(expected) + ", got " + type_phrase(value));
    }
}

}  // namespace config_parser
}  // namespace detail
}  // namespace provision

#endif
