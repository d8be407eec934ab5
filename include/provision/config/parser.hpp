// SPDX-License-Identifier: MIT
// provision: the implementation of the TOML config parser declared in config/config.hpp.
//
// Kept apart from the declarations so config/config.hpp stays readable. Everything here
// except the three public functions at the end lives in
// provision::detail::config_parser.
//
// How a file is read: a quick scan refuses the few malformed inputs that make
// toml++ 3.3 abort (find_toml_parser_trap), then toml++ parses the text; either
// way a syntax error ends the work with one diagnostic. Then every entry under
// [models.<category>] is collected, sorted by its position (toml++ keeps keys in
// a sorted map, users think in file order) and checked key by key. A problem
// never stops the checking: every problem of the file becomes one Diagnostic, so
// a user fixes them all in one pass.
#ifndef PROVISION_CONFIG_PARSER_HPP
#define PROVISION_CONFIG_PARSER_HPP

#include "config.hpp"
#include "../url.hpp"
#include "civitai_link.hpp"
#include "../support/digest.hpp"

#include <toml++/toml.h>

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
    if (path.empty()) return "the path is empty; write the file's path inside the repo, e.g. file = \"model.safetensors\"";
    if (path.front() == '/') return "the path must be relative to the repo root; remove the leading '/'";
    if (path.find('\\') != std::string_view::npos) return "use '/' between folders, not '\\'";
    if (has_control_char(path)) return "the path contains a control character";
    std::size_t pos = 0;
    while (true) {
        std::size_t slash = path.find('/', pos);
        std::string_view segment = path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
        if (segment.empty()) return "the path has an empty folder name (\"//\" or a trailing '/'); write folder/file.safetensors";
        if (segment == ".." || segment == ".")
            return "the path must not contain \"..\" or \".\" folders; write the path from the repo root, e.g. vae/model.safetensors";
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

/// RFC 9110 token characters: what an HTTP header name may be made of.
inline bool is_header_name(std::string_view name) {
    if (name.empty()) return false;
    for (unsigned char c : name) {
        bool ok = std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
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

/// Replaces ${NAME} with the variable's value; "$${" stands for a literal "${".
/// On failure returns false and sets `problem` to a message that names the
/// variable but never contains any value from the environment; `unavailable`
/// tells a variable that is unset or not allowed by `trust` (the text is
/// fine, the machine lacks something) from text that is wrong.
inline bool expand_variables(std::string_view text, const EnvLookup& env, const ConfigTrust& trust, std::string& out,
                             std::string& problem, bool& unavailable) {
    out.clear();
    unavailable = false;
    for (std::size_t i = 0; i < text.size();) {
        if (text.compare(i, 3, "$${") == 0) {
            out += "${";
            i += 3;
            continue;
        }
        if (text.compare(i, 2, "${") != 0) {
            out += text[i++];
            continue;
        }
        std::size_t close = text.find('}', i + 2);
        if (close == std::string_view::npos) {
            problem = "\"${\" is not closed; write ${NAME} to insert an environment variable (or $${ for a literal \"${\")";
            return false;
        }
        std::string_view name = text.substr(i + 2, close - i - 2);
        bool valid = !name.empty() && !std::isdigit(static_cast<unsigned char>(name.front()));
        for (unsigned char c : name) valid = valid && (std::isalnum(c) || c == '_');
        if (!valid) {
            problem = "invalid variable reference; write ${NAME} with letters, digits and underscores (or $${ for a literal \"${\")";
            return false;
        }
        std::string variable(name);
        if (!trust.may_expand(variable)) {
            unavailable = true;
            problem = "${" + variable + "} is not expanded: this config was fetched from a URL, and such a config reads "
                      "only the variables the operator allows; to allow it, set PROVISION_ALLOW_VARS=" + variable +
                      " (names separated by commas) or pass --allow-var " + variable;
            return false;
        }
        std::optional<std::string> value = env ? env(variable) : std::nullopt;
        if (!value) {
            unavailable = true;
            problem = "environment variable " + variable + " is not set; set it (export " + variable +
                      "=...) before running provision";
            return false;
        }
        if (!is_header_value(*value)) {
            problem = "environment variable " + std::string(name) +
                      " contains a line break or control character; a header value must be one line";
            return false;
        }
        out += *value;
        i = close + 1;
    }
    return true;
}

/// The keys each source accepts, in the order messages list them.
inline const std::vector<std::string_view>& allowed_keys(SourceKind kind) {
    static const std::vector<std::string_view> huggingface{"source",   "repo",     "file",   "files",       "include", "exclude",
                                                           "revision", "repo_type", "gated", "filename",    "sha256",  "description",
                                                           "notes"};
    static const std::vector<std::string_view> civitai{"source",   "version_id", "model_id", "url", "air", "file_id", "type",
                                                       "filename", "sha256",     "description", "notes"};
    static const std::vector<std::string_view> url{"source",      "url",    "filename",    "headers",
                                                   "auth_header", "sha256", "description", "notes"};
    switch (kind) {
    case SourceKind::huggingface: return huggingface;
    case SourceKind::civitai: return civitai;
    case SourceKind::url: return url;
    }
    return url;
}

inline std::string join(const std::vector<std::string_view>& words) {
    std::string out;
    for (auto word : words) out += (out.empty() ? "" : ", ") + std::string(word);
    return out;
}

/// A spot in the text that toml++ must not be given (see find_toml_parser_trap).
struct ParserTrap {
    int line = 0;
    int column = 0;
    std::string message;  ///< worded like toml++'s own syntax errors
};

/// toml++ 3.3 (Debian's) checks two of its parser's preconditions with an
/// assertion instead of an error: it aborts the process in builds without
/// NDEBUG (and in clang release builds the failed __builtin_assume is undefined
/// behaviour). Both are reachable from malformed input:
///  - a table header whose name starts with a character that cannot start a
///    key: "[=a]", "[.a]", "[[[a]]]", "[#" (fixed upstream after 3.4,
///    marzer/tomlplusplus#301);
///  - an array element that starts with '}' or a non-ASCII line break
///    (U+0085, U+2028, U+2029): "a = [}]", "a = [1,\u2028]".
/// A third trap crashes every build: toml++ recurses once per nested table, so a
/// key path of ~50,000 parts ("[a.a.a...]", 100 KB of text) overflows the stack.
/// Statements whose keys have more than 1000 parts are refused for that reason.
/// And toml++ 3.3 classifies a non-ASCII character it meets between tokens with
/// a table that reaches __builtin_unreachable() for many code points (U+00A1..,
/// marzer/tomlplusplus#190 and #295, fixed upstream by #305): undefined
/// behaviour. Outside strings and comments such a character is never valid
/// TOML, so it is refused here; inside a multi-line basic string the same
/// happens to the first character after a line-ending backslash, and a
/// non-ASCII one there is refused too (the one valid text refused for it).
/// The same table is reached when a backslash in a multi-line basic string is
/// followed by a non-ASCII character ("""\§"""), which is an invalid escape in
/// any case; it is refused here, in one-line basic strings too. So is a
/// backslash followed by spaces or tabs and then, on the same line, a non-ASCII
/// character ("""\ §"""): toml++ takes the blanks for the start of a
/// line-ending backslash and looks the character up in that table.
/// Until every supported toml++ has the fixes we look for these spots ourselves
/// and never hand such text to toml++. The small lexer below knows strings,
/// comments and multi-line arrays, so "[{" inside an array or "[=" inside a
/// multi-line string is not mistaken for a header. Apart from those absurdly
/// deep key paths, every spot it reports is invalid TOML.
inline std::optional<ParserTrap> find_toml_parser_trap(std::string_view text) {
    const std::size_t n = text.size();
    std::size_t i = 0;
    int line = 1;
    std::size_t line_start = 0;
    struct Level {
        char open;                  // '[' or '{'
        bool expect_value = false;  // an array right after '[' or ','
        bool after_equals = false;  // an inline table between a key's '=' and the next ','
    };
    std::vector<Level> nesting;  // arrays and inline tables of the current value
    bool in_value = false;       // after '=' on the current statement
    bool at_statement = true;
    // toml++ walks nested tables recursively (update_region_ends, the destructors),
    // so a key path of some 50,000 parts overflows the stack. No config needs more
    // than a handful: a statement whose keys have more parts than this is refused.
    constexpr int max_key_dots = 1000;
    int key_dots = 0;  // '.' between key parts (header, key, inline-table keys) of the current statement
    auto new_line = [&](std::size_t newline_at) {
        ++line;
        line_start = newline_at + 1;
    };
    auto trap = [&](std::size_t pos, const std::string& message) {
        ParserTrap found;
        found.line = line;
        found.column = 1;
        for (std::size_t k = line_start; k < pos; ++k)
            if ((static_cast<unsigned char>(text[k]) & 0xC0) != 0x80) ++found.column;
        found.message = message;
        return found;
    };
    auto too_deep = [&](std::size_t pos) {
        return trap(pos, "Error while parsing key: more than " + std::to_string(max_key_dots) +
                             " nested key parts in one statement; write [models.<category>.<name>]");
    };
    auto non_ascii = [&](std::size_t pos) {
        return trap(pos, "Error while parsing: a non-ASCII character outside quotes; TOML allows them only in quoted "
                         "strings and comments, so quote the key or value");
    };
    if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = line_start = 3;  // a UTF-8 byte order mark, which toml++ skips
    auto describe = [&](std::size_t pos) -> std::string {
        auto ch = static_cast<unsigned char>(text[pos]);
        if (ch == '\n' || ch == '\r') return "a line break";
        if (ch >= 0x21 && ch < 0x7f) return std::string("'") + static_cast<char>(ch) + "'";
        return "a character that cannot start it";
    };
    auto skip_blanks = [&](std::size_t pos) {
        while (pos < n && (text[pos] == ' ' || text[pos] == '\t')) ++pos;
        return pos;
    };
    std::optional<ParserTrap> string_trap;  // set by skip_string
    // A backslash before a non-ASCII character sends toml++ 3.3 into the same
    // table, so that invalid escape is refused here with the valid ones listed.
    // Other invalid escapes are left to toml++, which reports them where they are
    // (a refusal here would hide an earlier error it finds first).
    auto bad_escape = [&](std::size_t backslash, bool multi_line) {
        if (backslash + 1 >= n || static_cast<unsigned char>(text[backslash + 1]) < 0x80 || string_trap) return;
        string_trap = trap(backslash, "Error while parsing string: a backslash must start an escape sequence (\\b \\t \\n "
                                      "\\f \\r \\\" \\\\ \\uXXXX or \\UXXXXXXXX)" +
                                          std::string(multi_line ? " or, in a multi-line string, end its line" : "") +
                                          ", saw a non-ASCII character after it; write \\\\ for a backslash");
    };
    auto skip_string = [&](std::size_t pos) {  // pos at the opening quote; returns the position after the string
        const char quote = text[pos];
        const bool basic = quote == '"';
        const std::string triple(3, quote);
        if (text.compare(pos, 3, triple) == 0) {
            pos += 3;
            while (pos < n) {
                std::size_t line_end = basic && text[pos] == '\\' ? skip_blanks(pos + 1) : n;
                // After a backslash and blanks toml++ expects the line to end, and
                // classifies what it meets there with the same table: a non-ASCII
                // character that follows on the same line (invalid anyway) is refused.
                if (line_end < n && line_end > pos + 1 && static_cast<unsigned char>(text[line_end]) >= 0x80 && !string_trap)
                    string_trap = trap(line_end, "Error while parsing string: a backslash followed by spaces or tabs must be "
                                                 "the last character on its line (a line-ending backslash), saw a non-ASCII "
                                                 "character after them; write \\\\ for a backslash");
                if (line_end < n && (text[line_end] == '\n' || text[line_end] == '\r')) {
                    // A line-ending backslash: white space up to the next other character is dropped.
                    pos = line_end;
                    while (pos < n && std::string_view(" \t\r\n").find(text[pos]) != std::string_view::npos) {
                        if (text[pos] == '\n') new_line(pos);
                        ++pos;
                    }
                    if (pos < n && static_cast<unsigned char>(text[pos]) >= 0x80 && !string_trap)
                        string_trap = trap(pos, "Error while parsing string: a non-ASCII character right after a line-ending "
                                                "backslash is misread by toml++ 3.3; put an ASCII character first or "
                                                "drop the backslash");
                } else if (basic && text[pos] == '\\' && pos + 1 < n) {
                    bad_escape(pos, true);
                    if (text[pos + 1] == '\n') new_line(pos + 1);
                    pos += 2;
                } else if (text[pos] == '\n') {
                    new_line(pos);
                    ++pos;
                } else if (text.compare(pos, 3, triple) == 0) {
                    while (pos < n && text[pos] == quote) ++pos;  // up to two quotes may end the content
                    return pos;
                } else {
                    ++pos;
                }
            }
            return pos;
        }
        ++pos;
        while (pos < n && text[pos] != '\n') {
            if (text[pos] == quote) return pos + 1;
            if (basic && text[pos] == '\\') bad_escape(pos, false);
            pos += basic && text[pos] == '\\' && pos + 1 < n && text[pos + 1] != '\n' ? 2 : 1;
        }
        return pos;
    };
    auto in_array = [&] { return !nesting.empty() && nesting.back().open == '['; };
    auto value_started = [&] {  // something that is a value begins here
        if (in_array()) nesting.back().expect_value = false;
    };
    while (i < n) {
        const char c = text[i];
        if (c == '\n') {
            new_line(i);
            if (nesting.empty()) {
                in_value = false;
                at_statement = true;
                key_dots = 0;
            }
            ++i;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            ++i;
        } else if (c == '#') {
            while (i < n && text[i] != '\n') ++i;
        } else if (c == '"' || c == '\'') {
            at_statement = false;
            value_started();
            i = skip_string(i);
            if (string_trap) return string_trap;
        } else if (c == '[' && at_statement && nesting.empty() && !in_value) {
            at_statement = false;
            // Mirror toml++'s header prologue: '[', blanks, an optional second '[' right
            // after the first, blanks; then it expects a key, a quote or a premature ']'.
            std::size_t j = skip_blanks(i + 1);
            bool blanks = j > i + 1;
            if (j < n && text[j] == '[' && !blanks) j = skip_blanks(j + 1);
            else if (j < n && text[j] == '[') j = n;  // "[ [": toml++ rejects it itself
            if (j < n) {
                auto ch = static_cast<unsigned char>(text[j]);
                if (!(std::isalnum(ch) || ch == '_' || ch == '-' || ch == '"' || ch == '\'' || ch == ']'))
                    return trap(j, "Error while parsing table header: expected a table name (a bare key or a quoted string), saw " +
                                       describe(j) + "; write e.g. [models.lora.my-model]");
            }
            ++i;
        } else if (!in_value) {
            at_statement = false;
            if (c == '=') in_value = true;
            if (c == '.' && ++key_dots > max_key_dots) return too_deep(i);
            if (static_cast<unsigned char>(c) >= 0x80) return non_ascii(i);
            ++i;
        } else {
            bool line_separator = text.compare(i, 2, "\xC2\x85") == 0 || text.compare(i, 3, "\xE2\x80\xA8") == 0 ||
                                  text.compare(i, 3, "\xE2\x80\xA9") == 0;
            if ((c == '}' || line_separator) && in_array() && nesting.back().expect_value)
                return trap(i, "Error while parsing array: expected a value or closing ']', saw " +
                                   (c == '}' ? std::string("'}'") : std::string("a Unicode line separator")));
            if (c == '[' || c == '{') {
                value_started();
                nesting.push_back({c, c == '[', false});
            } else if (c == ']' || c == '}') {
                if (!nesting.empty()) nesting.pop_back();
            } else if (c == ',') {
                if (in_array()) nesting.back().expect_value = true;
                else if (!nesting.empty()) nesting.back().after_equals = false;  // next key of an inline table
            } else if (c == '=') {
                if (!nesting.empty() && nesting.back().open == '{') nesting.back().after_equals = true;
            } else {
                // A bare word: a number, date or boolean in a value position, or a key
                // inside an inline table. toml++ reads a value up to a terminator.
                const bool is_value = nesting.empty() || nesting.back().open == '[' || nesting.back().after_equals;
                value_started();
                std::size_t end = i;
                int characters = 0;
                while (end < n && std::string_view(" \t\r\n],}#=").find(text[end]) == std::string_view::npos) {
                    auto byte = static_cast<unsigned char>(text[end]);
                    if (byte != '_' && (byte & 0xC0) != 0x80) ++characters;
                    if (byte == '.' && !is_value && ++key_dots > max_key_dots) return too_deep(end);
                    if (byte >= 0x80) return non_ascii(end);
                    ++end;
                }
                auto digit_at = [&](std::size_t pos) { return pos < n && std::isdigit(static_cast<unsigned char>(text[pos])); };
                auto date_at = [&](std::size_t pos) {  // YYYY-MM-DD
                    for (std::size_t k = 0; k < 10; ++k)
                        if (k == 4 || k == 7 ? pos + k >= n || text[pos + k] != '-' : !digit_at(pos + k)) return false;
                    return true;
                };
                if (is_value && digit_at(i) && characters == 10 && end + 2 < n && text[end] == ' ' && digit_at(end + 1) &&
                    !digit_at(end + 2))
                    return trap(end + 1, "Error while parsing value: expected a time after the date (e.g. 1979-05-27 07:32:00), "
                                         "a comment or the end of the line");
                if (is_value && date_at(i) && i + 11 < n && (text[i + 10] == 'T' || text[i + 10] == 't') && !digit_at(i + 11))
                    return trap(i + 11, "Error while parsing date-time: expected a time after the 'T' (e.g. 1979-05-27T07:32:00)");
                i = end;
                continue;
            }
            ++i;
        }
    }
    return std::nullopt;
}

/// Positions compare in file order.
inline bool earlier(const toml::source_position& a, const toml::source_position& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
}

/// Walks a parsed document and fills a Manifest.
class Checker {
  public:
    Checker(Manifest& manifest, const EnvLookup& env, const ConfigTrust& trust) : manifest_(manifest), env_(env), trust_(trust) {}

    void check_document(const toml::table& root) {
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
                std::string message = "unknown top-level key " + quote_untrusted(name) + "; models are listed as [models.<category>.<name>] tables";
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
        std::stable_sort(manifest_.diagnostics.begin(), manifest_.diagnostics.end(), [](const Diagnostic& a, const Diagnostic& b) {
            return a.where.line != b.where.line ? a.where.line < b.where.line : a.where.column < b.where.column;
        });
    }

  private:
    using Member = std::pair<const toml::key*, const toml::node*>;

    /// A table's members sorted by where their keys are written.
    static std::vector<Member> in_file_order(const toml::table& table) {
        std::vector<Member> members;
        members.reserve(table.size());
        for (const auto& [key, value] : table) members.emplace_back(&key, &value);
        std::stable_sort(members.begin(), members.end(),
                         [](const Member& a, const Member& b) { return earlier(a.first->source().begin, b.first->source().begin); });
        return members;
    }

    void report(const toml::source_region& region, std::string key_path, std::string message) {
        Diagnostic diagnostic;
        diagnostic.where = location(region);
        diagnostic.key_path = std::move(key_path);
        diagnostic.message = std::move(message);
        manifest_.diagnostics.push_back(std::move(diagnostic));
    }

    SourceLocation location(const toml::source_region& region) const {
        SourceLocation where;
        where.file = manifest_.origin;
        where.line = static_cast<int>(region.begin.line);
        where.column = static_cast<int>(region.begin.column);
        return where;
    }

    void wrong_type(const toml::node& value, const std::string& key_path, std::string_view expected) {
        report(value.source(), key_path, "expected " + std::string(expected) + ", got " + type_phrase(value));
    }

    /// [settings]: layout and models_dir.
    void check_settings(const toml::node& node) {
        const toml::table* table = node.as_table();
        if (!table) return wrong_type(node, "settings", "a table ([settings] with layout = \"...\" and models_dir = \"...\")");
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
                    report(value->source(), path, "unknown layout " + quote_untrusted(text->get()) + "; use one of: sdnext, a1111, forge, comfyui");
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
                report(key->source(), path, "unknown setting " + quote_untrusted(key->str()) + "; [settings] takes layout and models_dir");
            }
        }
    }

    /// For a config fetched from a URL, without the operator's leave: why this
    /// folder may not be used (absolute, or climbing out with ".."), or null.
    const char* remote_path_problem(const std::string& folder) const {
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

    /// [directories]: category = "folder" pairs that add categories or move existing ones.
    void check_directories(const toml::node& node) {
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

    struct Candidate {
        std::string category;
        std::string name;
        std::string key_path;
        const toml::node* value;
    };

    /// Checks every category; returns how many entries were found (valid or not).
    std::size_t check_models(const toml::table& categories, bool& models_problem) {
        std::vector<Candidate> candidates;
        for (const auto& [category_key, category_value] : in_file_order(categories)) {
            std::string category_path = child_path("models", category_key->str());
            const toml::table* entries = category_value->as_table();
            if (!entries) {
                report(category_value->source(), category_path,
                       std::string("expected a table of models ([") + category_path + ".<name>] sections or name = \"https://...\"), got " +
                           type_phrase(*category_value));
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
                       std::string("expected a table (with source, repo, url, ...) or a URL string, got ") + type_phrase(*candidate.value));
            }
            if (entry) manifest_.entries.push_back(std::move(*entry));
        }
        return candidates.size();
    }

    Entry new_entry(const Candidate& candidate) const {
        Entry entry;
        entry.category = candidate.category;
        entry.name = candidate.name;
        entry.key_path = candidate.key_path;
        entry.where = location(candidate.value->source());
        return entry;
    }

    /// The simple form: name = "https://...".
    std::optional<Entry> check_simple_entry(const Candidate& candidate, const std::string& text) {
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

    bool check_url(const std::string& text, const toml::node& value, const std::string& key_path) {
        auto parsed = parse_url(text);
        if (parsed) return true;
        // parse_url's message repeats the URL, which may carry a token: keep only the reason.
        std::string reason = parsed.error().message;
        std::string prefix = "invalid URL \"" + detail::unparsed_url_for_message(text) + "\": ";
        if (starts_with(reason, prefix)) reason = reason.substr(prefix.size());
        report(value.source(), key_path, "not a usable URL: " + reason);
        return false;
    }

    std::optional<SourceKind> entry_source(const Candidate& candidate, const toml::table& table) {
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
            if (lower == "hf" || lower == "hugging face" || lower == "hugging_face" || lower == "hugging-face" || lower == "huggingface")
                message += " (did you mean \"huggingface\"?)";
            else if (lower == "civitai" || lower == "civit" || lower == "civit.ai")
                message += " (did you mean \"civitai\"?)";
            else if (lower == "url" || lower == "http" || lower == "https" || lower == "gdrive" || lower == "google_drive" ||
                     lower == "googledrive" || lower == "google-drive" || lower == "drive")
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
        } else {
            std::string keys;
            for (const auto& hint : hints) keys += (keys.empty() ? "\"" : " and \"") + std::string(hint.first) + "\"";
            report(table.source(), candidate.key_path,
                   "cannot tell the source: the entry has both " + keys + "; add source = \"...\" and remove the keys of the other source");
        }
        return std::nullopt;
    }

    std::optional<Entry> check_table_entry(const Candidate& candidate, const toml::table& table) {
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
                check_numeric_id(value, path, key, key == "version_id" ? entry.version_id : key == "file_id" ? entry.file_id : entry.model_id);
            } else if (key == "files" || key == "include" || key == "exclude") {
                check_repo_path_list(value, path, key, key == "files" ? entry.files : key == "include" ? entry.include : entry.exclude);
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
                       "missing required key \"" + std::string(key) + "\" for source \"" + to_string(*kind) + "\"; add " + example);
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

    /// Whether a URL is on a CivitAI site (and so goes to the CivitAI source).
    static bool is_civitai_link(const std::string& text) {
        auto url = parse_url(text);
        return url && is_civitai_host(url->host);
    }

    /// A CivitAI link, under source = "civitai", "url" or inferred, becomes ids:
    /// the CivitAI source then verifies the file's SHA-256 and sends
    /// CIVITAI_TOKEN, which a plain download could do neither of. The link
    /// itself is not kept (a copied download link may carry ?token=).
    void civitai_link_to_ids(const toml::node& value, const std::string& path, Entry& entry) {
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
            report(value.source(), path, "the link's fileId " + ref->file_id + " differs from file_id " + entry.file_id + "; keep one");
            return;
        }
        entry.model_id = ref->model_id;
        entry.version_id = ref->version_id;
        if (!ref->file_id.empty()) entry.file_id = ref->file_id;
        entry.civitai_site = ref->site;
    }

    /// A CivitAI entry names its model one way: version_id (optionally with
    /// model_id), model_id alone (the model's default version), air, or url.
    void check_civitai_ids(const toml::table& table, const std::string& key_path, const std::vector<std::string_view>& seen) {
        auto has = [&](std::string_view key) { return std::find(seen.begin(), seen.end(), key) != seen.end(); };
        const bool air = has("air"), url = has("url");
        if (air && url) {
            report(table.get("url")->source(), child_path(key_path, "url"), "\"air\" and \"url\" both name the model; keep one");
        } else if (air && (has("version_id") || has("model_id"))) {
            std::string_view other = has("version_id") ? "version_id" : "model_id";
            report(table.get(other)->source(), child_path(key_path, other),
                   "the AIR id already names the model and version; remove " + std::string(other) + " (or air)");
        } else if (!air && !url && !has("version_id") && !has("model_id")) {
            report(table.source(), key_path,
                   "missing required key \"version_id\" for source \"civitai\"; add version_id = \"<model version id>\" (the "
                   "number after ?modelVersionId= in the model page's URL), or url = \"https://civitai.com/models/...\" (the "
                   "page's link), model_id = <model id> (its default version), or air = \"urn:air:...:civitai:<model>@<version>\"");
        }
    }

    /// [models.auto.<name>] places a file by its CivitAI model type, which only the CivitAI source knows.
    void check_auto_category(const Entry& entry, const toml::source_region& where) {
        if (entry.category == "auto" && entry.source != SourceKind::civitai)
            report(where, entry.key_path,
                   "[models.auto] places files by their CivitAI model type, and this entry is not from CivitAI; put it under "
                   "[models.<category>] (e.g. [models.checkpoints." + child_path("", entry.name) + "])");
    }

    /// files / include / exclude: a non-empty array of strings. files holds repo
    /// paths (checked like file); include and exclude hold glob patterns.
    void check_repo_path_list(const toml::node& value, const std::string& path, std::string_view key, std::vector<std::string>& out) {
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
                   "the list is empty; " + std::string(patterns ? "give at least one pattern, e.g. " : "name at least one file, e.g. ") +
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

    /// Why a glob pattern is unusable, or "" when it is fine.
    static std::string pattern_problem(std::string_view pattern) {
        if (pattern.empty()) return "the pattern is empty; write e.g. \"*.safetensors\"";
        if (has_control_char(pattern)) return "the pattern contains a control character";
        if (pattern.front() == '/') return "patterns match paths relative to the repo root; remove the leading '/'";
        return "";
    }

    /// Which files of a Hugging Face repo: file, files, or include (with optional
    /// exclude). Exactly one way, so an entry never means two things; a whole repo
    /// must be asked for (include = ["*"]), never implied by a forgotten key.
    void check_file_selection(const toml::table& table, const std::string& key_path, const std::vector<std::string_view>& seen) {
        auto has = [&](std::string_view key) { return std::find(seen.begin(), seen.end(), key) != seen.end(); };
        auto at = [&](std::string_view key) { return table.get(key)->source(); };
        const bool file = has("file"), files = has("files"), include = has("include"), exclude = has("exclude");
        if (file && (files || include || exclude)) {
            std::string_view other = files ? "files" : include ? "include" : "exclude";
            report(at(other), child_path(key_path, other),
                   "\"file\" and \"" + std::string(other) + "\" cannot be combined: file names one file; for several, "
                   "move it into files = [...] or select them with include = [...] (and exclude = [...])");
        } else if (files && (include || exclude)) {
            std::string_view other = include ? "include" : "exclude";
            report(at(other), child_path(key_path, other),
                   "\"files\" and \"" + std::string(other) + "\" cannot be combined: files lists exact paths, include and "
                   "exclude select by pattern; use one way");
        } else if (exclude && !include) {
            report(at("exclude"), child_path(key_path, "exclude"),
                   "exclude needs include: write include = [\"*\"] to start from the whole repo, then exclude = [...] removes files");
        } else if (!file && !files && !include) {
            report(table.source(), key_path,
                   "missing required key \"file\" for source \"huggingface\"; add file = \"<path of the file inside the repo>\", "
                   "e.g. file = \"sd_xl_base_1.0.safetensors\" (for several: files = [\"a.safetensors\", \"sub/b.json\"], "
                   "or include = [\"*\"] for the whole repo)");
        }
        if ((files || include) && !file) {
            if (has("filename"))
                report(at("filename"), child_path(key_path, "filename"),
                       "filename renames one file; an entry with files or include keeps the repo's names (and folders), so remove it");
            if (has("sha256"))
                report(at("sha256"), child_path(key_path, "sha256"),
                       "sha256 checks one file; with files or include every file is verified against the digest Hugging Face lists, so remove it");
        }
    }

    static std::string unknown_key_message(std::string_view key, SourceKind kind) {
        std::string message = "unknown key " + quote_untrusted(key) + " for source \"" + to_string(kind) +
                              "\"; allowed keys: " + join(allowed_keys(kind));
        if (kind == SourceKind::civitai && (key == "modelId" || key == "id" || key == "model"))
            message += " (write model_id for the model's id, version_id for a version's)";
        else if (kind == SourceKind::civitai && (key == "modelVersionId" || key == "version"))
            message += " (write version_id)";
        else if (key == "token" || key == "api_key" || key == "hf_token" || key == "civitai_token")
            message += kind == SourceKind::url
                           ? " (put secrets in the environment and write auth_header = \"Bearer ${MY_TOKEN}\")"
                           : " (tokens come from the HF_TOKEN and CIVITAI_TOKEN environment variables, not from the config)";
        else
            for (SourceKind other : {SourceKind::huggingface, SourceKind::civitai, SourceKind::url}) {
                const auto& keys = allowed_keys(other);
                if (other != kind && std::find(keys.begin(), keys.end(), key) != keys.end()) {
                    message += std::string(" (") + quote_untrusted(key) + " belongs to source = \"" + to_string(other) + "\")";
                    break;
                }
            }
        return message;
    }

    /// version_id / file_id: an integer or a string of digits, kept as digits.
    void check_numeric_id(const toml::node& value, const std::string& path, std::string_view key, std::string& out) {
        const char* expected = "expected a number or a string of digits";
        if (const auto* number = value.as_integer()) {
            if (number->get() <= 0) {
                report(value.source(), path, std::string(expected) + ", got " + std::to_string(number->get()) + "; ids are positive");
                return;
            }
            out = std::to_string(number->get());
        } else if (const auto* text = value.as_string()) {
            if (!is_all_digits(text->get())) {
                std::string message = std::string(expected) + ", got " + quote_untrusted(text->get());
                if (key == "version_id") message += " (use the number after ?modelVersionId= in the CivitAI URL)";
                if (text->get().find("civitai.") != std::string::npos) message += "; or give the whole link as url = \"...\"";
                report(value.source(), path, message);
                return;
            }
            out = text->get();
        } else {
            report(value.source(), path, std::string(expected) + ", got " + type_phrase(value));
        }
    }

    void check_string_key(std::string_view key, const std::string& text, const toml::node& value, const std::string& path, Entry& entry) {
        auto fail = [&](const std::string& message) { report(value.source(), path, message); };
        if (key == "repo") {
            if (!is_repo_id(text)) {
                std::string message = "expected a repo id \"owner/name\" (e.g. \"stabilityai/stable-diffusion-xl-base-1.0\"), got " + quote_untrusted(text);
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
                std::string message = "unknown repo_type " + quote_untrusted(text) + "; use \"model\" (the default), \"dataset\" or \"space\"";
                if (text == "models" || text == "datasets" || text == "spaces")
                    message += " (singular: \"" + text.substr(0, text.size() - 1) + "\")";
                fail(message);
            }
        } else if (key == "type") {
            if (text.empty()) fail("the file type is empty; write e.g. type = \"Model\" or type = \"VAE\", or remove the key");
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

    /// headers = { Name = "value", ... } and auth_header = "Bearer ${VAR}".
    /// Values are never quoted in messages: they may hold secrets.
    void check_headers(const toml::node* headers, const toml::node* auth_header, const std::string& entry_path, Entry& entry) {
        auto add = [&](const std::string& name, const std::string& raw, const toml::node& value, const std::string& path) {
            if (!is_header_value(raw)) {
                report(value.source(), path, "the header value contains a line break or control character; a header value must be one line");
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
                               : "the header " + quote_untrusted(name) + " is given twice (header names are case-insensitive)");
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
                               "not a valid HTTP header name: " + quote_untrusted(name) + "; use letters, digits and '-', e.g. \"Authorization\"");
                    } else if (const auto* text = value->as_string()) {
                        add(name, text->get(), *value, path);
                    } else {
                        wrong_type(*value, path, "a string");
                    }
                }
            } else {
                wrong_type(*headers, headers_path, "a table of header names and values, e.g. headers = { \"X-Api-Key\" = \"${MY_KEY}\" }");
            }
        }
        if (auth_header) {
            std::string path = child_path(entry_path, "auth_header");
            if (const auto* text = auth_header->as_string())
                add("Authorization", text->get(), *auth_header, path);
            else
                wrong_type(*auth_header, path, "a string, e.g. auth_header = \"Bearer ${MY_TOKEN}\"");
        }
    }

    Manifest& manifest_;
    const EnvLookup& env_;
    const ConfigTrust& trust_;
};

}  // namespace config_parser
}  // namespace detail

