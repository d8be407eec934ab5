// SPDX-License-Identifier: MIT
// provision: the inputs toml++ 3.3 must never see (they abort it, overflow its
// stack or reach undefined behaviour), found by a small lexer before toml++
// parses anything. Used for configs and for provision.lock.
#ifndef PROVISION_CONFIG_TOML_TRAP_HPP
#define PROVISION_CONFIG_TOML_TRAP_HPP

#include <cctype>
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

/// The small lexer behind find_toml_parser_trap: it walks the text once,
/// tracking only what tells a trap apart (strings, comments, the arrays and
/// inline tables of the current value, the key parts of the statement).
class TomlTrapScanner {
  public:
    explicit TomlTrapScanner(std::string_view text) : text_(text), n_(text.size()) {
        // A UTF-8 byte order mark, which toml++ skips.
        if (text_.compare(0, 3, "\xEF\xBB\xBF") == 0) i_ = line_start_ = 3;
    }

    std::optional<ParserTrap> scan() {
        while (i_ < n_) {
            const char c = text_[i_];
            if (c == '\n') {
                new_line(i_);
                if (nesting_.empty()) {
                    in_value_ = false;
                    at_statement_ = true;
                    key_dots_ = 0;
                }
                ++i_;
            } else if (c == ' ' || c == '\t' || c == '\r') {
                ++i_;
            } else if (c == '#') {
                while (i_ < n_ && text_[i_] != '\n') ++i_;
            } else if (c == '"' || c == '\'') {
                at_statement_ = false;
                value_started();
                i_ = skip_string(i_);
                if (string_trap_) return string_trap_;
            } else if (c == '[' && at_statement_ && nesting_.empty() && !in_value_) {
                at_statement_ = false;
                if (auto found = check_header(i_)) return found;
                ++i_;
            } else if (!in_value_) {
                at_statement_ = false;
                if (c == '=') in_value_ = true;
                if (c == '.' && ++key_dots_ > max_key_dots) return too_deep(i_);
                if (static_cast<unsigned char>(c) >= 0x80) return non_ascii(i_);
                ++i_;
            } else if (auto found = scan_value_character(c)) {
                return found;
            }
        }
        return std::nullopt;
    }

  private:
    struct Level {
        char open;                  // '[' or '{'
        bool expect_value = false;  // an array right after '[' or ','
        bool after_equals = false;  // an inline table between a key's '=' and the next ','
    };
    // toml++ walks nested tables recursively (update_region_ends, the destructors),
    // so a key path of some 50,000 parts overflows the stack. No config needs more
    // than a handful: a statement whose keys have more parts than this is refused.
    static constexpr int max_key_dots = 1000;

    void new_line(std::size_t newline_at) {
        ++line_;
        line_start_ = newline_at + 1;
    }
    ParserTrap trap(std::size_t pos, const std::string& message) const {
        ParserTrap found;
        found.line = line_;
        found.column = 1;
        for (std::size_t k = line_start_; k < pos; ++k)
            if ((static_cast<unsigned char>(text_[k]) & 0xC0) != 0x80) ++found.column;
        found.message = message;
        return found;
    }
    ParserTrap too_deep(std::size_t pos) const {
        return trap(pos, "Error while parsing key: more than " + std::to_string(max_key_dots) +
                             " nested key parts in one statement; write [models.<category>.<name>]");
    }
    ParserTrap non_ascii(std::size_t pos) const {
        return trap(pos,
                    "Error while parsing: a non-ASCII character outside quotes; TOML allows them only in quoted "
                    "strings and comments, so quote the key or value");
    }
    std::string describe(std::size_t pos) const {
        auto ch = static_cast<unsigned char>(text_[pos]);
        if (ch == '\n' || ch == '\r') return "a line break";
        if (ch >= 0x21 && ch < 0x7f) return std::string("'") + static_cast<char>(ch) + "'";
        return "a character that cannot start it";
    }
    std::size_t skip_blanks(std::size_t pos) const {
        while (pos < n_ && (text_[pos] == ' ' || text_[pos] == '\t')) ++pos;
        return pos;
    }
    bool in_array() const { return !nesting_.empty() && nesting_.back().open == '['; }
    void value_started() {  // something that is a value begins here
        if (in_array()) nesting_.back().expect_value = false;
    }
    bool digit_at(std::size_t pos) const { return pos < n_ && std::isdigit(static_cast<unsigned char>(text_[pos])); }
    bool date_at(std::size_t pos) const {  // YYYY-MM-DD
        for (std::size_t k = 0; k < 10; ++k)
            if (k == 4 || k == 7 ? pos + k >= n_ || text_[pos + k] != '-' : !digit_at(pos + k)) return false;
        return true;
    }

