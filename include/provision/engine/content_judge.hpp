// SPDX-License-Identifier: MIT
// provision: is this response a model or a document? The Content-Type and the
// first bytes decide, so a login page or a JSON error is never saved where a
// model was expected.
#ifndef PROVISION_ENGINE_CONTENT_JUDGE_HPP
#define PROVISION_ENGINE_CONTENT_JUDGE_HPP

#include "../http/probe.hpp"
#include "../url.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace provision {
namespace detail {

/// True for a Content-Type that is a document, not model bytes.
inline bool is_text_content_type(std::string_view content_type) {
    std::string type = to_lower(trim(content_type.substr(0, content_type.find(';'))));
    return starts_with(type, "text/") || type == "application/json" || type == "application/xhtml+xml" ||
           type == "application/problem+json" || type == "application/xml";
}

/// Types no server gives a model file, even a misconfigured one. A bare
/// text/plain is different: nginx without its MIME map, and many object
/// stores, label every unknown file that way, so the body decides.
inline bool is_document_content_type(std::string_view content_type) {
    std::string type = to_lower(trim(content_type.substr(0, content_type.find(';'))));
    return is_text_content_type(type) && type != "text/plain";
}

/// True when a body's first bytes are plain text (an error message, a page)
/// rather than a binary model file, whose first bytes always hold a NUL or
/// another control byte (safetensors' length prefix, a zip or pickle header).
inline bool looks_like_text(std::string_view head) {
    head = head.substr(0, 512);
    if (head.empty()) return false;
    for (unsigned char c : head)
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
    return true;
}

/// True when the first bytes of a body look like an HTML document.
inline bool looks_like_html(std::string_view head) {
    std::size_t i = 0;
    if (starts_with(head, "\xEF\xBB\xBF")) i = 3;
    while (i < head.size() && std::isspace(static_cast<unsigned char>(head[i]))) ++i;
    std::string start = to_lower(head.substr(i, 14));
    return starts_with(start, "<!doctype html") || starts_with(start, "<html") || starts_with(start, "<head") ||
           starts_with(start, "<!--");
}

/// True when the first bytes are a JSON object or array: the shape of an
/// API's error answer. No model file starts that way (safetensors opens with a
/// binary length, the other formats with binary magic numbers), so this holds
/// whatever Content-Type the server claimed.
inline bool looks_like_json(std::string_view head) {
    std::size_t i = starts_with(head, "\xEF\xBB\xBF") ? 3 : 0;
    while (i < head.size() && std::isspace(static_cast<unsigned char>(head[i]))) ++i;
    return i < head.size() && (head[i] == '{' || head[i] == '[') && looks_like_text(head);
}

/// How many first bytes of a model file are gathered before they are judged
/// (a first read can be a handful of bytes; looks_like_text reads this many).
constexpr std::size_t model_head_bytes = 512;

/// What the first bytes of an expected model file show instead, in words for
/// the user ("received an HTML page from ..."); nullopt when they may be the
/// file. `text_claimed`: the answer's Content-Type said text, so plain text
/// is refused too (without that claim a text-like head may be a small file).
inline std::optional<std::string> judge_model_head(std::string_view head, bool text_claimed,
                                                   const std::string& source) {
    if (looks_like_html(head)) return "received an HTML page from " + source;
    if (looks_like_json(head))
        return source + " sent a JSON document (\"" + excerpt(head, 80) +
               "\"); the link may need a token, or it names an API answer, not a file";
    if (text_claimed && looks_like_text(head))
        return source + " sent text (\"" + excerpt(head, 80) +
               "\"); the link may need a login or point to a web page, not a file";
    return std::nullopt;
}

}  // namespace detail
}  // namespace provision

#endif  // PROVISION_ENGINE_CONTENT_JUDGE_HPP
