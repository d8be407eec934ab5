// SPDX-License-Identifier: MIT
// provision: Hugging Face entries with several files (files = [...], or
// include = [...] / exclude = [...] patterns).
//
// Such an entry is listed once and then handled file by file. The revision is
// first resolved to one commit (GET /api/{type}s/{repo}/revision/{rev}), the
// repo is listed at that commit through the paginated tree API, and every file
// becomes an ordinary single-file entry whose revision is that commit. So all
// files come from the same commit even if the branch moves during the run, and
// each one is resolved and verified exactly like a `file = "..."` entry (its
// HEAD gives the SHA-256 or git blob SHA-1; the listing's SHA-256 must agree).
#ifndef PROVISION_SOURCES_HUGGINGFACE_TREE_HPP
#define PROVISION_SOURCES_HUGGINGFACE_TREE_HPP

#include "../../config/config.hpp"
#include "../../error.hpp"
#include "../../http/client.hpp"
#include "../../plan.hpp"
#include "../../url.hpp"
#include "huggingface.hpp"

#include "../../support/bounded_json.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace provision {
namespace sources {
namespace hf {

/// Shell-style matching as huggingface_hub does it (fnmatch, case-sensitive):
/// '*' matches any run of characters including '/', '?' one character,
/// "[abc]" / "[a-z]" / "[!abc]" one character of (or not of) a set.
inline bool glob_match(std::string_view pattern, std::string_view text) {
    std::size_t p = 0, t = 0;
    std::size_t star = std::string_view::npos, star_text = 0;  // where to resume after the last '*'
    auto set_matches = [&](std::size_t at, char c, std::size_t& after) {
        // at: the position after '['. Returns whether c is in the set; after: the position after ']'.
        std::size_t i = at;
        bool negate = i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^');
        if (negate) ++i;
        bool found = false;
        bool first = true;
        while (i < pattern.size() && (first || pattern[i] != ']')) {
            first = false;
            char low = pattern[i];
            if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
                if (low <= c && c <= pattern[i + 2]) found = true;
                i += 3;
            } else {
                if (low == c) found = true;
                ++i;
            }
        }
        if (i >= pattern.size()) return std::optional<bool>{};  // no ']': the '[' is a literal
        after = i + 1;
        return std::optional<bool>{found != negate};
    };
    while (t < text.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            star_text = t;
            continue;
        }
        if (p < pattern.size()) {
            char c = pattern[p];
            if (c == '?') {
                ++p;
                ++t;
                continue;
            }
            if (c == '[') {
                std::size_t after = 0;
                auto in_set = set_matches(p + 1, text[t], after);
                if (in_set && *in_set) {
                    p = after;
                    ++t;
                    continue;
                }
                if (!in_set && text[t] == '[') {  // unterminated set: a literal '['
                    ++p;
                    ++t;
                    continue;
                }
            } else if (c == text[t]) {
                ++p;
                ++t;
                continue;
            }
        }
        if (star == std::string_view::npos) return false;
        p = star + 1;
        t = ++star_text;
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

/// A pattern as huggingface_hub applies it: backslashes become '/', and a
/// trailing '/' means "everything in that folder".
inline std::string normalize_pattern(std::string pattern) {
    std::replace(pattern.begin(), pattern.end(), '\\', '/');
    if (!pattern.empty() && pattern.back() == '/') pattern += '*';
    return pattern;
}

/// Kept iff (no include, or it matches one include) and it matches no exclude.
inline bool is_selected(std::string_view path, const std::vector<std::string>& include,
                        const std::vector<std::string>& exclude) {
    auto any = [&](const std::vector<std::string>& patterns) {
        for (const auto& pattern : patterns)
            if (glob_match(normalize_pattern(pattern), path)) return true;
        return false;
    };
    return (include.empty() || any(include)) && !any(exclude);
}

/// "models", "datasets" or "spaces": the API's collection for a repo type.
inline std::string api_collection(std::string_view repo_type) {
    if (repo_type == "dataset") return "datasets";
    if (repo_type == "space") return "spaces";
    return "models";
}

/// `{endpoint}/api/{type}s/{repo}/revision/{revision}`: the revision's commit (`sha`).
inline std::string revision_api_url(std::string_view endpoint, std::string_view repo_type, std::string_view repo,
                                    std::string_view revision) {
    return endpoint_base(endpoint) + "/api/" + api_collection(repo_type) + "/" + std::string(repo) + "/revision/" +
           percent_encode(revision);
}

/// `{endpoint}/api/{type}s/{repo}/tree/{commit}?recursive=true`: the first page of the listing.
inline std::string tree_api_url(std::string_view endpoint, std::string_view repo_type, std::string_view repo,
                                std::string_view commit) {
    return endpoint_base(endpoint) + "/api/" + api_collection(repo_type) + "/" + std::string(repo) + "/tree/" +
           percent_encode(commit) + "?recursive=true";
}

/// One file of a listing.
struct RepoFile {
    std::string path;
    std::uint64_t size = 0;
    std::string git_sha1;  ///< `oid`: the git blob SHA-1 (of the pointer, for LFS files)
    std::string sha256;    ///< `lfs.oid`: the content's SHA-256 (LFS / Xet files), or ""
};

/// The files of one tree page (folders are skipped). Messages say what is odd.
inline Result<std::vector<RepoFile>> parse_tree_page(std::string_view body) {
    bool too_large = false;
    auto document = provision::detail::parse_api_json(body, &too_large);
    if (too_large) return make_error(errc::network, "the listing page holds far more values than any Hub page does");
    if (document.is_discarded() || !document.is_array())
        return make_error(errc::network, "the listing is not a JSON array");
    std::vector<RepoFile> files;
    for (const auto& item : document) {
        if (!item.is_object()) return make_error(errc::network, "an item of the listing is not an object");
        auto type = item.find("type");
        if (type == item.end() || !type->is_string())
            return make_error(errc::network, "an item of the listing has no \"type\"");
        if (*type != "file") continue;
        RepoFile file;
        auto path = item.find("path");
        if (path == item.end() || !path->is_string() || path->get_ref<const std::string&>().empty())
            return make_error(errc::network, "a file in the listing has no \"path\"");
        file.path = path->get<std::string>();
        if (auto size = item.find("size"); size != item.end() && size->is_number_unsigned())
            file.size = size->get<std::uint64_t>();
        if (auto oid = item.find("oid"); oid != item.end() && oid->is_string())
            file.git_sha1 = detail::to_lower(oid->get<std::string>());
        if (auto lfs = item.find("lfs"); lfs != item.end() && lfs->is_object()) {
            if (auto oid = lfs->find("oid"); oid != lfs->end() && oid->is_string()) {
                file.sha256 = detail::to_lower(oid->get<std::string>());
                if (!provision::detail::is_hex_of_length(file.sha256, 64))
                    return make_error(errc::network,
                                      "the listing gives \"" + file.path + "\" an LFS oid that is not a SHA-256");
            }
            // The top-level size of an LFS file may be the pointer's; lfs.size is the content's.
            if (auto size = lfs->find("size"); size != lfs->end() && size->is_number_unsigned())
                file.size = size->get<std::uint64_t>();
        }
        files.push_back(std::move(file));
    }
    return files;
}

/// The target of a `Link: <url>; rel="next"` header, if there is one.
inline std::optional<std::string> next_page_link(const HttpResponse& response) {
    for (const auto& [name, value] : response.headers) {
        if (!detail::iequals(name, "Link")) continue;
        std::size_t pos = 0;
        while ((pos = value.find('<', pos)) != std::string::npos) {
            std::size_t close = value.find('>', pos);
            if (close == std::string::npos) break;
            std::string target = value.substr(pos + 1, close - pos - 1);
            std::size_t next_link = value.find('<', close);
            std::string params = detail::to_lower(
                value.substr(close + 1, next_link == std::string::npos ? std::string::npos : next_link - close - 1));
            params.erase(std::remove(params.begin(), params.end(), ' '), params.end());
            if (params.find("rel=\"next\"") != std::string::npos || params.find("rel=next") != std::string::npos)
                return target;
            pos = close + 1;
        }
    }
    return std::nullopt;
}

/// GET of a Hub API route with the token; transport failures are tried again
/// (pooled connections the Hub closed fail once on first use).
inline Result<HttpResponse> fetch_hub_api(const Url& url, const std::vector<Header>& credentials,
                                          ResolveContext& context) {
    HttpRequest request;
    request.url = url;
    request.headers = {{"Accept", "application/json"}};
    request.scoped_headers = credentials;
    request.redirects = RedirectPolicy::relative_only;
    auto answer = context.http.fetch(request);
    for (int retry = 0; retry < 3 && !answer && answer.error().code == errc::network; ++retry)
        answer = context.http.fetch(request);
    return answer;
}

/// A listing: the commit it was made at and the files in it.
struct RepoListing {
    std::string commit;
    std::vector<RepoFile> files;
};

/// Resolves the entry's revision to one commit and lists the repo at it, following
/// every `rel="next"` page. The Hub's answers are worded by explain_hub_answer.
inline Result<RepoListing> list_repo(const Entry& entry, ResolveContext& context) {
    const std::string endpoint = endpoint_base(context.hf_endpoint);
    const std::string token(detail::trim(context.credentials.hf_token));
    FileRef ref = FileRef::of(entry, endpoint, !token.empty());
    ref.file = "the file list";
    const std::string who = entry.key_path + ": ";
    std::vector<Header> credentials;
    if (!token.empty()) credentials.emplace_back("Authorization", "Bearer " + token);
    auto what_of = [&](const std::string& stage) {
        return stage + " of " + entry.repo + " (revision \"" + entry.revision + "\")";
    };

    RepoListing listing;
    if (provision::detail::is_hex_of_length(entry.revision, 40)) {
        listing.commit = detail::to_lower(entry.revision);  // already one commit: nothing to resolve
    } else {
        auto url = parse_url(revision_api_url(endpoint, entry.repo_type, entry.repo, entry.revision));
        if (!url)
            return make_error(errc::usage, who + "HF_ENDPOINT \"" + redact_url(endpoint) +
                                               "\" is not a usable address (" + url.error().message +
                                               "); set it to e.g. https://huggingface.co or unset it");
        auto answer = fetch_hub_api(url.value(), credentials, context);
        if (!answer)
            return make_error(answer.error().code, who + "cannot reach Hugging Face to resolve " +
                                                       what_of("the commit") + ": " + answer.error().message);
        if (answer->status != 200) return explain_hub_answer(ref, answer.value());
        auto document = provision::detail::parse_api_json(answer->body);
        auto sha = document.is_object() ? document.find("sha") : document.end();
        if (!document.is_object() || sha == document.end() || !sha->is_string() ||
            !provision::detail::is_hex_of_length(sha->get<std::string>(), 40))
            return make_error(errc::network, who + "Hugging Face's answer for " + what_of("the commit") + " (" +
                                                 answer->url.redacted() + request_id_suffix(answer.value()) +
                                                 ") does not name a commit (no 40-hex \"sha\"); try again later");
        listing.commit = detail::to_lower(sha->get<std::string>());
    }

    auto first = parse_url(tree_api_url(endpoint, entry.repo_type, entry.repo, listing.commit));
    if (!first)
        return make_error(errc::usage, who + "HF_ENDPOINT \"" + redact_url(endpoint) + "\" is not a usable address");
    const std::string hub_origin = first->origin();
    Url page = first.value();
    std::set<std::string> seen_pages;
    // Bounds on what a listing may hold, so memory stays bounded too: the
    // largest real repos list tens of thousands of files; a server that
    // pages forever, or pads pages, is cut off here.
    constexpr std::size_t max_pages = 1000;
    constexpr std::size_t max_files = 200000;
    for (std::size_t count = 0;; ++count) {
        if (count == max_pages || !seen_pages.insert(page.str()).second)
            return make_error(errc::network, who + "Hugging Face's listing of " + entry.repo +
                                                 " keeps pointing at further pages (" + std::to_string(count) +
                                                 " so far); giving up, try again later");
        auto answer = fetch_hub_api(page, credentials, context);
        if (!answer)
            return make_error(answer.error().code, who + "cannot reach Hugging Face to list " + what_of("the files") +
                                                       ": " + answer.error().message);
        if (answer->status != 200) return explain_hub_answer(ref, answer.value());
        auto files = parse_tree_page(answer->body);
        if (!files)
            return make_error(errc::network, who + "Hugging Face's listing of " + entry.repo + " at commit " +
                                                 listing.commit + " (" + answer->url.redacted() +
                                                 request_id_suffix(answer.value()) +
                                                 ") is unusable: " + files.error().message + "; try again later");
        for (auto& file : files.value()) listing.files.push_back(std::move(file));
        if (listing.files.size() > max_files)
            return make_error(errc::network, who + "Hugging Face's listing of " + entry.repo + " names more than " +
                                                 std::to_string(max_files) + " files; no real repo does, giving up");
        auto next = next_page_link(answer.value());
        if (!next) break;
        auto next_url = resolve_reference(answer->url, *next);
        // The next page must come from the Hub: the token goes with it.
        if (!next_url || next_url->origin() != hub_origin)
            return make_error(errc::unsafe, who + "Hugging Face's listing of " + entry.repo +
                                                " points its next page at " +
                                                (next_url ? next_url->redacted() : std::string("an unusable address")) +
                                                ", which is not the Hub; refusing it");
        page = next_url.value();
    }
    return listing;
}

/// Paths of the listing that look like `wanted`: the same letters in another
/// case, or the same file name in another folder. For "did you mean".
inline std::vector<std::string> similar_paths(const std::vector<RepoFile>& files, const std::string& wanted) {
    std::vector<std::string> out;
    const std::string lower = detail::to_lower(wanted);
    const std::string base = wanted.substr(wanted.rfind('/') + 1);
    for (const auto& file : files) {
        const std::string file_base = file.path.substr(file.path.rfind('/') + 1);
        if (detail::to_lower(file.path) == lower || file_base == base) out.push_back(file.path);
        if (out.size() == 3) break;
    }
    return out;
}

/// "a, b, c and 12 more": a few paths for a message.
inline std::string some_paths(const std::vector<RepoFile>& files, std::size_t limit = 8) {
    std::string out;
    for (std::size_t i = 0; i < files.size() && i < limit; ++i) out += (i ? ", " : "") + ("\"" + files[i].path + "\"");
    if (files.size() > limit) out += " and " + std::to_string(files.size() - limit) + " more";
    return out.empty() ? "no files" : out;
}

}  // namespace hf

/// One entry of the provisioning run after expansion.
struct ExpandedEntry {
    Entry entry;                 ///< a single-file entry (or the original one when it was not expanded or failed)
    std::size_t from = 0;        ///< index of the config entry it came from
    std::optional<Error> error;  ///< set when this file (or the whole entry) cannot be provisioned
};

/// The key path of one file of a multi-file entry: "models.diffusers.sdxl[unet/config.json]".
inline std::string file_key_path(const std::string& key_path, const std::string& path) {
    return key_path + "[" + path + "]";
}

/// Turns a multi-file entry into one single-file entry per selected file, all
/// pinned to the commit the revision pointed to when it was listed. A file
/// named in `files` that the repo lacks becomes a failed entry of its own, so
/// the others still run; a listing that fails, or patterns that select nothing,
/// fail the entry as a whole.
inline std::vector<ExpandedEntry> expand_huggingface_entry(const Entry& entry, std::size_t index,
                                                           ResolveContext& context) {
    if (!entry.is_multi_file()) return {ExpandedEntry{entry, index, std::nullopt}};
    auto listing = hf::list_repo(entry, context);
    if (!listing) return {ExpandedEntry{entry, index, listing.error()}};
    const std::string at = entry.repo + " at revision \"" + entry.revision + "\" (commit " + listing->commit + ")";
    const std::string page = hf::repo_page_url(entry.repo_type, entry.repo) + "/tree/" + percent_encode(entry.revision);

    auto single = [&](const hf::RepoFile& file) {
        Entry one = entry;
        one.files.clear();
        one.include.clear();
        one.exclude.clear();
        one.file = file.path;
        one.revision = listing->commit;
        one.key_path = file_key_path(entry.key_path, file.path);
        one.sha256 = file.sha256;  // the listing's SHA-256; the file's own metadata must agree with it
        return one;
    };
    std::vector<ExpandedEntry> out;
    if (!entry.files.empty()) {
        for (const auto& wanted : entry.files) {
            auto found = std::find_if(listing->files.begin(), listing->files.end(),
                                      [&](const hf::RepoFile& f) { return f.path == wanted; });
            if (found != listing->files.end()) {
                out.push_back({single(*found), index, std::nullopt});
                continue;
            }
            Entry missing = entry;
            missing.files.clear();
            missing.file = wanted;
            missing.revision = listing->commit;
            missing.key_path = file_key_path(entry.key_path, wanted);
            std::string hint;
            auto similar = hf::similar_paths(listing->files, wanted);
            for (std::size_t i = 0; i < similar.size(); ++i)
                hint += (i ? " or \"" : "did you mean \"") + similar[i] + "\"";
            if (!hint.empty()) hint += "? ";
            out.push_back(
                {missing, index,
                 make_error(errc::not_found, missing.key_path + ": files names \"" + wanted +
                                                 "\", but there is no such file in " + at + "; " + hint +
                                                 "paths are case-sensitive and include their folders (the repo has " +
                                                 hf::some_paths(listing->files) + "); see " + page)});
        }
        return out;
    }
    for (const auto& file : listing->files)
        if (hf::is_selected(file.path, entry.include, entry.exclude))
            out.push_back({single(file), index, std::nullopt});
    if (out.empty()) {
        std::string patterns;
        for (const auto& p : entry.include) patterns += (patterns.empty() ? "include = [\"" : "\", \"") + p;
        patterns += "\"]";
        if (!entry.exclude.empty()) {
            patterns += " with exclude = [\"";
            for (std::size_t i = 0; i < entry.exclude.size(); ++i) patterns += (i ? "\", \"" : "") + entry.exclude[i];
            patterns += "\"]";
        }
        return {ExpandedEntry{
            entry, index,
            make_error(errc::not_found, entry.key_path + ": " + patterns + " selects no file of " + at + " (it has " +
                                            hf::some_paths(listing->files) +
                                            "); patterns are case-sensitive and '*' also matches '/'; see " + page)}};
    }
    return out;
}

}  // namespace sources
}  // namespace provision

#endif
