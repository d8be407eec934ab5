// SPDX-License-Identifier: MIT
// provision: the config checker, declared: it walks a document toml++ parsed
// and fills a Manifest with entries and with every problem it finds.
// Its definitions are beside it, by what they check: checker_document.hpp
// (the top level, [settings], [directories], [models]), checker_entries.hpp
// (one entry and its keys) and checker_sources.hpp (the keys of each source).
// Before the guard: config.hpp includes the whole parser, this file
// in its place among the others.
#include "config.hpp"

#ifndef PROVISION_CONFIG_CHECKER_HPP
#define PROVISION_CONFIG_CHECKER_HPP

#include "text_checks.hpp"
#include "variables.hpp"

#include <toml++/toml.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace provision {
namespace detail {
namespace config_parser {

/// The keys each source accepts, in the order messages list them.
inline const std::vector<std::string_view>& allowed_keys(SourceKind kind) {
    static const std::vector<std::string_view> huggingface{"source",  "repo",        "file",      "files", "include",
                                                           "exclude", "revision",    "repo_type", "gated", "filename",
                                                           "sha256",  "description", "notes"};
    static const std::vector<std::string_view> civitai{"source", "version_id",  "model_id", "url",
                                                       "air",    "file_id",     "type",     "filename",
                                                       "sha256", "description", "notes"};
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

/// Positions compare in file order.
inline bool earlier(const toml::source_position& a, const toml::source_position& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
}

/// Walks a parsed document and fills a Manifest.
class Checker {
  public:
    Checker(Manifest& manifest, const EnvLookup& env, const ConfigTrust& trust)
        : manifest_(manifest), env_(env), trust_(trust) {}

    void check_document(const toml::table& root);

  private:
    using Member = std::pair<const toml::key*, const toml::node*>;

    /// A table's members sorted by where their keys are written.
    static std::vector<Member> in_file_order(const toml::table& table);

    void report(const toml::source_region& region, std::string key_path, std::string message);

    SourceLocation location(const toml::source_region& region) const;

    void wrong_type(const toml::node& value, const std::string& key_path, std::string_view expected);

    /// [settings]: layout and models_dir.
    void check_settings(const toml::node& node);

    /// For a config fetched from a URL, without the operator's leave: why this
    /// folder may not be used (absolute, or climbing out with ".."), or null.
    const char* remote_path_problem(const std::string& folder) const;

    /// [directories]: category = "folder" pairs that add categories or move existing ones.
    void check_directories(const toml::node& node);

    struct Candidate {
        std::string category;
        std::string name;
        std::string key_path;
        const toml::node* value;
    };

    /// Checks every category; returns how many entries were found (valid or not).
    std::size_t check_models(const toml::table& categories, bool& models_problem);

    Entry new_entry(const Candidate& candidate) const;

    /// The simple form: name = "https://...".
    std::optional<Entry> check_simple_entry(const Candidate& candidate, const std::string& text);

    bool check_url(const std::string& text, const toml::node& value, const std::string& key_path);

    std::optional<SourceKind> entry_source(const Candidate& candidate, const toml::table& table);

    std::optional<Entry> check_table_entry(const Candidate& candidate, const toml::table& table);

    /// Whether a URL is on a CivitAI site (and so goes to the CivitAI source).
    static bool is_civitai_link(const std::string& text);

    /// A CivitAI link, under source = "civitai", "url" or inferred, becomes ids:
    /// the CivitAI source then verifies the file's SHA-256 and sends
    /// CIVITAI_TOKEN, which a plain download could do neither of. The link
    /// itself is not kept (a copied download link may carry ?token=).
    void civitai_link_to_ids(const toml::node& value, const std::string& path, Entry& entry);

    /// A CivitAI entry names its model one way: version_id (optionally with
    /// model_id), model_id alone (the model's default version), air, or url.
    void check_civitai_ids(const toml::table& table, const std::string& key_path,
                           const std::vector<std::string_view>& seen);

    /// [models.auto.<name>] places a file by its CivitAI model type, which only the CivitAI source knows.
    void check_auto_category(const Entry& entry, const toml::source_region& where);

    /// files / include / exclude: a non-empty array of strings. files holds repo
    /// paths (checked like file); include and exclude hold glob patterns.
    void check_repo_path_list(const toml::node& value, const std::string& path, std::string_view key,
                              std::vector<std::string>& out);

    /// Why a glob pattern is unusable, or "" when it is fine.
    static std::string pattern_problem(std::string_view pattern);

    /// Which files of a Hugging Face repo: file, files, or include (with optional
    /// exclude). Exactly one way, so an entry never means two things; a whole repo
    /// must be asked for (include = ["*"]), never implied by a forgotten key.
    void check_file_selection(const toml::table& table, const std::string& key_path,
                              const std::vector<std::string_view>& seen);

    static std::string unknown_key_message(std::string_view key, SourceKind kind);

    /// version_id / file_id: an integer or a string of digits, kept as digits.
    void check_numeric_id(const toml::node& value, const std::string& path, std::string_view key, std::string& out);

    void check_string_key(std::string_view key, const std::string& text, const toml::node& value,
                          const std::string& path, Entry& entry);

    /// headers = { Name = "value", ... } and auth_header = "Bearer ${VAR}".
    /// Values are never quoted in messages: they may hold secrets.
    void check_headers(const toml::node* headers, const toml::node* auth_header, const std::string& entry_path,
                       Entry& entry);

    Manifest& manifest_;
    const EnvLookup& env_;
    const ConfigTrust& trust_;
};

}  // namespace config_parser
}  // namespace detail
}  // namespace provision

#endif
