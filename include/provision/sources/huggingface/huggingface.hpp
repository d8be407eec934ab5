// SPDX-License-Identifier: MIT
// provision: Hugging Face Hub entries (source = "huggingface").
//
// One metadata HEAD on the file's resolve URL tells the downloader everything:
// the commit the revision points to, the file's digest (its ETag), its size
// and, for large files, a pre-signed CDN link. We stop at that absolute
// redirect rather than follow it: its own headers carry the linked metadata,
// and the token must not travel to the CDN. Relative redirects are the Hub's
// own (renamed repos, letter-case fixes) and are followed with the token.
//
// The small functions below (URL building, ETag normalisation, error
// wording) are separate so each can be tested on its own.
#ifndef PROVISION_SOURCES_HUGGINGFACE_HUGGINGFACE_HPP
#define PROVISION_SOURCES_HUGGINGFACE_HUGGINGFACE_HPP

#include "../../config/config.hpp"
#include "../../http/client.hpp"
#include "../../plan.hpp"
#include "../../url.hpp"

#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace provision {
namespace sources {
namespace hf {

/// Where gated repos' terms are accepted and tokens are made, whatever HF_ENDPOINT says:
/// a mirror serves files, but accounts live on the Hub itself.
inline const char* hub_site() noexcept { return "https://huggingface.co"; }
inline const char* token_settings_url() noexcept { return "https://huggingface.co/settings/tokens"; }

/// HF_ENDPOINT without trailing '/' (the Hub when empty).
inline std::string endpoint_base(std::string_view endpoint) {
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.remove_suffix(1);
    return endpoint.empty() ? std::string(hub_site()) : std::string(endpoint);
}

/// The path prefix of a repo type on the Hub: models have none.
inline std::string repo_type_prefix(std::string_view repo_type) {
    if (repo_type == "dataset") return "datasets/";
    if (repo_type == "space") return "spaces/";
    return "";
}

/// "model repo", "dataset repo", "Space": how messages name a repo.
inline std::string repo_noun(std::string_view repo_type) {
    if (repo_type == "dataset") return "dataset repo";
    if (repo_type == "space") return "Space";
    return "model repo";
}

/// `{endpoint}/{prefix}{repo}/resolve/{revision}/{file}`. The repo id goes in as is
/// (its '/' is a real separator); the revision is encoded whole, so "refs/pr/1"
/// stays one segment ("refs%2Fpr%2F1"); the file is encoded segment by segment,
/// keeping its folders.
inline std::string resolve_url(std::string_view endpoint, std::string_view repo_type, std::string_view repo,
                               std::string_view revision, std::string_view file) {
    return endpoint_base(endpoint) + "/" + repo_type_prefix(repo_type) + std::string(repo) + "/resolve/" +
           percent_encode(revision) + "/" + percent_encode_path(file);
}

/// The repo's page on the Hub, where users read and accept a gated repo's terms.
inline std::string repo_page_url(std::string_view repo_type, std::string_view repo) {
    return std::string(hub_site()) + "/" + repo_type_prefix(repo_type) + std::string(repo);
}

/// An ETag as the Hub sends it ("\"abc\"", or weak W/"abc") reduced to its value;
/// hexadecimal values are lower-cased so they compare with our digests.
inline std::string normalize_etag(std::string_view raw) {
    std::string_view value = detail::trim(raw);
    if (detail::starts_with(value, "W/") || detail::starts_with(value, "w/")) value.remove_prefix(2);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    bool hex = !value.empty();
    for (unsigned char c : value) hex = hex && std::isxdigit(c);
    return hex ? detail::to_lower(value) : std::string(value);
}

/// What an ETag tells us about the file's bytes.
enum class EtagKind {
    sha256,    ///< 64 hex: an LFS / Xet file; the value is the SHA-256 of its content
    git_sha1,  ///< 40 hex: a regular git file; the value is its git blob SHA-1
    opaque,    ///< anything else (a mirror's own tag): nothing to verify with
};

inline EtagKind classify_etag(std::string_view etag) {
    if (provision::detail::is_hex_of_length(etag, 64)) return EtagKind::sha256;
    if (provision::detail::is_hex_of_length(etag, 40)) return EtagKind::git_sha1;
    return EtagKind::opaque;
}

/// The id the Hub (or its CDN) gave this answer, for support requests; empty if none.
inline std::string request_id(const HttpResponse& response) {
    for (const char* name : {"X-Request-Id", "X-Amzn-Trace-Id", "X-Amz-Cf-Id"})
        if (auto value = response.header(name); value && !detail::trim(*value).empty())
            return std::string(detail::trim(*value));
    return "";
}

/// ", request id X" when the server sent one: goes inside the parentheses that give the status.
inline std::string request_id_suffix(const HttpResponse& response) {
    std::string id = request_id(response);
    return id.empty() ? "" : ", request id " + id;
}

/// What a 429 says about the quota (IETF RateLimit headers, and Retry-After).
struct RateLimitInfo {
    std::string bucket;                           ///< "resolvers", "api" or "pages"
    std::optional<std::uint64_t> remaining;       ///< r=
    std::optional<std::uint64_t> reset_seconds;   ///< t=
    std::optional<std::uint64_t> quota;           ///< q= (from RateLimit-Policy)
    std::optional<std::uint64_t> window_seconds;  ///< w= (from RateLimit-Policy)
    std::optional<std::uint64_t> retry_after;     ///< Retry-After in seconds (the date form is ignored)
};

/// A decimal number (a size, a count, seconds), if the whole text is one.
inline std::optional<std::uint64_t> parse_decimal(std::string_view text) {
    return provision::detail::decimal_value(provision::detail::trim(text));
}

/// Splits `"name";k=v;k=v` into its items, unquoting the quoted ones.
inline std::vector<std::string> split_structured_list(std::string_view text) {
    std::vector<std::string> items;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        std::size_t semicolon = text.find(';', pos);
        if (semicolon == std::string_view::npos) semicolon = text.size();
        std::string_view item = provision::detail::trim(text.substr(pos, semicolon - pos));
        if (item.size() >= 2 && item.front() == '"' && item.back() == '"') item = item.substr(1, item.size() - 2);
        items.emplace_back(item);
        pos = semicolon + 1;
    }
    return items;
}

/// A header's value as a number, if it is one.
inline std::optional<std::uint64_t> header_number(const HttpResponse& response, const char* name) {
    auto value = response.header(name);
    return value ? parse_decimal(*value) : std::nullopt;
}

inline RateLimitInfo parse_rate_limit(const HttpResponse& response) {
    RateLimitInfo info;
    auto read_params = [](const std::vector<std::string>& items, auto&& on_param) {
        for (const auto& item : items) {
            auto eq = item.find('=');
            if (eq != std::string::npos) on_param(item.substr(0, eq), item.substr(eq + 1));
        }
    };
    if (auto limit = response.header("RateLimit")) {
        auto items = split_structured_list(*limit);
        if (!items.empty() && items.front().find('=') == std::string::npos) info.bucket = items.front();
        read_params(items, [&](const std::string& key, const std::string& value) {
            if (key == "r") info.remaining = parse_decimal(value);
            if (key == "t") info.reset_seconds = parse_decimal(value);
        });
    }
    if (auto policy = response.header("RateLimit-Policy")) {
        auto items = split_structured_list(*policy);
        // `"fixed window";"resolvers";q=3000;w=300`: the second plain item names the bucket.
        for (std::size_t i = 1; i < items.size() && info.bucket.empty(); ++i)
            if (items[i].find('=') == std::string::npos) info.bucket = items[i];
        read_params(items, [&](const std::string& key, const std::string& value) {
            if (key == "q") info.quota = parse_decimal(value);
            if (key == "w") info.window_seconds = parse_decimal(value);
        });
    }
    if (auto retry = response.header("Retry-After")) info.retry_after = parse_decimal(*retry);
    return info;
}

/// One Hugging Face file as the config asked for it: everything a message names.
struct FileRef {
    std::string key_path;  ///< "models.vae.flux-vae"
    std::string repo;
    std::string repo_type = "model";
    std::string revision = "main";
    std::string file;
    std::string endpoint = hub_site();  ///< without trailing '/'
    bool token_sent = false;            ///< whether HF_TOKEN went with the request being explained

