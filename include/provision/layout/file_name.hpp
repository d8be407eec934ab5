// SPDX-License-Identifier: MIT
// provision: file names chosen by servers: Content-Disposition parsing and sanitizing.
//
// A server-chosen name is untrusted input: it may try to climb out of the
// models folder ("../../etc/x"), name an absolute path, hide control characters
// or be invalid UTF-8. Everything here turns such input into one plain file name.
#ifndef PROVISION_LAYOUT_FILE_NAME_HPP
#define PROVISION_LAYOUT_FILE_NAME_HPP

#include "../url.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace provision {
namespace detail {

/// Reads one token or quoted-string starting at `pos` (RFC 7230 quoting).
inline std::string read_parameter_value(std::string_view text, std::size_t& pos) {
    std::string value;
    if (pos < text.size() && text[pos] == '"') {
        ++pos;
        while (pos < text.size() && text[pos] != '"') {
            if (text[pos] == '\\' && pos + 1 < text.size()) ++pos;
            value += text[pos++];
        }
        if (pos < text.size()) ++pos;  // closing quote
    } else {
        while (pos < text.size() && text[pos] != ';') value += text[pos++];
        value = std::string(trim(value));
    }
    return value;
}

/// Decodes an RFC 5987 ext-value: charset'language'percent-encoded. Only UTF-8
/// and ISO-8859-1 are meaningful; ISO-8859-1 bytes are converted to UTF-8.
inline std::optional<std::string> decode_ext_value(std::string_view value) {
    std::size_t first = value.find('\'');
    if (first == std::string_view::npos) return std::nullopt;
    std::size_t second = value.find('\'', first + 1);
    if (second == std::string_view::npos) return std::nullopt;
    std::string charset = to_lower(value.substr(0, first));
    std::string decoded = percent_decode(value.substr(second + 1));
    if (charset == "utf-8") return decoded;
    if (charset == "iso-8859-1") {
        std::string utf8;
        for (unsigned char c : decoded) {
            if (c < 0x80) {
                utf8 += static_cast<char>(c);
            } else {
                utf8 += static_cast<char>(0xC0 | (c >> 6));
                utf8 += static_cast<char>(0x80 | (c & 0x3F));
            }
        }
        return utf8;
    }
    return std::nullopt;
}

/// The file name a Content-Disposition header proposes (unsanitized), preferring
/// filename*= over filename=. Returns nullopt when it names none.
inline std::optional<std::string> content_disposition_filename(std::string_view header) {
    std::optional<std::string> plain;
    std::optional<std::string> extended;
    std::size_t pos = header.find(';');
    while (pos != std::string_view::npos && pos < header.size()) {
        ++pos;
        while (pos < header.size() && (header[pos] == ' ' || header[pos] == '\t')) ++pos;
        std::size_t eq = header.find('=', pos);
        if (eq == std::string_view::npos) break;
        std::string name = to_lower(trim(header.substr(pos, eq - pos)));
        pos = eq + 1;
        while (pos < header.size() && (header[pos] == ' ' || header[pos] == '\t')) ++pos;
        std::string value = read_parameter_value(header, pos);
        if (name == "filename*") {
            if (auto decoded = decode_ext_value(value)) extended = decoded;
        } else if (name == "filename") {
            // Some servers percent-encode the plain form too (Google Drive does for non-ASCII).
            plain = value.find('%') != std::string::npos ? percent_decode(value) : value;
        }
        pos = header.find(';', pos);
    }
    if (extended && !extended->empty()) return extended;
    return plain;
}

/// Length of the valid UTF-8 sequence starting at text[i], or 0 if invalid.
inline std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
    unsigned char lead = byte(i);
    std::size_t length = lead < 0x80           ? 1
                         : (lead >> 5) == 0x6  ? 2
                         : (lead >> 4) == 0xE  ? 3
                         : (lead >> 3) == 0x1E ? 4
                                               : 0;
    if (length == 0 || i + length > text.size()) return 0;
    for (std::size_t k = 1; k < length; ++k)
        if ((byte(i + k) & 0xC0) != 0x80) return 0;
    if (length == 1) return 1;
    // RFC 3629: no overlong forms, no UTF-16 surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
    const unsigned char second = byte(i + 1);
    if (length == 2 && lead < 0xC2) return 0;
    if (length == 3 && ((lead == 0xE0 && second < 0xA0) || (lead == 0xED && second >= 0xA0))) return 0;
    if (length == 4 && ((lead == 0xF0 && second < 0x90) || (lead == 0xF4 && second >= 0x90) || lead > 0xF4)) return 0;
    return length;
}

/// Turns an untrusted name into a plain file name: path separators, control
/// characters and invalid UTF-8 become '_', surrounding spaces and dots that
/// would make it hidden or special are removed, the result is at most 200 bytes
/// (keeping the extension). Returns "" when nothing usable is left.
inline std::string sanitize_file_name(std::string_view untrusted) {
    std::string name;
    for (std::size_t i = 0; i < untrusted.size();) {
        unsigned char c = static_cast<unsigned char>(untrusted[i]);
        std::size_t length = utf8_sequence_length(untrusted, i);
        if (length == 0) {
            name += '_';
            ++i;
            continue;
        }
        if (length == 1) {
            bool bad = c < 0x20 || c == 0x7f || c == '/' || c == '\\' || c == ':' || c == '*' || c == '?' || c == '"' ||
                       c == '<' || c == '>' || c == '|';
            name += bad ? '_' : static_cast<char>(c);
        } else {
            name.append(untrusted.substr(i, length));
        }
        i += length;
    }
    // Leading dots and spaces would make "..", "." or hidden files; trailing ones confuse some tools.
    std::size_t begin = name.find_first_not_of(". ");
    if (begin == std::string::npos) return "";
    std::size_t end = name.find_last_not_of(". ");
    name = name.substr(begin, end - begin + 1);
    const std::size_t limit = 200;
    if (name.size() > limit) {
        std::size_t dot = name.rfind('.');
        std::string extension = dot != std::string::npos && name.size() - dot <= 16 ? name.substr(dot) : "";
        std::size_t keep = limit - extension.size();
        while (keep > 0 && (static_cast<unsigned char>(name[keep]) & 0xC0) == 0x80) --keep;  // UTF-8 boundary
        name = name.substr(0, keep) + extension;
    }
    return name;
}

/// Extensions of model weight files: a text body can never be one of these.
inline bool is_model_file_name(std::string_view name) {
    static const char* extensions[] = {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx", ".sft"};
    std::string lower = to_lower(name);
    for (const char* extension : extensions)
        if (ends_with(lower, extension)) return true;
    return false;
}

}  // namespace detail
}  // namespace provision

#endif
