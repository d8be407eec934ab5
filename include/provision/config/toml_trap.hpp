// SPDX-License-Identifier: MIT
// provision: the inputs toml++ 3.3 must never see (they abort it, overflow its
// stack or reach undefined behaviour), found by a small lexer before toml++
// parses anything. Used for configs and for provision.lock.
#ifndef PROVISION_CONFIG_TOML_TRAP_HPP
#define PROVISION_CONFIG_TOML_TRAP_HPP

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace provision {
namespace detail {
namespace config_parser {

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
        return trap(pos,
                    "Error while parsing: a non-ASCII character outside quotes; TOML allows them only in quoted "
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
        string_trap = trap(backslash,
                           "Error while parsing string: a backslash must start an escape sequence (\\b \\t \\n "
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
                if (line_end < n && line_end > pos + 1 && static_cast<unsigned char>(text[line_end]) >= 0x80 &&
                    !string_trap)
                    string_trap = trap(line_end,
                                       "Error while parsing string: a backslash followed by spaces or tabs must be "
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
                        string_trap =
                            trap(pos,
                                 "Error while parsing string: a non-ASCII character right after a line-ending "
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
                    return trap(j,
                                "Error while parsing table header: expected a table name (a bare key or a quoted "
                                "string), saw " +
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
                auto digit_at = [&](std::size_t pos) {
                    return pos < n && std::isdigit(static_cast<unsigned char>(text[pos]));
                };
                auto date_at = [&](std::size_t pos) {  // YYYY-MM-DD
                    for (std::size_t k = 0; k < 10; ++k)
                        if (k == 4 || k == 7 ? pos + k >= n || text[pos + k] != '-' : !digit_at(pos + k)) return false;
                    return true;
                };
                if (is_value && digit_at(i) && characters == 10 && end + 2 < n && text[end] == ' ' &&
                    digit_at(end + 1) && !digit_at(end + 2))
                    return trap(end + 1,
                                "Error while parsing value: expected a time after the date (e.g. 1979-05-27 07:32:00), "
                                "a comment or the end of the line");
                if (is_value && date_at(i) && i + 11 < n && (text[i + 10] == 'T' || text[i + 10] == 't') &&
                    !digit_at(i + 11))
                    return trap(
                        i + 11,
                        "Error while parsing date-time: expected a time after the 'T' (e.g. 1979-05-27T07:32:00)");
                i = end;
                continue;
            }
            ++i;
        }
    }
    return std::nullopt;
}

}  // namespace config_parser
}  // namespace detail
}  // namespace provision

#endif