    // A backslash before a non-ASCII character sends toml++ 3.3 into the same
    // table, so that invalid escape is refused here with the valid ones listed.
    // Other invalid escapes are left to toml++, which reports them where they are
    // (a refusal here would hide an earlier error it finds first).
    void bad_escape(std::size_t backslash, bool multi_line) {
        if (backslash + 1 >= n_ || static_cast<unsigned char>(text_[backslash + 1]) < 0x80 || string_trap_) return;
        string_trap_ = trap(backslash,
                            "Error while parsing string: a backslash must start an escape sequence (\\b \\t \\n "
                            "\\f \\r \\\" \\\\ \\uXXXX or \\UXXXXXXXX)" +
                                std::string(multi_line ? " or, in a multi-line string, end its line" : "") +
                                ", saw a non-ASCII character after it; write \\\\ for a backslash");
    }

    /// `pos` at the opening quote; returns the position after the string
    /// (a trap found inside is left in string_trap_).
    std::size_t skip_string(std::size_t pos) {
        const char quote = text_[pos];
        if (text_.compare(pos, 3, std::string(3, quote)) == 0) return skip_multi_line_string(pos + 3, quote);
        const bool basic = quote == '"';
        ++pos;
        while (pos < n_ && text_[pos] != '\n') {
            if (text_[pos] == quote) return pos + 1;
            if (basic && text_[pos] == '\\') bad_escape(pos, false);
            pos += basic && text_[pos] == '\\' && pos + 1 < n_ && text_[pos + 1] != '\n' ? 2 : 1;
        }
        return pos;
    }

    /// `pos` just after the opening three quotes.
    std::size_t skip_multi_line_string(std::size_t pos, char quote) {
        const bool basic = quote == '"';
        const std::string triple(3, quote);
        while (pos < n_) {
            std::size_t line_end = basic && text_[pos] == '\\' ? skip_blanks(pos + 1) : n_;
            // After a backslash and blanks toml++ expects the line to end, and
            // classifies what it meets there with the same table: a non-ASCII
            // character that follows on the same line (invalid anyway) is refused.
            if (line_end < n_ && line_end > pos + 1 && static_cast<unsigned char>(text_[line_end]) >= 0x80 &&
                !string_trap_)
                string_trap_ = trap(line_end,
                                    "Error while parsing string: a backslash followed by spaces or tabs must be "
                                    "the last character on its line (a line-ending backslash), saw a non-ASCII "
                                    "character after them; write \\\\ for a backslash");
            if (line_end < n_ && (text_[line_end] == '\n' || text_[line_end] == '\r')) {
                pos = skip_line_ending_backslash(line_end);
            } else if (basic && text_[pos] == '\\' && pos + 1 < n_) {
                bad_escape(pos, true);
                if (text_[pos + 1] == '\n') new_line(pos + 1);
                pos += 2;
            } else if (text_[pos] == '\n') {
                new_line(pos);
                ++pos;
            } else if (text_.compare(pos, 3, triple) == 0) {
                while (pos < n_ && text_[pos] == quote) ++pos;  // up to two quotes may end the content
                return pos;
            } else {
                ++pos;
            }
        }
        return pos;
    }

    /// A line-ending backslash: white space up to the next other character is
    /// dropped. Returns the position of that character.
    std::size_t skip_line_ending_backslash(std::size_t pos) {
        while (pos < n_ && std::string_view(" \t\r\n").find(text_[pos]) != std::string_view::npos) {
            if (text_[pos] == '\n') new_line(pos);
            ++pos;
        }
        if (pos < n_ && static_cast<unsigned char>(text_[pos]) >= 0x80 && !string_trap_)
            string_trap_ = trap(pos,
                                "Error while parsing string: a non-ASCII character right after a line-ending "
                                "backslash is misread by toml++ 3.3; put an ASCII character first or "
                                "drop the backslash");
        return pos;
    }

