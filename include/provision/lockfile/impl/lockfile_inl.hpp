// SPDX-License-Identifier: MIT
// provision: the definitions behind lockfile/lockfile.hpp: reading and
// writing provision.lock, and resolving an entry at the coordinates it pins.
// Before the guard: lockfile.hpp includes this file at its end, and this file
// may also be included on its own.
#include "../lockfile.hpp"

#ifndef PROVISION_LOCKFILE_IMPL_LOCKFILE_INL_HPP
#define PROVISION_LOCKFILE_IMPL_LOCKFILE_INL_HPP

#include "../../support/files.hpp"
#include "../../url.hpp"
#include "../../version.hpp"

#include <toml++/toml.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

namespace provision {

namespace detail {
namespace lockfile {

/// A TOML basic string: quotes, backslashes and control characters escaped.
inline std::string toml_string(std::string_view text) {
    std::string out = "\"";
    for (unsigned char c : text) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char buffer[8];
                std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
                out += buffer;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    return out + "\"";
}

inline bool is_sha256_hex(std::string_view text) {
    if (text.size() != 64) return false;
    for (char c : text)
        if (!std::isxdigit(static_cast<unsigned char>(c)) || std::isupper(static_cast<unsigned char>(c))) return false;
    return true;
}

inline std::optional<SourceKind> source_named(std::string_view name) {
    if (name == "huggingface") return SourceKind::huggingface;
    if (name == "civitai") return SourceKind::civitai;
    if (name == "url") return SourceKind::url;
    return std::nullopt;
}

inline SourceLocation location_of(const std::string& origin, const toml::source_region& region) {
    return SourceLocation{origin, static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
}

/// Reads the [[file]] tables, collecting every problem.
class Reader {
  public:
    Reader(std::string origin, std::vector<std::string>& problems) : origin_(std::move(origin)), problems_(problems) {}

    void read(const toml::table& root, Lockfile& lock) {
        auto version = root["version"].value<std::int64_t>();
        if (!version)
            problem(root.source(), "version", "missing: this is not a provision.lock (it has no version = 1)");
        else if (*version != Lockfile::format_version)
            problem(root.get("version")->source(), "version",
                    "is " + std::to_string(*version) + ", this provision reads version " +
                        std::to_string(Lockfile::format_version) + "; write the lock again with this provision");
        lock.config = root["config"].value_or(std::string());
        lock.created = root["created"].value_or(std::string());
        const toml::node* files = root.get("file");
        if (!files) return;  // a run that installed nothing pins nothing
        const toml::array* array = files->as_array();
        if (!array) {
            problem(files->source(), "file", "must be an array of [[file]] tables");
            return;
        }
        for (std::size_t i = 0; i < array->size(); ++i) {
            std::string key = "file[" + std::to_string(i) + "]";
            const toml::table* table = (*array)[i].as_table();
            if (!table) {
                problem((*array)[i].source(), key, "must be a [[file]] table");
                continue;
            }
            LockRecord record;
            record.where = location_of(origin_, table->source());
            record.entry = text(*table, key, "entry", true);
            record.file = text(*table, key, "file", true);
            std::string source = text(*table, key, "source", true);
            if (auto kind = source_named(source)) {
                record.source = *kind;
            } else if (!source.empty()) {
                problem(table->get("source")->source(), key + ".source",
                        "\"" + source + "\" is not a source; expected huggingface, civitai or url");
            }
            bool hf = record.source == SourceKind::huggingface;
            bool civitai = record.source == SourceKind::civitai;
            record.repo = text(*table, key, "repo", hf);
            record.repo_type = text(*table, key, "repo_type", false);
            if (record.repo_type.empty()) record.repo_type = "model";
            record.revision = text(*table, key, "revision", false);
            record.commit = text(*table, key, "commit", hf);
            record.repo_file = text(*table, key, "repo_file", hf);
            record.version_id = text(*table, key, "version_id", civitai);
            record.file_id = text(*table, key, "file_id", civitai);
            record.url = text(*table, key, "url", record.source == SourceKind::url);
            record.path = text(*table, key, "path", true);
            record.sha256 = text(*table, key, "sha256", true);
            if (!record.sha256.empty() && !is_sha256_hex(record.sha256))
                problem(table->get("sha256")->source(), key + ".sha256", "expected 64 lower-case hex digits");
            if (const toml::node* size = table->get("size")) {
                auto number = size->value<std::int64_t>();
                if (!number || *number < 0)
                    problem(size->source(), key + ".size",
                            "expected the file's size in bytes (a non-negative integer)");
                else record.size = static_cast<std::uint64_t>(*number);
            } else {
                problem(table->source(), key + ".size", "missing");
            }
            for (const auto& earlier : lock.files)
                if (earlier.entry == record.entry && earlier.file == record.file && !record.entry.empty())
                    problem(table->source(), key, record.entry + " / " + record.file + " is pinned twice; remove one");
            lock.files.push_back(std::move(record));
        }
    }

  private:
    std::string text(const toml::table& table, const std::string& key, const char* name, bool required) {
        const toml::node* node = table.get(name);
        if (!node) {
            if (required) problem(table.source(), key + "." + name, "missing");
            return {};
        }
        if (auto value = node->value<std::string>()) {
            if (required && value->empty()) problem(node->source(), key + "." + name, "must not be empty");
            return *value;
        }
        problem(node->source(), key + "." + name, "expected a string");
        return {};
    }

    void problem(const toml::source_region& region, const std::string& key, const std::string& message) {
        problems_.push_back(location_of(origin_, region).str() + ": " + key + ": " + message);
    }

    std::string origin_;
    std::vector<std::string>& problems_;
};

/// "hf:model/org/repo@COMMIT:path" -> COMMIT
inline std::string commit_of_identity(const std::string& identity) {
    std::size_t at = identity.find('@');
    if (at == std::string::npos) return {};
    std::size_t colon = identity.find(':', at);
    return identity.substr(at + 1, colon == std::string::npos ? std::string::npos : colon - at - 1);
}

/// "civitai:file/123" -> "123"
inline std::string civitai_file_of_identity(const std::string& identity) {
    const std::string prefix = "civitai:file/";
    return starts_with(identity, prefix) ? identity.substr(prefix.size()) : std::string();
}

/// "models.x.y[sub/file.bin]" -> "models.x.y": an entry listing several files
/// goes on as one entry per file under such key paths (huggingface_tree.hpp).
inline std::string listed_entry_of(const std::string& key_path) {
    std::size_t open = key_path.find('[');
    return open != std::string::npos && ends_with(key_path, "]") ? key_path.substr(0, open) : key_path;
}

/// Whether the lock pins other files of the same several-file entry.
inline bool lock_has_siblings(const Lockfile& lock, const std::string& key_path) {
    std::string listed = listed_entry_of(key_path);
    if (listed == key_path) return false;
    for (const auto& record : lock.files)
        if (listed_entry_of(record.entry) == listed) return true;
    return false;
}

/// How to get out of a lock mismatch, appended to every such message.
inline std::string refresh_hint(const Lockfile& lock) {
    return "; if the change is wanted, run once without --locked to write a new lock (then replace " +
           (lock.origin.empty() ? std::string("provision.lock") : lock.origin) + " with it)";
}

/// The record of an entry: by repo path for Hugging Face, by file id for
/// CivitAI when the entry names one, otherwise the entry's only record.
inline const LockRecord* record_for(const Entry& entry, const Lockfile& lock) {
    auto records = lock.records_of(entry.key_path);
    for (const auto* record : records) {
        if (entry.source == SourceKind::huggingface && record->repo_file == entry.file) return record;
        if (entry.source == SourceKind::civitai && !entry.file_id.empty() && record->file_id == entry.file_id)
            return record;
    }
    return records.size() == 1 ? records.front() : nullptr;
}

/// What the config says now, where it differs from what the lock pinned; empty when it agrees.
inline std::string config_change(const Entry& entry, const LockRecord& record) {
    auto differs = [](const char* what, const std::string& now, const std::string& pinned) {
        return std::string(what) + " is now \"" + now + "\" but the lock pins \"" + pinned + "\"";
    };
    if (entry.source != record.source) return differs("source", to_string(entry.source), to_string(record.source));
    switch (entry.source) {
    case SourceKind::huggingface:
        if (entry.repo != record.repo) return differs("repo", entry.repo, record.repo);
        if (entry.repo_type != record.repo_type) return differs("repo_type", entry.repo_type, record.repo_type);
        if (entry.file != record.repo_file) return differs("file", entry.file, record.repo_file);
        // The revision is not compared: a branch that moved is for the upstream check to judge.
        break;
    case SourceKind::civitai:
        if (entry.version_id != record.version_id) return differs("version_id", entry.version_id, record.version_id);
        if (!entry.file_id.empty() && entry.file_id != record.file_id)
            return differs("file_id", entry.file_id, record.file_id);
        break;
    case SourceKind::url:
        if (redact_url(entry.url) != record.url) return differs("url", redact_url(entry.url), record.url);
        break;
    }
    if (!entry.sha256.empty() && entry.sha256 != record.sha256) return differs("sha256", entry.sha256, record.sha256);
    return {};
}

}  // namespace lockfile
}  // namespace detail

inline Result<Lockfile> parse_lockfile(std::string_view text, const std::string& origin) {
    Lockfile lock;
    lock.origin = origin;
    std::vector<std::string> problems;
    auto syntax_error = [&](const toml::parse_error& error) {
        problems.push_back(detail::lockfile::location_of(origin, error.source()).str() + ": " +
                           std::string(error.description()));
    };
    if (auto trap = detail::config_parser::find_toml_parser_trap(text)) {
        problems.push_back(SourceLocation{origin, trap->line, trap->column}.str() + ": " + trap->message);
    } else {
#if TOML_EXCEPTIONS
        try {
            toml::table root = toml::parse(text);
            detail::lockfile::Reader(origin, problems).read(root, lock);
        } catch (const toml::parse_error& error) {
            syntax_error(error);
        }
#else
        toml::parse_result parsed = toml::parse(text);
        if (!parsed) syntax_error(parsed.error());
        else detail::lockfile::Reader(origin, problems).read(parsed.table(), lock);
#endif
    }
    if (problems.empty()) return lock;
    std::string message = "the lock file " + origin + " is not usable:";
    for (const auto& problem : problems) message += "\n  " + problem;
    message += "\nfix it, or run without --locked to write a new one";
    return make_error(errc::config, message);
}

inline Result<Lockfile> read_lockfile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return make_error(errc::usage, "cannot read the lock file " + path.string() + ": " +
                                           (std::filesystem::exists(path) ? "permission denied" : "no such file") +
                                           "; a successful run without --locked writes one");
    std::ostringstream text;
    text << in.rdbuf();
    return parse_lockfile(text.str(), path.string());
}

inline std::string lockfile_text(const Lockfile& lock) {
    auto quoted = [](std::string_view text) { return detail::lockfile::toml_string(text); };
    std::string out;
    out += "# provision.lock: the exact files a successful provision run installed.\n";
    out += "# Written by provision " PROVISION_VERSION_STRING "; do not edit. `provision --locked THIS_FILE CONFIG`\n";
    out += "# installs exactly these bytes and fails any entry whose upstream moved.\n";
    out += "version = " + std::to_string(Lockfile::format_version) + "\n";
    out += "config = " + quoted(lock.config) + "\n";
    out += "created = " + quoted(lock.created) + "\n";
    for (const auto& record : lock.files) {
        out += "\n[[file]]\n";
        out += "entry = " + quoted(record.entry) + "\n";
        out += "file = " + quoted(record.file) + "\n";
        out += "source = " + quoted(to_string(record.source)) + "\n";
        switch (record.source) {
        case SourceKind::huggingface:
            out += "repo = " + quoted(record.repo) + "\n";
            out += "repo_type = " + quoted(record.repo_type) + "\n";
            out += "revision = " + quoted(record.revision) + "\n";
            out += "commit = " + quoted(record.commit) + "\n";
            out += "repo_file = " + quoted(record.repo_file) + "\n";
            break;
        case SourceKind::civitai:
            out += "version_id = " + quoted(record.version_id) + "\n";
            out += "file_id = " + quoted(record.file_id) + "\n";
            break;
        case SourceKind::url: out += "url = " + quoted(redact_url(record.url)) + "\n"; break;
        }
        out += "path = " + quoted(record.path) + "\n";
        out += "size = " + std::to_string(record.size) + "\n";
        out += "sha256 = " + quoted(record.sha256) + "\n";
    }
    return out;
}

inline Result<void> write_lockfile(const std::filesystem::path& path, const Lockfile& lock) {
    std::error_code ignored;
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ignored);
    std::filesystem::path temporary = path;
    temporary += ".tmp";
    {
        auto created = detail::create_fresh(temporary);
        if (!created) return created.error();
        std::string text = lockfile_text(lock);
        auto written = detail::write_all_at(created.value(), text.data(), text.size(), 0, temporary.string());
        ::close(created.value());
        if (!written) {
            ::unlink(temporary.c_str());
            return written.error();
        }
    }
    std::error_code failed;
    std::filesystem::rename(temporary, path, failed);
    if (failed) return make_error(errc::io, "cannot write the lock file " + path.string() + ": " + failed.message());
    return {};
}