inline bool is_safe_filename(std::string_view name) { return detail::config_parser::filename_problem(name) == nullptr; }

inline Manifest parse_config(std::string_view text, const std::string& origin, const EnvLookup& env, const ConfigTrust& trust) {
    Manifest manifest;
    manifest.origin = redact_url(origin);  // a config URL may carry a token in its query
    manifest.sha256 = detail::sha256_hex(std::string(text));
    manifest.remote = trust.remote;
    auto syntax_error = [&](const toml::parse_error& error) {
        Diagnostic diagnostic;
        diagnostic.where.file = manifest.origin;
        diagnostic.where.line = static_cast<int>(error.source().begin.line);
        diagnostic.where.column = static_cast<int>(error.source().begin.column);
        diagnostic.message = detail::config_parser::printable(error.description());
        manifest.diagnostics.push_back(std::move(diagnostic));
    };
    // Text that would make toml++ 3.3 abort gets a diagnostic without reaching it.
    if (auto trap = detail::config_parser::find_toml_parser_trap(text)) {
        Diagnostic diagnostic;
        diagnostic.where.file = manifest.origin;
        diagnostic.where.line = trap->line;
        diagnostic.where.column = trap->column;
        diagnostic.message = trap->message;
        manifest.diagnostics.push_back(std::move(diagnostic));
        return manifest;
    }
#if TOML_EXCEPTIONS
    toml::table root;
    try {
        root = toml::parse(text);
    } catch (const toml::parse_error& error) {
        syntax_error(error);
        return manifest;
    }
#else
    toml::parse_result parsed = toml::parse(text);
    if (!parsed) {
        syntax_error(parsed.error());
        return manifest;
    }
    const toml::table& root = parsed.table();
#endif
    detail::config_parser::Checker(manifest, env, trust).check_document(root);
    return manifest;
}

}  // namespace provision

#endif
