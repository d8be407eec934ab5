// SPDX-License-Identifier: MIT
// provision: the config checker's definitions for the document as a whole: the
// top-level keys, [settings], [directories] and the [models.<category>] tables.
// Before the guard: config.hpp includes the whole parser, this file
// in its place among the others.
#include "config.hpp"

#ifndef PROVISION_CONFIG_CHECKER_DOCUMENT_HPP
#define PROVISION_CONFIG_CHECKER_DOCUMENT_HPP

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

inline void Checker::check_document(const toml::table& root) {
    const toml::node* models = nullptr;
    for (const auto& [key, value] : in_file_order(root)) {
        std::string_view name = key->str();
        if (name == "models") {
            models = value;
        } else if (name == "settings") {
            check_settings(*value);
        } else if (name == "directories") {
            check_directories(*value);
        } else {
            std::string message = "unknown top-level key " + quote_untrusted(name) +
                                  "; models are listed as [models.<category>.<name>] tables";
            if (value->is_table()) message += " (did you mean [models." + child_path("", name) + ".<name>]?)";
            report(key->source(), child_path("", name), message);
        }
    }
    std::size_t found = 0;
    bool models_problem = false;
    if (models) {
        if (const toml::table* categories = models->as_table()) {
            found = check_models(*categories, models_problem);
        } else {
            report(models->source(), "models",
                   std::string("expected a table ([models.<category>.<name>] sections), got ") + type_phrase(*models));
            models_problem = true;
        }
    }
    if (found == 0 && !models_problem) {
        toml::source_region where = models ? models->source() : toml::source_region{};
        report(where, "models",
               "no models listed; add at least one, e.g. [models.checkpoints.sdxl-base] with source = \"huggingface\", "
               "repo = \"owner/name\" and file = \"model.safetensors\"");
    }
    std::stable_sort(
        manifest_.diagnostics.begin(), manifest_.diagnostics.end(), [](const Diagnostic& a, const Diagnostic& b) {
            return a.where.line != b.where.line ? a.where.line < b.where.line : a.where.column < b.where.column;
        });
}

inline std::vector<Checker::Member> Checker::in_file_order(const toml::table& table) {
    std::vector<Member> members;
    members.reserve(table.size());
    for (const auto& [key, value] : table) members.emplace_back(&key, &value);
    std::stable_sort(members.begin(), members.end(), [](const Member& a, const Member& b) {
        return earlier(a.first->source().begin, b.first->source().begin);
    });
    return members;
}

inline void Checker::report(const toml::source_region& region, std::string key_path, std::string message) {
    Diagnostic diagnostic;
    diagnostic.where = location(region);
    diagnostic.key_path = std::move(key_path);
    diagnostic.message = std::move(message);
    manifest_.diagnostics.push_back(std::move(diagnostic));
}

inline SourceLocation Checker::location(const toml::source_region& region) const {
    SourceLocation where;
    where.file = manifest_.origin;
    where.line = static_cast<int>(region.begin.line);
    where.column = static_cast<int>(region.begin.column);
    return where;
}

inline void Checker::wrong_type(const toml::node& value, const std::string& key_path, std::string_view expected) {
    report(value.source(), key_path, "expected " + std::string(expected) + ", got " + type_phrase(value));
}

inline void Checker::check_settings(const toml::node& node) {
    const toml::table* table = node.as_table();
    if (!table)
        return wrong_type(node, "settings", "a table ([settings] with layout = \"...\" and models_dir = \"...\")");
    ManifestSettings& settings = manifest_.settings;
    for (const auto& [key, value] : in_file_order(*table)) {
        std::string path = child_path("settings", key->str());
        if (key->str() == "layout") {
            const auto* text = value->as_string();
            if (!text) {
                wrong_type(*value, path, "a string");
                continue;
            }
            static const char* layouts[] = {"sdnext", "a1111", "forge", "comfyui"};
            bool known = false;
            for (const char* layout : layouts) known = known || text->get() == layout;
            if (!known) {
                report(
                    value->source(), path,
                    "unknown layout " + quote_untrusted(text->get()) + "; use one of: sdnext, a1111, forge, comfyui");
                continue;
            }
            settings.layout = text->get();
            settings.layout_where = location(value->source());
        } else if (key->str() == "models_dir") {
            const auto* text = value->as_string();
            if (!text) {
                wrong_type(*value, path, "a string (a folder path)");
                continue;
            }
            std::string expanded, problem;
            bool unavailable = false;
            if (!expand_variables(text->get(), env_, trust_, expanded, problem, unavailable)) {
                report(value->source(), path, problem);
            } else if (expanded.empty() || has_control_char(expanded)) {
                report(value->source(), path, "expected a folder path, e.g. \"/workspace/ComfyUI/models\"");
            } else if (const char* why = remote_path_problem(expanded)) {
                report(value->source(), path, why);
            } else {
                settings.models_dir = expanded;
            }
        } else {
            report(key->source(), path,
                   "unknown setting " + quote_untrusted(key->str()) + "; [settings] takes layout and models_dir");
        }
    }
}