inline LockRecord lock_record_for(const Entry& entry, const DownloadPlan& plan) {
    LockRecord record;
    record.entry = entry.key_path;
    record.source = entry.source;
    record.file = plan.file_name;
    switch (entry.source) {
    case SourceKind::huggingface:
        record.repo = entry.repo;
        record.repo_type = entry.repo_type;
        record.revision = entry.revision;
        record.commit = detail::lockfile::commit_of_identity(plan.identity);
        record.repo_file = entry.file;
        break;
    case SourceKind::civitai:
        record.version_id = entry.version_id;
        record.file_id = detail::lockfile::civitai_file_of_identity(plan.identity);
        break;
    case SourceKind::url: record.url = redact_url(entry.url); break;
    }
    return record;
}

inline void finish_lock_record(LockRecord& record, const std::filesystem::path& installed, std::uint64_t size,
                               const std::string& sha256, const std::filesystem::path& workspace) {
    // A server-chosen name is known only now; it is a single sanitized component.
    if (record.file.empty()) record.file = installed.filename().string();
    std::error_code ignored;
    auto absolute = std::filesystem::weakly_canonical(installed, ignored);
    auto root = std::filesystem::weakly_canonical(workspace, ignored);
    auto relative = absolute.lexically_relative(root);
    bool inside = !relative.empty() && relative.native().compare(0, 2, "..") != 0;
    record.path = inside ? relative.generic_string() : installed.generic_string();
    record.size = size;
    record.sha256 = sha256;
}