    static FileRef of(const Entry& entry, const std::string& endpoint, bool token_sent) {
        return FileRef{entry.key_path,          entry.repo, entry.repo_type, entry.revision, entry.file,
                       endpoint_base(endpoint), token_sent};
    }
    /// "\"ae.safetensors\" from black-forest-labs/FLUX.1-dev (revision \"main\")"
    std::string what() const { return "\"" + file + "\" from " + repo + " (revision \"" + revision + "\")"; }
    std::string page() const { return repo_page_url(repo_type, repo); }
};

/// A gated repo: no token (or one not accepted), or an account without access.
inline Error explain_gated_answer(const FileRef& ref, const HttpResponse& response) {
    const std::string status = "HTTP " + std::to_string(response.status);
    const std::string id = request_id_suffix(response);
    const std::string who = ref.key_path + ": ";
    const std::string noun = repo_noun(ref.repo_type);
    if (!ref.token_sent || response.status == 401)
        return make_error(errc::auth, who + ref.repo + " is a gated " + noun + " (" + status + id +
                                          "): Hugging Face serves its files only to signed-in users who accepted its "
                                          "terms, and " +
                                          (ref.token_sent ? "HF_TOKEN was not accepted" : "HF_TOKEN is not set") +
                                          ". Accept the terms at " + ref.page() +
                                          ", then set HF_TOKEN to a read token from " + token_settings_url());
    return make_error(errc::auth, who + "the account of HF_TOKEN has not been granted access to the gated " + noun +
                                      " " + ref.repo + " (" + status + id + "). Open " + ref.page() +
                                      " and accept its terms (some authors approve requests by hand, which can take a "
                                      "while); a fine-grained token also needs \"Read access to contents of all public "
                                      "gated repos you can access\"");
}

/// A 429 from the Hub, with the quota and the wait it names when it names them.
inline Error explain_rate_limit(const FileRef& ref, const HttpResponse& response) {
    const std::string status = "HTTP " + std::to_string(response.status);
    const std::string id = request_id_suffix(response);
    const std::string who = ref.key_path + ": ";
    RateLimitInfo limit = parse_rate_limit(response);
    std::string quota;
    if (!limit.bucket.empty()) {
        quota = " on the \"" + limit.bucket + "\" quota";
        if (limit.quota && limit.window_seconds)
            quota +=
                " of " + std::to_string(*limit.quota) + " requests per " + std::to_string(*limit.window_seconds) + " s";
    }
    std::optional<std::uint64_t> wait = limit.reset_seconds ? limit.reset_seconds : limit.retry_after;
    std::string when =
        wait ? "run again in " + std::to_string(*wait) + " s or later" : "wait a few minutes and run again";
    return make_error(errc::rate_limited,
                      who + "Hugging Face is rate-limiting this machine (" + status + quota + id +
                          ") while resolving " + ref.what() + "; " + when +
                          (ref.token_sent ? "" : " (setting HF_TOKEN gives a larger quota than anonymous use)"));
}

/// Words for a non-success answer from the Hub itself (the metadata request, or a
/// download served by the Hub). Every message names the entry, what it asked for
/// and what to do; the request id is appended when the Hub sent one. The Hub's
/// machine-readable X-Error-Code decides first, as in huggingface_hub.
inline Error explain_hub_answer(const FileRef& ref, const HttpResponse& response) {
    const std::string code = response.header("X-Error-Code").value_or("");
    const std::string server_text =
        std::string(provision::detail::trim(response.header("X-Error-Message").value_or("")));
    const std::string status = "HTTP " + std::to_string(response.status);
    const std::string id = request_id_suffix(response);
    const std::string who = ref.key_path + ": ";
    const std::string noun = repo_noun(ref.repo_type);
    const std::string quoted_server = server_text.empty() ? "" : ": \"" + server_text + "\"";

    if (code == "RevisionNotFound")
        return make_error(errc::not_found, who + ref.repo + " has no revision \"" + ref.revision + "\" (" + status +
                                               id +
                                               "). Set revision to an existing branch or tag (e.g. \"main\"), a full "
                                               "40-character commit hash, or refs/pr/N; branches and tags are listed "
                                               "under \"Files and versions\" at " +
                                               ref.page() + "/tree/main");
    if (code == "EntryNotFound") {
        std::string commit = response.header("X-Repo-Commit").value_or("");
        std::string at = "revision \"" + ref.revision + "\"" +
                         (commit.empty() || commit == ref.revision ? "" : " (commit " + commit + ")");
        return make_error(errc::not_found, who + "there is no file \"" + ref.file + "\" in " + ref.repo + " at " + at +
                                               " (" + status + id + "). Check file against the list at " + ref.page() +
                                               "/tree/" + percent_encode(ref.revision) +
                                               ": paths are case-sensitive and include their folders");
    }
    if (code == "GatedRepo") return explain_gated_answer(ref, response);
    if (server_text == "Access to this resource is disabled.")
        return make_error(errc::not_found,
                          who + "Hugging Face has disabled the " + noun + " " + ref.repo + " (" + status +
                              quoted_server + id + "), so \"" + ref.file +
                              "\" cannot be downloaded from it any more; remove the entry or find the file elsewhere");
    if (response.status == 401 && server_text == "Invalid credentials in Authorization header")
        return make_error(errc::auth, who + "Hugging Face rejected HF_TOKEN as invalid (" + status + quoted_server +
                                          id + "): it is expired, revoked or mistyped. Create a read token at " +
                                          token_settings_url() +
                                          " and set HF_TOKEN to it (or unset HF_TOKEN for public repos)");
    if (code == "RepoNotFound" || response.status == 401) {
        if (!ref.token_sent)
            return make_error(errc::not_found,
                              who + "the " + noun + " " + ref.repo + " was not found (" + status + id +
                                  "). Check repo (owner/name, as in the address of its page) and "
                                  "repo_type; if the repo is private, set HF_TOKEN to a token of an "
                                  "account that can read it (without a token, Hugging Face answers the "
                                  "same for private and missing repos)");
        return make_error(errc::not_found, who + "the " + noun + " " + ref.repo +
                                               " was not found, or the account of HF_TOKEN "
                                               "cannot see it (" +
                                               status + id +
                                               "). Check repo (owner/name, as in the "
                                               "address of its page) and repo_type, and if the repo is private, that "
                                               "HF_TOKEN belongs to an account with access to it");
    }
    if (response.status == 429) return explain_rate_limit(ref, response);
    if (response.status == 403)
        return make_error(errc::auth, who + "Hugging Face refused access to " + ref.what() + " (" + status +
                                          quoted_server + id + "); " +
                                          (ref.token_sent ? "check that the account of HF_TOKEN can read this repo"
                                                          : "the repo may need a token: set HF_TOKEN"));
    if (response.status == 404 || response.status == 410)
        return make_error(errc::not_found, who + "Hugging Face has no " + ref.what() + " (" + status + quoted_server +
                                               id + "); check repo, repo_type, revision and file");
    if (response.status >= 500)
        return make_error(errc::network, who + "Hugging Face failed to serve " + ref.what() + " (" + status +
                                             quoted_server + id +
                                             "); the Hub may be down or overloaded, try again later");
    return make_error(errc::network, who + "unexpected answer from Hugging Face for " + ref.what() + " (" + status +
                                         quoted_server + id + ")");
}

/// Words for a non-success answer to the download itself. A download served by
/// the Hub gets the Hub's wording; the CDN (which knows nothing of repos and
/// tokens) mostly fails because its signed link expired.
inline Error explain_download_answer(const FileRef& ref, const HttpResponse& response) {
    auto hub = parse_url(ref.endpoint);
    bool from_hub = response.header("X-Error-Code").has_value() || (hub && hub->origin() == response.url.origin());
    if (from_hub) return explain_hub_answer(ref, response);
    const std::string who = ref.key_path + ": ";
    const std::string where =
        response.url.host + " answered HTTP " + std::to_string(response.status) + request_id_suffix(response);
    switch (response.status) {
    case 401:
    case 403:
        return make_error(errc::network, who + "the download link for " + ref.what() + " was refused (" + where +
                                             "). Hugging Face's signed CDN links expire about an hour after they are "
                                             "issued; run again to get a fresh one");
    case 404:
    case 410:
        return make_error(errc::not_found, who + "the CDN has no copy of " + ref.what() + " (" + where +
                                               "); run again later, or report it to the repo's authors if it persists");
    case 416:
        return make_error(errc::network,
                          who + "the CDN refused the requested byte range of " + ref.what() + " (" + where +
                              "); the partial download does not match the file, run again to start over");
    case 429:
        return make_error(errc::rate_limited, who + "the CDN is rate-limiting downloads of " + ref.what() + " (" +
                                                  where + "); run again in a few minutes");
    default:
        return make_error(errc::network,
                          who + "the CDN failed to serve " + ref.what() + " (" + where + "); try again later");
    }
}

/// What the metadata answer says about the file.
struct FileMetadata {
    std::string commit;                   ///< the 40-hex commit the revision resolved to
    std::string etag;                     ///< normalised
    std::optional<std::uint64_t> size;    ///< the file's real size, when the Hub gave it
    std::optional<std::string> location;  ///< the absolute download link (LFS / Xet), when redirected
};

/// Reads the metadata from a successful (2xx) or absolute-redirect (3xx) answer.
inline Result<FileMetadata> read_file_metadata(const FileRef& ref, const HttpResponse& response) {
    const std::string who = ref.key_path + ": ";
    FileMetadata metadata;
    // Every Hub answer names the commit. One without it came from something that
    // only looks like the Hub: a proxy, a firewall's block page, a captive portal.
    metadata.commit = std::string(provision::detail::trim(response.header("X-Repo-Commit").value_or("")));
    if (metadata.commit.empty()) {
        bool mirror = ref.endpoint != hub_site();
        return make_error(
            errc::network,
            who + "the answer for " + ref.what() + " from " + response.url.redacted() + " (HTTP " +
                std::to_string(response.status) +
                ") did not come from Hugging Face: it lacks the "
                "X-Repo-Commit header every Hub answer carries, so something between this machine and " +
                response.url.host +
                " (a proxy, a firewall or a captive portal) answered instead. Check the "
                "network (log in to the portal, or set the proxy up)" +
                (mirror ? "; HF_ENDPOINT is " + ref.endpoint + ": check that it is a Hugging Face mirror" : ""));
    }
    auto etag = response.header("X-Linked-Etag");
    if (!etag) etag = response.header("ETag");
    if (etag) metadata.etag = normalize_etag(*etag);
    if (metadata.etag.empty())
        return make_error(errc::network, who + "Hugging Face's answer for " + ref.what() + " carries no ETag (HTTP " +
                                             std::to_string(response.status) + request_id_suffix(response) +
                                             "), so the file could not be verified; try again later");
    metadata.size = header_number(response, "X-Linked-Size");
    // A redirect's Content-Length is the size of the redirect's own body, not the file's.
    if (!metadata.size && !response.is_redirect()) metadata.size = header_number(response, "Content-Length");
    if (response.is_redirect()) metadata.location = response.header("Location");
    return metadata;
}

/// The resolve URL the metadata answer came from, with its revision replaced by
/// the commit, so the download gets exactly the file the metadata described even
/// if the branch moves meanwhile. The answer's URL may differ from the one we
/// built (a renamed repo), so the revision is found as the segment before the
/// file's path; nullopt when the URL does not have that shape.
inline std::optional<Url> pin_to_commit(const Url& resolved, std::string_view file, std::string_view commit) {
    // The commit comes from a header. Anything but a hash ("." or "..", say) would
    // become a dot segment and make the pinned URL name another file.
    if (!provision::detail::is_hex_of_length(commit, 40)) return std::nullopt;
    const std::string tail = "/" + percent_encode_path(file);
    if (!provision::detail::ends_with(resolved.path, tail)) return std::nullopt;
    std::string head = resolved.path.substr(0, resolved.path.size() - tail.size());
    std::size_t slash = head.rfind('/');
    if (slash == std::string::npos ||
        !provision::detail::ends_with(std::string_view(head).substr(0, slash), "/resolve"))
        return std::nullopt;
    Url pinned = resolved;
    pinned.path = head.substr(0, slash + 1) + percent_encode(commit) + tail;
    return pinned;
}

}  // namespace hf

