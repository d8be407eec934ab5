// SPDX-License-Identifier: MIT
// provision: the small rules the config checker applies to text: how untrusted
// text is quoted in a message, what a safe file name, repo id, repo path,
// header name and header value are.
// Before the guard: config.hpp includes the whole parser, this file
// in its place among the others.
#include "config.hpp"

#ifndef PROVISION_CONFIG_TEXT_CHECKS_HPP
#define PROVISION_CONFIG_TEXT_CHECKS_HPP

#include "../url.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace provision {
namespace detail {
namespace config_parser {

/// Shows untrusted text inside a message: quoted, control bytes escaped, cut at
/// 80 bytes (on a UTF-8 boundary) so a huge value cannot flood the terminal.
/// Never used for header values or anything that may hold a secret.
inline std::string quote_untrusted(std::string_view text, std::size_t limit = 80) {
    bool cut = false;
    if (text.size() > limit) {
        std::size_t keep = limit;
        while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;
        text = text.substr(0, keep);
        cut = true;
    }
    static const char* hex = "0123456789abcdef";
    std::string out = "\"";
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += ch;
        }
    }
    out += cut ? "...\"" : "\"";
    return out;
}

/// toml++'s syntax errors quote the offending text as it is ("saw '-i\x01'"): control
/// bytes in a message would garble or forge the lines of a log or terminal, so they
/// are written as \xNN instead.
inline std::string printable(std::string_view text) {
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += ch;
        }
    }
    return out;
}

/// Whether a key can be written bare in a TOML key path (A-Z a-z 0-9 _ -).
inline bool is_bare_key(std::string_view key) {
    if (key.empty()) return false;
    for (unsigned char c : key)
        if (!(std::isalnum(c) || c == '_' || c == '-')) return false;
    return true;
}

/// Appends a key to a key path the way TOML would write it: models.lora."my.model".
inline std::string child_path(const std::string& parent, std::string_view key) {
    std::string part = is_bare_key(key) ? std::string(key) : quote_untrusted(key, key.size());
    return parent.empty() ? part : parent + "." + part;
}

/// "a string", "an integer", ...: for "expected X, got Y" messages.
inline const char* type_phrase(const toml::node& node) {
    switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
    }
    return "nothing";
}

inline bool has_control_char(std::string_view text) {
    for (unsigned char c : text)
        if (c < 0x20 || c == 0x7f) return true;
    return false;
}

/// Why a file name is unsafe, or nullptr when it is fine (see is_safe_filename).
inline const char* filename_problem(std::string_view name) {
    if (name.empty()) return "the file name is empty";
    if (name == "." || name == "..") return "\".\" and \"..\" are not file names";
    if (name.find('/') != std::string_view::npos || name.find('\\') != std::string_view::npos)
        return "a file name must not contain '/' or '\\'; give only the name (the folder comes from the category)";
    if (has_control_char(name)) return "the file name contains a control character";
    if (name.size() > 255) return "the file name is longer than 255 bytes";
    return nullptr;
}

/// Why a path inside a Hugging Face repo is unusable, or "" when it is fine.
inline std::string repo_path_problem(std::string_view path) {
    if (path.empty())
        return "the path is empty; write the file's path inside the repo, e.g. file = \"model.safetensors\"";
    if (path.front() == '/') return "the path must be relative to the repo root; remove the leading '/'";
    if (path.find('\\') != std::string_view::npos) return "use '/' between folders, not '\\'";
    if (has_control_char(path)) return "the path contains a control character";
    std::size_t pos = 0;
    while (true) {
        std::size_t slash = path.find('/', pos);
        std::string_view segment =
            path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
        if (segment.empty())
            return "the path has an empty folder name (\"//\" or a trailing '/'); write folder/file.safetensors";
        if (segment == ".." || segment == ".")
            return "the path must not contain \"..\" or \".\" folders; write the path from the repo root, e.g. "
                   "vae/model.safetensors";
        if (segment.size() > 255) return "a folder or file name in the path is longer than 255 bytes";
        if (slash == std::string_view::npos) break;
        pos = slash + 1;
    }
    return "";
}

/// Hugging Face repo ids: "owner/name", each part [A-Za-z0-9._-], not "." or "..".
inline bool is_repo_id(std::string_view repo) {
    std::size_t slash = repo.find('/');
    if (slash == std::string_view::npos || repo.find('/', slash + 1) != std::string_view::npos) return false;
    for (std::string_view part : {repo.substr(0, slash), repo.substr(slash + 1)}) {
        if (part.empty() || part == "." || part == ".." || part.size() > 96) return false;
        for (unsigned char c : part)
            if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.')) return false;
    }
    return true;
}

inline bool is_all_digits(std::string_view text) {
    if (text.empty()) return false;
    for (unsigned char c : text)
        if (!std::isdigit(c)) return false;
    return true;
}

/// The one name in `known` that `word` most likely misspells, or "" when none
/// is close: at most one edit for short names, two for longer ones, counting
/// a swap of neighbours as one edit ("verison" -> "version") and ignoring
/// case. A tie between two names gives "", since guessing would mislead.
template <class Names>
std::string closest_name(std::string_view word, const Names& known) {
    auto distance = [](std::string_view a, std::string_view b) {
        // Optimal string alignment: Levenshtein plus adjacent transpositions.
        std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
        for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
        for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
        auto lower = [](char c) { return std::tolower(static_cast<unsigned char>(c)); };
        for (std::size_t i = 1; i <= a.size(); ++i)
            for (std::size_t j = 1; j <= b.size(); ++j) {
                std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
                d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
                if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1]))
                    d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        return d[a.size()][b.size()];
    };
    if (word.size() > 64) return "";  // no key is that long; spare the work
    std::size_t limit = word.size() <= 4 ? 1 : 2;
    std::string best;
    std::size_t best_distance = limit + 1;
    bool tie = false;
    for (const auto& name : known) {
        std::size_t found = distance(word, name);
        if (found < best_distance) {
            best = std::string(name);
            best_distance = found;
            tie = false;
        } else if (found == best_distance && best != name) {
            tie = true;
        }
    }
    return tie || best_distance == 0 ? "" : best;
}

/// RFC 9110 token characters: what an HTTP header name may be made of.
inline bool is_header_name(std::string_view name) {
    if (name.empty()) return false;
    for (unsigned char c : name) {
        bool ok =
            std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
        if (!ok) return false;
    }
    return true;
}

/// A header value must stay on one line: no CR, LF, NUL or other control bytes (tab is fine).
inline bool is_header_value(std::string_view value) {
    for (unsigned char c : value)
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    return true;
}

}  // namespace config_parser
}  // namespace detail
}  // namespace provision

#endif