inline Result<DownloadPlan> resolve_locked(const Entry& entry, ResolveContext& context, const Lockfile& lock) {
    using detail::lockfile::refresh_hint;
    const std::string who = entry.key_path + ": ";
    const LockRecord* record = detail::lockfile::record_for(entry, lock);
    bool listed_sibling = detail::lockfile::lock_has_siblings(lock, entry.key_path);
    if (!record && (listed_sibling || !lock.records_of(entry.key_path).empty()) &&
        entry.source == SourceKind::huggingface)
        return make_error(errc::integrity, who + "upstream moved: " + entry.repo + " now lists " + entry.file +
                                               ", which is not among the files the lock pins for this entry" +
                                               refresh_hint(lock));
    if (!record)
        return make_error(errc::config,
                          who + "not pinned in " + (lock.origin.empty() ? std::string("the lock") : lock.origin) +
                              " (the entry was added to the config after the lock was written)" + refresh_hint(lock));
    auto moved = [&](const std::string& what) {
        return make_error(errc::integrity,
                          who + "upstream moved: " + what + "; nothing was downloaded" + refresh_hint(lock));
    };
    // A file of a several-file entry carries the digest its listing gave: that is upstream's word, not the config's.
    bool listed = detail::lockfile::listed_entry_of(entry.key_path) != entry.key_path;
    if (listed && !entry.sha256.empty() && entry.sha256 != record->sha256)
        return moved(entry.repo + " at commit " + entry.revision + " lists " + entry.file + " with SHA-256 " +
                     entry.sha256 + ", the file is different from the one pinned at commit " + record->commit +
                     " (SHA-256 " + record->sha256 + ")");
    if (auto change = detail::lockfile::config_change(entry, *record); !change.empty())
        return make_error(errc::config,
                          who + "the config changed since the lock was written: " + change + refresh_hint(lock));

    Entry pinned = entry;
    if (entry.source == SourceKind::huggingface) pinned.revision = record->commit;
    if (entry.source == SourceKind::civitai) pinned.file_id = record->file_id;
    auto plan = resolve_entry(pinned, context);
    if (!plan) {
        Error failure = plan.error();
        if (entry.source == SourceKind::huggingface && failure.code == errc::not_found)
            failure.message += " (the lock pins commit " + record->commit + " of " + record->repo +
                               "; if that commit was removed upstream, the pinned bytes are gone" + refresh_hint(lock) +
                               ")";
        return failure;
    }
    // A branch that moved is fine as long as the file it names is still the
    // pinned one; a changed file is what the lock exists to catch.
    if (entry.source == SourceKind::huggingface && entry.revision != record->commit) {
        auto current = resolve_entry(entry, context);
        if (!current && current.error().code == errc::not_found)
            return moved(entry.revision + " of " + entry.repo + " no longer has " + entry.file + " (" +
                         current.error().message + ")");
        if (!current) return current.error();
        if (current->validator != plan->validator)
            return moved(entry.revision + " of " + entry.repo + " now points at commit " +
                         detail::lockfile::commit_of_identity(current->identity) + ", where " + entry.file +
                         " is different (" +
                         (current->sha256.empty() ? "ETag " + current->validator : "SHA-256 " + current->sha256) +
                         ") from the file pinned at commit " + record->commit + " (SHA-256 " + record->sha256 + ")");
    }
    if (!plan->sha256.empty() && plan->sha256 != record->sha256)
        return moved(
            std::string(entry.source == SourceKind::civitai ? "CivitAI file " + record->file_id : "the source") +
            " now has SHA-256 " + plan->sha256 + ", the lock pins " + record->sha256);
    if (plan->size && *plan->size != record->size)
        return moved("the source now reports " + std::to_string(*plan->size) + " bytes, the lock pins " +
                     std::to_string(record->size) + " bytes");
    plan->sha256 = record->sha256;
    plan->size = record->size;
    if (plan->file_name.empty()) plan->file_name = record->file;
    return plan;
}