/// Resolves a Hugging Face entry: one metadata HEAD on the Hub, no file bytes.
inline Result<DownloadPlan> resolve_huggingface(const Entry& entry, ResolveContext& context) {
    const std::string endpoint = hf::endpoint_base(context.hf_endpoint);
    const std::string token(detail::trim(context.credentials.hf_token));
    const hf::FileRef ref = hf::FileRef::of(entry, endpoint, !token.empty());
    const std::string who = entry.key_path + ": ";

    auto resolve = parse_url(hf::resolve_url(endpoint, entry.repo_type, entry.repo, entry.revision, entry.file));
    if (!resolve)
        return make_error(errc::usage, who + "HF_ENDPOINT \"" + redact_url(endpoint) + "\" is not a usable address (" +
                                           resolve.error().message +
                                           "); set it to e.g. https://huggingface.co or unset it");
    const std::string hub_origin = resolve->origin();
    std::vector<Header> credentials;
    if (!token.empty()) credentials.emplace_back("Authorization", "Bearer " + token);

    HttpRequest head;
    head.method = "HEAD";
    head.url = resolve.value();
    head.scoped_headers = credentials;  // the client keeps them on the Hub's origin only
    head.redirects = RedirectPolicy::relative_only;
    // The request is idempotent, so a transport failure is tried again at once:
    // a refresh comes an hour after the first request, and the pooled
    // connections to the Hub have been closed by then; each such one fails on
    // first use (the client drops it) before a new connection is made.
    auto answer = context.http.fetch(head);
    for (int retry = 0; retry < 3 && !answer && answer.error().code == errc::network; ++retry)
        answer = context.http.fetch(head);
    if (!answer)
        return make_error(answer.error().code,
                          who + "cannot reach Hugging Face to resolve " + ref.what() + ": " + answer.error().message);
    const HttpResponse& response = answer.value();
    bool absolute_redirect = response.is_redirect() && response.header("Location").has_value();
    if (!(response.status >= 200 && response.status < 300) && !absolute_redirect)
        return hf::explain_hub_answer(ref, response);

    auto metadata = hf::read_file_metadata(ref, response);
    if (!metadata) return metadata.error();

    DownloadPlan plan;
    plan.key_path = entry.key_path;
    if (metadata->location) {
        auto location = resolve_reference(response.url, *metadata->location);
        if (!location)
            return make_error(errc::network, who + "Hugging Face sent an unusable download link for " + ref.what() +
                                                 " (HTTP " + std::to_string(response.status) +
                                                 hf::request_id_suffix(response) + "): " + location.error().message);
        if (response.url.is_https() && !location->is_https())
            return make_error(errc::unsafe, who + "Hugging Face redirected " + ref.what() + " to the unencrypted " +
                                                location->redacted() +
                                                "; refusing it (https to http would expose the download)");
        plan.url = location.value();
    } else {
        plan.url = hf::pin_to_commit(response.url, entry.file, metadata->commit).value_or(response.url);
    }
    // The token goes to the Hub only: never to the CDN, whose signed link is its own credential.
    if (plan.url.origin() == hub_origin) plan.scoped_headers = credentials;
    plan.size = metadata->size;
    switch (hf::classify_etag(metadata->etag)) {
    case hf::EtagKind::sha256:
        if (!entry.sha256.empty() && entry.sha256 != metadata->etag)
            return make_error(errc::integrity, who + "the config expects SHA-256 " + entry.sha256 +
                                                   " but Hugging Face says " + ref.what() + " at commit " +
                                                   metadata->commit + " has SHA-256 " + metadata->etag +
                                                   "; update sha256 in the entry, or pin revision to the "
                                                   "commit you checked");
        plan.sha256 = metadata->etag;
        break;
    case hf::EtagKind::git_sha1:
        plan.git_sha1 = metadata->etag;
        plan.sha256 = entry.sha256;
        break;
    case hf::EtagKind::opaque: plan.sha256 = entry.sha256; break;
    }
    plan.file_name = entry.filename.empty() ? entry.file : entry.filename;
    plan.identity = "hf:" + entry.repo_type + "/" + entry.repo + "@" + metadata->commit + ":" + entry.file;
    plan.validator = metadata->etag;
    plan.explain = [ref](const HttpResponse& failure) { return hf::explain_download_answer(ref, failure); };
    // A signed CDN link expires after about an hour; the downloader asks for a new
    // one through this. It resolves the same commit again, so the bytes cannot
    // change under a resumed download even if the branch moved meanwhile.
    Entry pinned = entry;
    pinned.revision = metadata->commit;
    ResolveContext again = context;  // HttpClient& outlives the run; the rest is copied
    plan.refresh = [pinned, again]() mutable { return resolve_huggingface(pinned, again); };
    return plan;
}

}  // namespace sources
}  // namespace provision

#endif
