// SPDX-License-Identifier: MIT
// provision: just enough HTML reading to pull forms, links and captions out of
// service pages (Google Drive's confirmation and error pages).
//
// Not a general HTML parser: it finds start tags by name, reads their
// attributes (quoted, single-quoted or bare, any order, any case) and decodes
// character references. That is what the pages we read need, and it keeps the
// toolkit free of another dependency.
#ifndef PROVISION_SOURCES_GDRIVE_HTML_HPP
#define PROVISION_SOURCES_GDRIVE_HTML_HPP

#include "../../url.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace provision {
namespace detail {

/// Appends the UTF-8 encoding of a code point (invalid ones become U+FFFD).
inline void append_utf8(std::string& out, std::uint32_t code) {
    if (code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) code = 0xFFFD;
    if (code < 0x80) {
        out += static_cast<char>(code);
    } else if (code < 0x800) {
        out += static_cast<char>(0xC0 | (code >> 6));
        out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
        out += static_cast<char>(0xE0 | (code >> 12));
        out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (code >> 18));
        out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code & 0x3F));
    }
}

/// Decodes character references: the named ones pages use in URLs and text
/// (&amp; &lt; &gt; &quot; &apos; &nbsp;) and numeric ones (&#39; &#x2F;).
/// Anything else is kept as written.
inline std::string html_unescape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '&') {
            out += text[i];
            continue;
        }
        std::size_t semicolon = text.find(';', i + 1);
        if (semicolon == std::string_view::npos || semicolon - i > 12) {
            out += '&';
            continue;
        }
        std::string_view name = text.substr(i + 1, semicolon - i - 1);
        bool decoded = true;
        if (name == "amp") out += '&';
        else if (name == "lt") out += '<';
        else if (name == "gt") out += '>';
        else if (name == "quot") out += '"';
        else if (name == "apos") out += '\'';
        else if (name == "nbsp") out += ' ';
        else if (name.size() > 1 && name[0] == '#') {
            bool hex = name[1] == 'x' || name[1] == 'X';
            std::string_view digits = name.substr(hex ? 2 : 1);
            std::uint32_t code = 0;
            decoded = !digits.empty();
            for (char c : digits) {
                int value = hex ? hex_value(c) : (c >= '0' && c <= '9' ? c - '0' : -1);
                if (value < 0 || code > 0x10FFFF) {
                    decoded = false;
                    break;
                }
                code = code * (hex ? 16 : 10) + static_cast<std::uint32_t>(value);
            }
            if (decoded) append_utf8(out, code);
        } else {
            decoded = false;
        }
        if (decoded) i = semicolon;
        else out += '&';
    }
    return out;
}

/// One start tag: its lower-case name and its attributes (decoded values).
struct HtmlTag {
    std::string name;
    std::vector<std::pair<std::string, std::string>> attributes;
    std::size_t begin = 0;  ///< offset of '<'
    std::size_t end = 0;    ///< offset just past '>'

    /// An attribute's value (attribute names are matched case-insensitively).
    std::optional<std::string> attribute(std::string_view wanted) const {
        for (const auto& [key, value] : attributes)
            if (key == to_lower(wanted)) return value;
        return std::nullopt;
    }
};

/// Finds `needle` in `haystack` ignoring ASCII case, from `from`.
inline std::size_t find_case_insensitive(std::string_view haystack, std::string_view needle, std::size_t from = 0) {
    if (needle.empty()) return from <= haystack.size() ? from : std::string_view::npos;
    for (std::size_t i = from; i + needle.size() <= haystack.size(); ++i)
        if (iequals(haystack.substr(i, needle.size()), needle)) return i;
    return std::string_view::npos;
}

/// The next start tag named `name` (case-insensitive) at or after `from`, or nullopt.
inline std::optional<HtmlTag> next_html_tag(std::string_view html, std::string_view name, std::size_t from = 0) {
    auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; };
    std::string opener = "<" + std::string(name);
    for (std::size_t at = find_case_insensitive(html, opener, from); at != std::string_view::npos;
         at = find_case_insensitive(html, opener, at + 1)) {
        std::size_t pos = at + opener.size();
        if (pos >= html.size() || !(is_space(html[pos]) || html[pos] == '>' || html[pos] == '/')) continue;  // <formx>
        HtmlTag tag;
        tag.name = to_lower(name);
        tag.begin = at;
        while (pos < html.size() && html[pos] != '>') {
            if (is_space(html[pos]) || html[pos] == '/') {
                ++pos;
                continue;
            }
            std::size_t name_start = pos;
            while (pos < html.size() && !is_space(html[pos]) && html[pos] != '=' && html[pos] != '>' &&
                   html[pos] != '/')
                ++pos;
            std::string attribute = to_lower(html.substr(name_start, pos - name_start));
            while (pos < html.size() && is_space(html[pos])) ++pos;
            std::string value;
            if (pos < html.size() && html[pos] == '=') {
                ++pos;
                while (pos < html.size() && is_space(html[pos])) ++pos;
                if (pos < html.size() && (html[pos] == '"' || html[pos] == '\'')) {
                    char quote = html[pos++];
                    std::size_t close = html.find(quote, pos);
                    if (close == std::string_view::npos) close = html.size();
                    value = html_unescape(html.substr(pos, close - pos));
                    pos = close + 1;
                } else {
                    std::size_t start = pos;
                    while (pos < html.size() && !is_space(html[pos]) && html[pos] != '>') ++pos;
                    value = html_unescape(html.substr(start, pos - start));
                }
            }
            if (!attribute.empty()) tag.attributes.emplace_back(std::move(attribute), std::move(value));
        }
        tag.end = pos < html.size() ? pos + 1 : html.size();
        return tag;
    }
    return std::nullopt;
}

/// The text between a tag's end and the next `</name>`, with inner tags
/// removed, references decoded and whitespace collapsed.
inline std::string html_element_text(std::string_view html, const HtmlTag& tag) {
    std::size_t close = find_case_insensitive(html, "</" + tag.name, tag.end);
    std::string_view inner =
        html.substr(tag.end, close == std::string_view::npos ? std::string_view::npos : close - tag.end);
    std::string text;
    bool in_tag = false;
    for (char c : inner) {
        if (c == '<') in_tag = true;
        else if (c == '>') in_tag = false;
        else if (!in_tag) text += c;
    }
    std::string decoded = html_unescape(text);
    std::string out;
    bool space = false;
    for (unsigned char c : decoded) {
        if (std::isspace(c)) {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += static_cast<char>(c);
    }
    return out;
}

/// The document's <title> text, or "".
inline std::string html_title(std::string_view html) {
    auto tag = next_html_tag(html, "title");
    return tag ? html_element_text(html, *tag) : std::string();
}

/// True when a class attribute value lists `wanted` as one of its classes.
inline bool has_html_class(const HtmlTag& tag, std::string_view wanted) {
    auto classes = tag.attribute("class");
    if (!classes) return false;
    std::string_view list = *classes;
    std::size_t pos = 0;
    while (pos < list.size()) {
        std::size_t end = list.find_first_of(" \t\n\r\f", pos);
        if (end == std::string_view::npos) end = list.size();
        if (list.substr(pos, end - pos) == wanted) return true;
        pos = end + 1;
    }
    return false;
}

}  // namespace detail
}  // namespace provision

#endif
