// SPDX-License-Identifier: MIT
// parse_config: the config component on its own. TOML text goes in, a
// provision::Manifest comes out: either every entry (category, name, source)
// or every problem in the file at once, each naming file:line:column and the
// key, so a user fixes them all in one pass. Nothing is resolved or fetched.
//
//   parse_config CONFIG.toml
//
// Exit status: 0 when the config is valid, 2 (the CLI's "configuration error")
// when it is not or cannot be read.
#include <provision/config/config.hpp>  // only this component: no HTTP, no downloader

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace {

/// What the entry points at, in the words of its source.
std::string describe(const provision::Entry& entry) {
    switch (entry.source) {
    case provision::SourceKind::huggingface:
        if (entry.is_multi_file()) return entry.repo + " (several files)";
        return entry.repo + "/" + entry.file + (entry.revision == "main" ? "" : " @ " + entry.revision);
    case provision::SourceKind::civitai:
        return entry.version_id.empty() ? "model " + entry.model_id + " (its default version)"
                                        : "version " + entry.version_id;
    case provision::SourceKind::url:
        // Query values may be tokens: print what the library prints, never the raw URL.
        return provision::redact_url(entry.url);
    }
    return "";
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CONFIG.toml\n", argv[0]);
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "error: cannot read %s\n", argv[1]);
        return 2;
    }
    std::ostringstream text;
    text << in.rdbuf();

    // The origin is only used in messages. ${VAR} in the config is expanded
    // from this process's environment, as for a local config in the CLI.
    provision::Manifest manifest = provision::parse_config(text.str(), argv[1]);
    if (!manifest.ok()) {
        for (const provision::Diagnostic& problem : manifest.diagnostics) {
            std::string key = problem.key_path.empty() ? "" : problem.key_path + ": ";  // empty for TOML syntax errors
            std::fprintf(stderr, "%s: %s%s\n", problem.where.str().c_str(), key.c_str(), problem.message.c_str());
        }
        std::fprintf(stderr, "%zu problem(s) in %s\n", manifest.diagnostics.size(), argv[1]);
        return provision::exit_code(provision::errc::config);
    }

    // Categories are not checked here: they belong to the layout (see map_layout).
    if (!manifest.settings.layout.empty()) std::printf("layout: %s\n", manifest.settings.layout.c_str());
    for (const provision::Entry& entry : manifest.entries)
        std::printf("%-14s %-24s %-12s %s\n", entry.category.c_str(), entry.name.c_str(),
                    provision::to_string(entry.source), describe(entry).c_str());
    std::printf("%zu entries in %s\n", manifest.entries.size(), argv[1]);
    return 0;
}
