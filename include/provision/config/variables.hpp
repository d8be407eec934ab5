// SPDX-License-Identifier: MIT
// provision: ${NAME} in config values, and which variables a config may read
// (every one for a local file; only those in PROVISION_ALLOW_VARS for one
// fetched from a URL).
// Before the guard: config.hpp includes the whole parser, this file
// in its place among the others.
#include "config.hpp"

#ifndef PROVISION_CONFIG_VARIABLES_HPP
#define PROVISION_CONFIG_VARIABLES_HPP

#include <string>
#include <string_view>

namespace provision {
namespace detail {
namespace config_parser {

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
            problem =
                "\"${\" is not closed; write ${NAME} to insert an environment variable (or $${ for a literal \"${\")";
            return false;
        }
        std::string_view name = text.substr(i + 2, close - i - 2);
        bool valid = !name.empty() && !std::isdigit(static_cast<unsigned char>(name.front()));
        for (unsigned char c : name) valid = valid && (std::isalnum(c) || c == '_');
        if (!valid) {
            problem =
                "invalid variable reference; write ${NAME} with letters, digits and underscores (or $${ for a literal "
                "\"${\")";
            return false;
        }
        std::string variable(name);
        if (!trust.may_expand(variable)) {
            unavailable = true;
            problem = "${" + variable +
                      "} is not expanded: this config was fetched from a URL, and such a config reads "
                      "only the variables the operator allows; to allow it, set PROVISION_ALLOW_VARS=" +
                      variable + " (names separated by commas) or pass --allow-var " + variable;
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

}  // namespace config_parser
}  // namespace detail
}  // namespace provision

#endif