inline const char* Checker::remote_path_problem(const std::string& folder) const {
    if (!trust_.remote || trust_.allow_paths) return nullptr;
    bool climbs = false;
    std::size_t start = 0;
    while (start <= folder.size()) {
        std::size_t slash = folder.find('/', start);
        if (slash == std::string::npos) slash = folder.size();
        if (folder.compare(start, slash - start, "..") == 0) climbs = true;
        start = slash + 1;
    }
    if (folder.front() != '/' && !climbs) return nullptr;
    return "a config fetched from a URL may place files only inside the workspace (this folder is absolute or "
           "climbs out with \"..\"); to allow it, set PROVISION_ALLOW_REMOTE_PATHS=1 or pass --allow-remote-paths";
}

inline void Checker::check_directories(const toml::node& node) {
    const toml::table* table = node.as_table();
    if (!table) return wrong_type(node, "directories", "a table of category = \"folder\" pairs");
    for (const auto& [key, value] : in_file_order(*table)) {
        std::string path = child_path("directories", key->str());
        const auto* text = value->as_string();
        if (!text) {
            wrong_type(*value, path, "a string (a folder, relative to the models directory or absolute)");
            continue;
        }
        const std::string& folder = text->get();
        if (folder.empty() || has_control_char(folder) || folder.find('\\') != std::string::npos) {
            report(value->source(), path, "expected a folder such as \"ipadapter\" or \"/data/models/ipadapter\"");
            continue;
        }
        if (const char* why = remote_path_problem(folder)) {
            report(value->source(), path, why);
            continue;
        }
        manifest_.settings.directories.emplace_back(std::string(key->str()), folder);
        manifest_.settings.directory_where.push_back(location(value->source()));
    }
}

inline std::size_t Checker::check_models(const toml::table& categories, bool& models_problem) {
    std::vector<Candidate> candidates;
    for (const auto& [category_key, category_value] : in_file_order(categories)) {
        std::string category_path = child_path("models", category_key->str());
        const toml::table* entries = category_value->as_table();
        if (!entries) {
            report(category_value->source(), category_path,
                   std::string("expected a table of models ([") + category_path +
                       ".<name>] sections or name = \"https://...\"), got " + type_phrase(*category_value));
            models_problem = true;
            continue;
        }
        for (const auto& [name_key, entry_value] : *entries)
            candidates.push_back({std::string(category_key->str()), std::string(name_key.str()),
                                  child_path(category_path, name_key.str()), &entry_value});
    }
    std::stable_sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
        return earlier(a.value->source().begin, b.value->source().begin);
    });
    for (const auto& candidate : candidates) {
        std::optional<Entry> entry;
        if (const toml::table* table = candidate.value->as_table()) {
            entry = check_table_entry(candidate, *table);
        } else if (const auto* text = candidate.value->as_string()) {
            entry = check_simple_entry(candidate, text->get());
        } else {
            report(candidate.value->source(), candidate.key_path,
                   std::string("expected a table (with source, repo, url, ...) or a URL string, got ") +
                       type_phrase(*candidate.value));
        }
        if (entry) manifest_.entries.push_back(std::move(*entry));
    }
    return candidates.size();
}

}  // namespace config_parser
}  // namespace detail
}  // namespace provision

#endif
