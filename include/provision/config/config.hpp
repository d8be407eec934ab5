// SPDX-License-Identifier: MIT
// provision: the manifest model and the TOML config parser.
//
// TOML text -> Manifest (a list of validated entries). Every problem found is
// reported with file:line:column and the key path, and all problems of a file
// are reported together so a user fixes them in one pass.
#ifndef PROVISION_CONFIG_CONFIG_HPP
#define PROVISION_CONFIG_CONFIG_HPP

#include "../environment.hpp"
#include "../error.hpp"
#include "../header.hpp"
#include "../url.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace provision {

/// Where in a config file something was written.
struct SourceLocation {
    std::string file;  ///< path or URL of the config (redacted when it is a URL)
    int line = 0;      ///< 1-based; 0 when unknown
    int column = 0;    ///< 1-based; 0 when unknown
    /// "file:line:column" (or "file" when the position is unknown)
    std::string str() const {
        if (line <= 0) return file;
        return file + ":" + std::to_string(line) + ":" + std::to_string(column);
    }
};

/// Which service an entry comes from.
enum class SourceKind { huggingface, civitai, url };

inline const char* to_string(SourceKind kind) noexcept {
    switch (kind) {
    case SourceKind::huggingface: return "huggingface";
    case SourceKind::civitai: return "civitai";
    case SourceKind::url: return "url";
    }
    return "url";
}

/// One model to provision, exactly as the config describes it (not yet resolved).
struct Entry {
    std::string category;  ///< as written under [models.<category>]
    std::string name;      ///< the entry's key
    std::string key_path;  ///< e.g. "models.lora.detail-tweaker"
    SourceLocation where;  ///< where the entry is defined
    SourceKind source = SourceKind::url;

    // huggingface
    std::string repo;                ///< "owner/name"
    std::string file;                ///< path inside the repo, may contain folders
    std::vector<std::string> files;  ///< several paths inside the repo (instead of file)
    std::vector<std::string>
        include;  ///< glob patterns selecting repo files (hf-protocol.md rules; include = ["*"]: the whole repo)
    std::vector<std::string> exclude;  ///< glob patterns removed from the selection
    std::string revision = "main";     ///< branch, tag, commit or refs/pr/N
    std::string repo_type = "model";   ///< model, dataset or space
    bool gated = false;

    // civitai
    std::string version_id;    ///< model version id (digits); empty: the default version of model_id
    std::string model_id;      ///< model id (digits), from model_id, a link or an AIR id
    std::string civitai_site;  ///< "https://civitai.red" when a link named that site; empty: civitai.com
    std::string file_id;       ///< optional: which file of the version
    std::string file_type;     ///< optional: pick the file by its type ("Model", "VAE", ...)

    // url
    std::string url;
    std::vector<Header> headers;  ///< user headers, including Authorization from auth_header

    // every source
    std::string filename;  ///< overrides the file name chosen by the source
    std::string sha256;    ///< expected digest, lower-case hex, or empty
    /// Why this entry cannot run although the config is valid: a ${VAR} it
    /// needs is unset, or not allowed for a config fetched from a URL. Only
    /// this entry fails (resolve_entry says so, as an auth error); the others run.
    std::string unresolved;

    /// A Hugging Face entry naming several files (files or include): the source
    /// lists the repo once and the provisioner handles each file as an entry.
    bool is_multi_file() const { return source == SourceKind::huggingface && (!files.empty() || !include.empty()); }
};

/// One problem found in a config file.
struct Diagnostic {
    SourceLocation where;
    std::string key_path;  ///< e.g. "models.lora.detail-tweaker.version_id"; empty for syntax errors
    std::string message;
    /// "file:line:column: models.x.y: message"
    std::string str() const {
        std::string out = where.str() + ": ";
        if (!key_path.empty()) out += key_path + ": ";
        return out + message;
    }
};

/// The optional [settings] and [directories] tables: which UI's folders to fill.
struct ManifestSettings {
    std::string layout;  ///< "sdnext", "a1111", "forge", "comfyui"; empty: the default (or the CLI's --layout)
    std::string
        models_dir;  ///< ${VAR} expanded; relative paths are relative to the workspace; empty: the layout's default
    SourceLocation layout_where;
    /// [directories]: category -> folder (relative to the models directory, or absolute); adds or overrides.
    std::vector<std::pair<std::string, std::string>> directories;
    std::vector<SourceLocation> directory_where;  ///< parallel to directories
};

/// What a config may do, by where it came from. A local file is the
/// operator's own; a config fetched from a URL is someone else's words (and,
/// over plain http, anyone's on the way), so by default it may not read the
/// machine's environment or place files outside the workspace's models folder.
struct ConfigTrust {
    bool remote = false;  ///< the config was fetched from a URL
    /// ${VAR} names a remote config may expand (PROVISION_ALLOW_VARS, --allow-var).
    std::vector<std::string> allowed_variables;
    /// A remote config may set absolute or ".." paths in models_dir and
    /// [directories] (PROVISION_ALLOW_REMOTE_PATHS=1, --allow-remote-paths).
    bool allow_paths = false;

    bool may_expand(const std::string& name) const {
        if (!remote) return true;
        for (const auto& allowed : allowed_variables)
            if (allowed == name) return true;
        return false;
    }
};

/// A parsed config: the entries and every problem found. Usable only when ok().
struct Manifest {
    std::string origin;   ///< the file path or (redacted) URL it came from
    std::string sha256;   ///< of the text as read: says which config a log or a dry run was about
    bool remote = false;  ///< it came from a URL (ConfigTrust::remote)
    ManifestSettings settings;
    std::vector<Entry> entries;
    std::vector<Diagnostic> diagnostics;
    bool ok() const { return diagnostics.empty(); }
    /// All diagnostics, one per line.
    std::string error_text() const {
        std::string out;
        for (const auto& d : diagnostics) out += d.str() + "\n";
        return out;
    }
};

/// Parses and validates config text. `origin` names the file or URL in messages.
/// Categories are checked against the layout by the provisioner, not here.
inline Manifest parse_config(std::string_view text, const std::string& origin,
                             const EnvLookup& env = process_environment(), const ConfigTrust& trust = {});

/// Whether a file name is safe to create inside a folder: not empty, no separators,
/// not "." or "..", no control characters, at most 255 bytes.
inline bool is_safe_filename(std::string_view name);

}  // namespace provision

// The definitions of process_environment, parse_config and is_safe_filename.
#include "parser.hpp"

#endif
