// SPDX-License-Identifier: MIT
// provision: the TOML config parser declared in config/config.hpp, put together.
//
// How a file is read: a quick scan refuses the few malformed inputs that make
// toml++ 3.3 abort (toml_trap.hpp), then toml++ parses the text; either way a
// syntax error ends the work with one diagnostic. Then the checker
// (checker.hpp, its definitions in checker_document.hpp, checker_entries.hpp
// and checker_sources.hpp) collects every entry under [models.<category>],
// sorted by its position (toml++ keeps keys in a sorted map, users think in
// file order), and checks it key by key with the rules of text_checks.hpp and
// variables.hpp. A problem never stops the checking: every problem of the file
// becomes one Diagnostic, so a user fixes them all in one pass.
#ifndef PROVISION_CONFIG_PARSER_HPP
#define PROVISION_CONFIG_PARSER_HPP

#include "config.hpp"
#include "checker.hpp"
#include "checker_document.hpp"
#include "checker_entries.hpp"
#include "checker_sources.hpp"
#include "toml_trap.hpp"
#include "../support/digest.hpp"
#include "../url.hpp"

#include <toml++/toml.h>

#include <string>
#include <string_view>

namespace provision {

inline bool is_safe_filename(std::string_view name) { return detail::config_parser::filename_problem(name) == nullptr; }

inline Manifest parse_config(std::string_view text, const std::string& origin, const EnvLookup& env,
                             const ConfigTrust& trust) {
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