inline Error explain_locked_failure(const Error& failure, const Lockfile& lock) {
    if (failure.code != errc::integrity) return failure;
    Error out = failure;
    out.message += "; the bytes upstream no longer match what the lock pins (the file changed since it was locked)" +
                   detail::lockfile::refresh_hint(lock);
    return out;
}

inline std::vector<std::pair<const LockRecord*, Error>> lock_records_not_in(const Lockfile& lock,
                                                                            const std::vector<Entry>& entries) {
    std::vector<std::pair<const LockRecord*, Error>> out;
    for (const auto& record : lock.files) {
        bool known = false;
        bool file_gone = false;  // the entry is there, but (Hugging Face, several files) no longer this file
        for (const auto& entry : entries) {
            if (detail::lockfile::listed_entry_of(entry.key_path) == detail::lockfile::listed_entry_of(record.entry) &&
                entry.key_path != record.entry) {
                file_gone = !known;  // the listing still has the entry, but not this file
                continue;
            }
            if (entry.key_path != record.entry) continue;
            bool same_file = entry.source != SourceKind::huggingface || record.source != SourceKind::huggingface ||
                             entry.file == record.repo_file;
            known = known || same_file;
            file_gone = !known;
        }
        if (known) continue;
        if (file_gone) {
            out.emplace_back(&record, make_error(errc::integrity, record.entry + ": upstream moved: " + record.repo +
                                                                      " no longer lists " + record.repo_file +
                                                                      ", which the lock pins" +
                                                                      detail::lockfile::refresh_hint(lock)));
            continue;
        }
        for (const auto& reported : out) known = known || reported.first->entry == record.entry;  // one error per entry
        if (known) continue;
        std::string where = record.where.file.empty() ? "" : " (" + record.where.str() + ")";
        out.emplace_back(&record, make_error(errc::config, record.entry + ": pinned in the lock" + where +
                                                               " but no longer in the config" +
                                                               detail::lockfile::refresh_hint(lock)));
    }
    return out;
}

}  // namespace provision

#endif