    /// A table header at `open`. Mirrors toml++'s header prologue: '[', blanks,
    /// an optional second '[' right after the first, blanks; then it expects a
    /// key, a quote or a premature ']'.
    std::optional<ParserTrap> check_header(std::size_t open) const {
        std::size_t j = skip_blanks(open + 1);
        bool blanks = j > open + 1;
        if (j < n_ && text_[j] == '[' && !blanks) j = skip_blanks(j + 1);
        else if (j < n_ && text_[j] == '[') j = n_;  // "[ [": toml++ rejects it itself
        if (j >= n_) return std::nullopt;
        auto ch = static_cast<unsigned char>(text_[j]);
        if (std::isalnum(ch) || ch == '_' || ch == '-' || ch == '"' || ch == '\'' || ch == ']') return std::nullopt;
        return trap(j, "Error while parsing table header: expected a table name (a bare key or a quoted string), saw " +
                           describe(j) + "; write e.g. [models.lora.my-model]");
    }

    /// One character of a value (after '='), outside strings and comments.
    std::optional<ParserTrap> scan_value_character(char c) {
        bool line_separator = text_.compare(i_, 2, "\xC2\x85") == 0 || text_.compare(i_, 3, "\xE2\x80\xA8") == 0 ||
                              text_.compare(i_, 3, "\xE2\x80\xA9") == 0;
        if ((c == '}' || line_separator) && in_array() && nesting_.back().expect_value)
            return trap(i_, "Error while parsing array: expected a value or closing ']', saw " +
                                (c == '}' ? std::string("'}'") : std::string("a Unicode line separator")));
        if (c == '[' || c == '{') {
            value_started();
            nesting_.push_back({c, c == '[', false});
        } else if (c == ']' || c == '}') {
            if (!nesting_.empty()) nesting_.pop_back();
        } else if (c == ',') {
            if (in_array()) nesting_.back().expect_value = true;
            else if (!nesting_.empty()) nesting_.back().after_equals = false;  // next key of an inline table
        } else if (c == '=') {
            if (!nesting_.empty() && nesting_.back().open == '{') nesting_.back().after_equals = true;
        } else {
            return scan_bare_word();
        }
        ++i_;
        return std::nullopt;
    }

    /// A bare word: a number, date or boolean in a value position, or a key
    /// inside an inline table. toml++ reads a value up to a terminator.
    std::optional<ParserTrap> scan_bare_word() {
        const bool is_value = nesting_.empty() || nesting_.back().open == '[' || nesting_.back().after_equals;
        value_started();
        std::size_t end = i_;
        int characters = 0;
        while (end < n_ && std::string_view(" \t\r\n],}#=").find(text_[end]) == std::string_view::npos) {
            auto byte = static_cast<unsigned char>(text_[end]);
            if (byte != '_' && (byte & 0xC0) != 0x80) ++characters;
            if (byte == '.' && !is_value && ++key_dots_ > max_key_dots) return too_deep(end);
            if (byte >= 0x80) return non_ascii(end);
            ++end;
        }
        if (is_value && digit_at(i_) && characters == 10 && end + 2 < n_ && text_[end] == ' ' && digit_at(end + 1) &&
            !digit_at(end + 2))
            return trap(end + 1,
                        "Error while parsing value: expected a time after the date (e.g. 1979-05-27 07:32:00), "
                        "a comment or the end of the line");
        if (is_value && date_at(i_) && i_ + 11 < n_ && (text_[i_ + 10] == 'T' || text_[i_ + 10] == 't') &&
            !digit_at(i_ + 11))
            return trap(i_ + 11,
                        "Error while parsing date-time: expected a time after the 'T' (e.g. 1979-05-27T07:32:00)");
        i_ = end;
        return std::nullopt;
    }

    std::string_view text_;
    std::size_t n_;
    std::size_t i_ = 0;
    int line_ = 1;
    std::size_t line_start_ = 0;
    std::vector<Level> nesting_;  // arrays and inline tables of the current value
    bool in_value_ = false;       // after '=' on the current statement
    bool at_statement_ = true;
    int key_dots_ = 0;  // '.' between key parts (header, key, inline-table keys) of the current statement
    std::optional<ParserTrap> string_trap_;  // set by skip_string
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
/// multi-line string is not mistaken for a header (TomlTrapScanner, above).
/// Apart from those absurdly deep key paths, every spot it reports is invalid
/// TOML.
inline std::optional<ParserTrap> find_toml_parser_trap(std::string_view text) { return TomlTrapScanner(text).scan(); }

}  // namespace config_parser
}  // namespace detail
}  // namespace provision

#endif
