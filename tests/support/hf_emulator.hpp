// SPDX-License-Identifier: MIT
// provision tests: a Hugging Face Hub and its CDN, on loopback, under their real names.
//
// Two HTTPS servers with certificates from the test CA: the Hub (huggingface.co)
// and the CDN (cdn-lfs.hf.co and cas-bridge.xethub.hf.co). ConnectTo rules send
// those names to 127.0.0.1, so the code under test builds and checks exactly the
// URLs it would use against the real service. The Hub answers as
// reference/hf-protocol.md describes:
//
//   HEAD/GET /{datasets/|spaces/}{owner}/{name}/resolve/{revision}/{path}
//     LFS / Xet file    302 to a signed CDN link, X-Linked-Etag (SHA-256),
//                       X-Linked-Size, X-Repo-Commit; the 302's own ETag and
//                       Content-Length describe the pointer and the redirect body
//     regular git file  200 with the bytes, ETag = git blob SHA-1, X-Repo-Commit
//     renamed repo / letter-case difference   307 with a relative Location
//     errors            X-Error-Code / X-Error-Message with the Hub's statuses
//                       (GatedRepo 401/403, RepoNotFound 401/404, EntryNotFound,
//                       RevisionNotFound, invalid token 401, disabled 403, 429)
//   GET /api/whoami-v2  the token's account, or 401
//   GET /api/{models|datasets|spaces}/{owner}/{name}/revision/{revision}
//                       {"id", "sha": <commit>, "siblings": [...]}
//   GET /api/{models|datasets|spaces}/{owner}/{name}/tree/{revision}?recursive=true
//                       a JSON array of files (oid = git blob SHA-1, lfs.oid =
//                       SHA-256 for LFS / Xet files) and folders, in pages of a
//                       configurable size chained by `Link: <...>; rel="next"`
//                       with an opaque cursor, as the Hub paginates
//
// The CDN serves byte ranges, refuses links whose signature it did not issue or
// has expired (403, like CloudFront / S3), and refuses any request that also
// carries an Authorization header (400, as S3 does for two auth mechanisms).
// Digests are computed here with OpenSSL directly, never with the toolkit's own
// hashing, so a bug there cannot cancel itself out.
#ifndef PROVISION_TEST_SUPPORT_HF_EMULATOR_HPP
#define PROVISION_TEST_SUPPORT_HF_EMULATOR_HPP

#include "loopback_server.hpp"

#include <openssl/evp.h>

#include <provision/provision.hpp>

#include <cctype>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace provision_test {

namespace hub_detail {

inline std::string hex(const unsigned char* data, unsigned int size) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
        out += digits[data[i] >> 4];
        out += digits[data[i] & 15];
    }
    return out;
}

inline std::string digest(const EVP_MD* algorithm, const std::string& data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_Digest(data.data(), data.size(), out, &size, algorithm, nullptr) != 1)
        throw std::runtime_error("hub emulator: EVP_Digest failed");
    return hex(out, size);
}

/// Decodes %XX; everything else is kept.
inline std::string decode(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
            out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

inline std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts(1);
    for (char c : text) {
        if (c == separator) parts.emplace_back();
        else parts.back() += c;
    }
    return parts;
}

inline std::string lower(std::string text) {
    for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

}  // namespace hub_detail

/// SHA-256 of the bytes, lower-case hex.
inline std::string sha256_of(const std::string& data) { return hub_detail::digest(EVP_sha256(), data); }

/// What git names a file: SHA-1 of "blob <size>\0" followed by the bytes.
inline std::string git_blob_sha1_of(const std::string& data) {
    return hub_detail::digest(EVP_sha1(), "blob " + std::to_string(data.size()) + std::string(1, '\0') + data);
}

/// How the Hub stores a file, which decides how it serves it.
enum class HubStorage {
    git,  ///< a small regular file: served by the Hub itself, ETag = git blob SHA-1
    lfs,  ///< Git LFS: 302 to cdn-lfs.hf.co, X-Linked-Etag = SHA-256
    xet,  ///< Xet: 302 to cas-bridge.xethub.hf.co, plus X-Xet-Hash
};

struct HubFile {
    std::string content;
    HubStorage storage = HubStorage::lfs;
    /// Bytes actually sent instead of `content` (a corrupting CDN or proxy);
    /// the metadata still describes `content`.
    std::optional<std::string> served_instead;
    bool weak_etag = false;  ///< send the ETag in its weak form W/"..."

    HubFile(std::string bytes, HubStorage how = HubStorage::lfs) : content(std::move(bytes)), storage(how) {}  // NOLINT
    HubFile serving(std::string wrong_bytes) const {
        HubFile copy = *this;
        copy.served_instead = std::move(wrong_bytes);
        return copy;
    }
    HubFile with_weak_etag() const {
        HubFile copy = *this;
        copy.weak_etag = true;
        return copy;
    }
};

enum class HubAccess { open, gated, private_repo, disabled };

/// An account's token, as whoami-v2 describes it.
struct HubToken {
    std::string user;
    std::vector<std::string> orgs;
    bool fine_grained = false;
    bool can_read_gated = true;  ///< fine-grained tokens only

    explicit HubToken(std::string name, std::vector<std::string> organisations = {}, bool fine = false,
                      bool gated_ok = true)
        : user(std::move(name)), orgs(std::move(organisations)), fine_grained(fine), can_read_gated(gated_ok) {}
};

class HubEmulator {
  public:
    struct Repo {
        std::string type = "model";
        std::string id;  ///< canonical "owner/name"
        HubAccess access = HubAccess::open;
        std::set<std::string> members;            ///< users who may read it (private) or were approved (gated)
        std::map<std::string, std::string> refs;  ///< branch, tag or refs/pr/N -> commit
        std::map<std::string, std::map<std::string, HubFile>> commits;  ///< commit -> path -> file
    };

    /// Extra names the Hub's certificate covers (a mirror for HF_ENDPOINT tests).
    explicit HubEmulator(std::vector<std::string> extra_hub_names = {}) {
        std::vector<std::string> hub_names = {"huggingface.co", "hf.co"};
        hub_names.insert(hub_names.end(), extra_hub_names.begin(), extra_hub_names.end());
        hub_names_ = hub_names;
        hub_ = LoopbackServer::https(hub_names);
        cdn_ = LoopbackServer::https(cdn_names());
        hub_->server().Get(R"(/.*)",
                           [this](const httplib::Request& req, httplib::Response& res) { answer_hub(req, res); });
        cdn_->server().Get(R"(/.*)",
                           [this](const httplib::Request& req, httplib::Response& res) { answer_cdn(req, res); });
    }

    static std::vector<std::string> cdn_names() {
        return {"cdn-lfs.hf.co", "cdn-lfs-us-1.hf.co", "cas-bridge.xethub.hf.co"};
    }

    LoopbackServer& hub() { return *hub_; }
    LoopbackServer& cdn() { return *cdn_; }

    /// Trust in the test CA and --connect-to rules for every Hub and CDN name.
    provision::HttpOptions http_options() const {
        provision::HttpOptions options;
        options.ca_files = {test_ca().ca_cert_path};
        options.connect_to = connect_to();
        return options;
    }

    std::vector<provision::ConnectTo> connect_to() const {
        std::vector<provision::ConnectTo> rules;
        for (const auto& name : hub_names_)
            rules.push_back(
                provision::ConnectTo{name, std::nullopt, "127.0.0.1", static_cast<std::uint16_t>(hub_->port())});
        for (const auto& name : cdn_names())
            rules.push_back(
                provision::ConnectTo{name, std::nullopt, "127.0.0.1", static_cast<std::uint16_t>(cdn_->port())});
        return rules;
    }

    /// Adds a repo; fill it with commit().
    void add_repo(const std::string& id, const std::string& type = "model", HubAccess access = HubAccess::open) {
        std::lock_guard<std::mutex> lock(mutex_);
        Repo repo;
        repo.type = type;
        repo.id = id;
        repo.access = access;
        repos_[key(type, id)] = repo;
    }

    /// Makes a commit holding `files` and points `ref` at it; returns its 40-hex id.
    std::string commit(const std::string& id, std::map<std::string, HubFile> files, const std::string& ref = "main",
                       const std::string& type = "model") {
        std::lock_guard<std::mutex> lock(mutex_);
        Repo& repo = repos_.at(key(type, id));
        std::string commit = hub_detail::digest(EVP_sha1(), id + "#" + std::to_string(++commit_counter_));
        for (const auto& [path, file] : files) keep_blob(sha256_of(file.content), file);
        repo.commits[commit] = std::move(files);
        repo.refs[ref] = commit;
        return commit;
    }

    /// Points a ref (branch, tag, refs/pr/N) at an existing commit.
    void set_ref(const std::string& id, const std::string& ref, const std::string& commit,
                 const std::string& type = "model") {
        std::lock_guard<std::mutex> lock(mutex_);
        repos_.at(key(type, id)).refs[ref] = commit;
    }

    /// Lets `user` read a private repo, or approves them for a gated one.
    void grant(const std::string& id, const std::string& user, const std::string& type = "model") {
        std::lock_guard<std::mutex> lock(mutex_);
        repos_.at(key(type, id)).members.insert(user);
    }

    /// The repo moved: the old id answers with a relative 307 to the new one.
    void rename(const std::string& old_id, const std::string& new_id, const std::string& type = "model") {
        std::lock_guard<std::mutex> lock(mutex_);
        renamed_[key(type, old_id)] = new_id;
    }

    void add_token(const std::string& token, HubToken account) {
        std::lock_guard<std::mutex> lock(mutex_);
        tokens_.insert_or_assign(token, std::move(account));
    }

    /// While on, every resolve request answers 429 with the Hub's RateLimit headers.
    void set_rate_limited(bool on) {
        std::lock_guard<std::mutex> lock(mutex_);
        rate_limited_ = on;
    }

    /// Every signed CDN link issued so far stops working (their hour is over).
    void expire_signed_links() {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& [signature, expired] : signatures_) expired = true;
    }

    /// The next CDN download breaks off after `bytes`, and every link issued
    /// until then expires with it: a connection lost for longer than the hour
    /// a signed link lives. A resuming client must ask the Hub for a new link.
    void interrupt_next_download(std::uint64_t bytes) {
        std::lock_guard<std::mutex> lock(mutex_);
        interrupt_after_ = bytes;
    }

    /// Listings come in pages of this many items (the Hub uses 1000); small values force pagination.
    void set_tree_page_size(std::size_t items) {
        std::lock_guard<std::mutex> lock(mutex_);
        tree_page_size_ = items;
    }

    /// After the next tree page is served, `ref` moves to `commit`: a push that
    /// lands while a client is between listing a repo and downloading its files.
    void move_ref_after_tree_page(const std::string& id, const std::string& ref, const std::string& commit,
                                  const std::string& type = "model") {
        std::lock_guard<std::mutex> lock(mutex_);
        pending_move_ = PendingMove{key(type, id), ref, commit};
    }

    /// How many signed links the Hub has handed out.
    std::size_t signed_links_issued() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return signatures_.size();
    }

    /// The request ids sent so far, oldest first (each answer carries one).
    std::vector<std::string> request_ids() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return request_ids_;
    }

  private:
    static std::string key(const std::string& type, const std::string& id) { return type + ":" + id; }
    static ServeOptions serve_as(const std::string& content_type) {
        ServeOptions options;
        options.content_type = content_type;
        return options;
    }
    static std::string prefix(const std::string& type) {
        return type == "dataset" ? "datasets/" : type == "space" ? "spaces/" : "";
    }

    /// Headers every Hub answer carries; returns the request id.
    std::string stamp(httplib::Response& res) {
        std::string id = "Root=1-hub-" + std::to_string(++request_counter_);
        request_ids_.push_back(id);
        res.set_header("X-Request-Id", id);
        return id;
    }

    static void hub_error(httplib::Response& res, int status, const std::string& code, const std::string& message) {
        res.status = status;
        if (!code.empty()) res.set_header("X-Error-Code", code);
        res.set_header("X-Error-Message", message);
        res.set_content("{\"error\":\"" + message + "\"}", "application/json");
    }

    void answer_hub(const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        take_over_ranges(req);
        stamp(res);
        std::string raw_path = req.target.substr(0, req.target.find('?'));
        std::vector<std::string> segments = hub_detail::split(raw_path.substr(1), '/');

        std::optional<HubToken> account;
        bool token_sent = false;
        std::string authorization = req.get_header_value("Authorization");
        if (!authorization.empty()) {
            token_sent = true;
            const std::string bearer = "Bearer ";
            auto found = authorization.compare(0, bearer.size(), bearer) == 0
                             ? tokens_.find(authorization.substr(bearer.size()))
                             : tokens_.end();
            if (found != tokens_.end()) account = found->second;
        }
        if (token_sent && !account) {
            hub_error(res, 401, "", "Invalid credentials in Authorization header");
            return;
        }

        if (segments.size() == 2 && segments[0] == "api" && segments[1] == "whoami-v2") {
            if (!account) {
                hub_error(res, 401, "", "Invalid credentials in Authorization header");
                return;
            }
            answer_whoami(*account, res);
            return;
        }

        // api/{models|datasets|spaces}/owner/name/{revision|tree}/<revision>
        if (segments.size() == 6 && segments[0] == "api" && (segments[4] == "revision" || segments[4] == "tree")) {
            answer_api(req, res, segments, account);
            return;
        }

        // [datasets|spaces]/owner/name/resolve/<revision>/<path...>
        std::string type = "model";
        std::size_t at = 0;
        if (!segments.empty() && (segments[0] == "datasets" || segments[0] == "spaces")) {
            type = segments[0] == "datasets" ? "dataset" : "space";
            at = 1;
        }
        if (segments.size() < at + 5 || segments[at + 2] != "resolve") {
            res.status = 404;
            res.set_content("Not Found", "text/plain");
            return;
        }
        std::string id = segments[at] + "/" + segments[at + 1];
        std::string raw_revision = segments[at + 3];
        std::string revision = hub_detail::decode(raw_revision);
        std::string raw_file;
        for (std::size_t i = at + 4; i < segments.size(); ++i) raw_file += (raw_file.empty() ? "" : "/") + segments[i];
        std::string file_path = hub_detail::decode(raw_file);

        if (rate_limited_) {
            res.status = 429;
            res.set_header("RateLimit", "\"resolvers\";r=0;t=55");
            res.set_header("RateLimit-Policy", "\"fixed window\";\"resolvers\";q=3000;w=300");
            res.set_content("Too Many Requests", "text/plain");
            return;
        }

        auto relative_redirect = [&](const std::string& canonical) {
            res.status = 307;
            res.set_header("Location", "/" + prefix(type) + canonical + "/resolve/" + raw_revision + "/" + raw_file);
            res.set_content("Temporary Redirect", "text/plain");
        };
        if (auto moved = renamed_.find(key(type, id)); moved != renamed_.end()) {
            relative_redirect(moved->second);
            return;
        }
        auto found = repos_.find(key(type, id));
        if (found == repos_.end()) {
            for (const auto& [other_key, other] : repos_)
                if (other.type == type && hub_detail::lower(other.id) == hub_detail::lower(id)) {
                    relative_redirect(other.id);
                    return;
                }
        }
        const std::string user = account ? account->user : "";
        bool member = found != repos_.end() && found->second.members.count(user) > 0;
        if (found == repos_.end() || (found->second.access == HubAccess::private_repo && !member)) {
            // Anonymous callers cannot tell a private repo from a missing one.
            hub_error(res, account ? 404 : 401, "RepoNotFound", "Repository not found");
            return;
        }
        const Repo& repo = found->second;
        if (repo.access == HubAccess::disabled) {
            hub_error(res, 403, "", "Access to this resource is disabled.");
            return;
        }
        if (repo.access == HubAccess::gated && !member) {
            if (!account)
                hub_error(
                    res, 401, "GatedRepo",
                    "Access to model " + repo.id +
                        " is restricted. You must have access to it and be authenticated to access it. Please log in.");
            else
                hub_error(res, 403, "GatedRepo",
                          "Access to model " + repo.id +
                              " is restricted and you are not in the authorized list. Visit https://huggingface.co/" +
                              repo.id + " to ask for access.");
            return;
        }
        std::string commit;
        if (auto ref = repo.refs.find(revision); ref != repo.refs.end()) commit = ref->second;
        else if (repo.commits.count(revision)) commit = revision;
        if (commit.empty()) {
            hub_error(res, 404, "RevisionNotFound", "Invalid rev id: " + revision);
            return;
        }
        res.set_header("X-Repo-Commit", commit);
        const auto& files = repo.commits.at(commit);
        auto file = files.find(file_path);
        if (file == files.end()) {
            hub_error(res, 404, "EntryNotFound", "Entry not found");
            return;
        }
        serve_file(repo, file->second, req, res);
    }

    /// The access rules of a repo, as the Hub applies them to every route; returns
    /// the repo, or nullptr after writing the error answer.
    const Repo* readable_repo(const std::string& type, const std::string& id, const std::optional<HubToken>& account,
                              httplib::Response& res) {
        auto found = repos_.find(key(type, id));
        const std::string user = account ? account->user : "";
        bool member = found != repos_.end() && found->second.members.count(user) > 0;
        if (found == repos_.end() || (found->second.access == HubAccess::private_repo && !member)) {
            hub_error(res, account ? 404 : 401, "RepoNotFound", "Repository not found");
            return nullptr;
        }
        const Repo& repo = found->second;
        if (repo.access == HubAccess::disabled) {
            hub_error(res, 403, "", "Access to this resource is disabled.");
            return nullptr;
        }
        if (repo.access == HubAccess::gated && !member) {
            if (!account)
                hub_error(
                    res, 401, "GatedRepo",
                    "Access to model " + repo.id +
                        " is restricted. You must have access to it and be authenticated to access it. Please log in.");
            else
                hub_error(res, 403, "GatedRepo",
                          "Access to model " + repo.id +
                              " is restricted and you are not in the authorized list. Visit https://huggingface.co/" +
                              repo.id + " to ask for access.");
            return nullptr;
        }
        return &repo;
    }

    /// The revision and tree routes of the API.
    void answer_api(const httplib::Request& req, httplib::Response& res, const std::vector<std::string>& segments,
                    const std::optional<HubToken>& account) {
        const std::string& collection = segments[1];
        if (collection != "models" && collection != "datasets" && collection != "spaces") {
            res.status = 404;
            res.set_content("{\"error\":\"Sorry, we can't find the page you are looking for.\"}", "application/json");
            return;
        }
        std::string type = collection == "datasets" ? "dataset" : collection == "spaces" ? "space" : "model";
        std::string id = segments[2] + "/" + segments[3];
        const Repo* repo = readable_repo(type, id, account, res);
        if (!repo) return;
        std::string revision = hub_detail::decode(segments[5]);
        std::string commit;
        if (auto ref = repo->refs.find(revision); ref != repo->refs.end()) commit = ref->second;
        else if (repo->commits.count(revision)) commit = revision;
        if (commit.empty()) {
            hub_error(res, 404, "RevisionNotFound", "Invalid rev id: " + revision);
            return;
        }
        const auto& files = repo->commits.at(commit);
        if (segments[4] == "revision") {
            std::string siblings;
            for (const auto& [path, file] : files)
                siblings += std::string(siblings.empty() ? "" : ",") + "{\"rfilename\":\"" + path + "\"}";
            res.set_content("{\"_id\":\"x\",\"id\":\"" + repo->id + "\",\"sha\":\"" + commit +
                                "\",\"private\":false,\"siblings\":[" + siblings + "]}",
                            "application/json");
            return;
        }
        // The recursive listing: every folder once, then the files; paged by cursor.
        std::vector<std::string> items;
        std::set<std::string> folders;
        for (const auto& [path, file] : files)
            for (std::size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1))
                folders.insert(path.substr(0, slash));
        for (const auto& folder : folders)
            items.push_back("{\"type\":\"directory\",\"oid\":\"" + hub_detail::digest(EVP_sha1(), "tree:" + folder) +
                            "\",\"size\":0,\"path\":\"" + folder + "\"}");
        for (const auto& [path, file] : files) {
            std::string item =
                "{\"type\":\"file\",\"size\":" + std::to_string(file.content.size()) + ",\"path\":\"" + path + "\"";
            if (file.storage == HubStorage::git) {
                item += ",\"oid\":\"" + git_blob_sha1_of(file.content) + "\"";
            } else {
                std::string sha256 = sha256_of(file.content);
                std::string pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:" + sha256 + "\nsize " +
                                      std::to_string(file.content.size()) + "\n";
                item += ",\"oid\":\"" + git_blob_sha1_of(pointer) + "\",\"lfs\":{\"oid\":\"" + sha256 +
                        "\",\"size\":" + std::to_string(file.content.size()) +
                        ",\"pointerSize\":" + std::to_string(pointer.size()) + "}";
                if (file.storage == HubStorage::xet)
                    item += ",\"xetHash\":\"" + hub_detail::digest(EVP_sha256(), "xet:" + file.content) + "\"";
            }
            items.push_back(item + "}");
        }
        std::size_t offset = 0;
        if (req.has_param("cursor")) {
            auto cursor = tree_cursors_.find(req.get_param_value("cursor"));
            if (cursor == tree_cursors_.end()) {
                hub_error(res, 400, "", "Invalid cursor");
                return;
            }
            offset = cursor->second;
        }
        std::size_t end = std::min(items.size(), offset + tree_page_size_);
        std::string body = "[";
        for (std::size_t i = offset; i < end; ++i) body += (i > offset ? "," : "") + items[i];
        body += "]";
        if (end < items.size()) {
            std::string cursor = hub_detail::digest(EVP_sha1(), commit + "@" + std::to_string(end)).substr(0, 20);
            tree_cursors_[cursor] = end;
            res.set_header("Link", "<https://" + req.get_header_value("Host") + "/api/" + collection + "/" + repo->id +
                                       "/tree/" + segments[5] + "?recursive=true&cursor=" + cursor + ">; rel=\"next\"");
        }
        res.set_content(body, "application/json");
        if (pending_move_) {
            Repo& moved = repos_.at(pending_move_->repo_key);
            moved.refs[pending_move_->ref] = pending_move_->commit;
            pending_move_.reset();
        }
    }

    void answer_whoami(const HubToken& account, httplib::Response& res) {
        std::string orgs;
        for (const auto& org : account.orgs)
            orgs += std::string(orgs.empty() ? "" : ",") + "{\"type\":\"org\",\"name\":\"" + org + "\"}";
        std::string access =
            account.fine_grained
                ? "{\"displayName\":\"provision\",\"role\":\"fineGrained\",\"fineGrained\":{\"canReadGatedRepos\":" +
                      std::string(account.can_read_gated ? "true" : "false") +
                      ",\"global\":[\"discussion.write\"],\"scoped\":[]}}"
                : "{\"displayName\":\"provision\",\"role\":\"read\"}";
        res.set_content("{\"type\":\"user\",\"id\":\"1\",\"name\":\"" + account.user + "\",\"fullname\":\"" +
                            account.user + "\",\"orgs\":[" + orgs +
                            "],\"auth\":{\"type\":\"access_token\",\"accessToken\":" + access + "}}",
                        "application/json");
    }

    void serve_file(const Repo& repo, const HubFile& file, const httplib::Request& req, httplib::Response& res) {
        const std::string& bytes = file.served_instead ? *file.served_instead : file.content;
        if (file.storage == HubStorage::git) {
            std::string etag = "\"" + git_blob_sha1_of(file.content) + "\"";
            res.set_header("ETag", file.weak_etag ? "W/" + etag : etag);
            hub_->serve_bytes(res, req, bytes, serve_as("text/plain; charset=utf-8"));
            return;
        }
        std::string sha256 = sha256_of(file.content);
        std::string signature = hub_detail::digest(EVP_sha256(), sha256 + "#" + std::to_string(signatures_.size()));
        signatures_[signature] = false;
        auto expires =
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                .count() +
            3600;
        std::string link;
        if (file.storage == HubStorage::xet) {
            link = "https://cas-bridge.xethub.hf.co/xet-bridge-us/" +
                   hub_detail::digest(EVP_sha1(), repo.id).substr(0, 24) + "/" + sha256 +
                   "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=cas%2F20250101%2Fus-east-1%2Fs3%2Faws4_request"
                   "&X-Amz-Date=20250101T000000Z&X-Amz-Expires=3600&X-Amz-Signature=" +
                   signature + "&X-Amz-SignedHeaders=host&x-id=GetObject&Expires=" + std::to_string(expires);
            res.set_header("X-Xet-Hash", hub_detail::digest(EVP_sha256(), "xet:" + file.content));
            res.set_header("Link",
                           "<https://huggingface.co/api/models/" + repo.id + "/xet-read-token/main>; rel=\"xet-auth\"");
        } else {
            link = "https://cdn-lfs.hf.co/repos/" + sha256.substr(0, 2) + "/" + sha256.substr(2, 2) + "/" + sha256 +
                   "?response-content-disposition=attachment%3B+filename*%3DUTF-8%27%27file&Expires=" +
                   std::to_string(expires) + "&Signature=" + signature + "&Key-Pair-Id=K3RPWS32NSSJCE";
        }
        res.status = 302;
        res.set_header("Location", link);
        // The redirect's own ETag is the pointer file's git SHA-1: a client must prefer X-Linked-Etag.
        std::string pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:" + sha256 + "\nsize " +
                              std::to_string(file.content.size()) + "\n";
        res.set_header("ETag", "\"" + git_blob_sha1_of(pointer) + "\"");
        std::string linked = "\"" + sha256 + "\"";
        res.set_header("X-Linked-Etag", file.weak_etag ? "W/" + linked : linked);
        res.set_header("X-Linked-Size", std::to_string(file.content.size()));
        res.set_content("Found. Redirecting to " + link, "text/plain; charset=utf-8");
        keep_blob(sha256, file);
    }

    /// Records what the CDN serves for `sha256`. The body is shared by every
    /// response (serve_bytes would copy a string per request: 250 ms for a
    /// slice of a 64 MiB file), and made again only when the bytes served change.
    void keep_blob(const std::string& sha256, const HubFile& file) {
        auto known = blobs_.find(sha256);
        bool same =
            known != blobs_.end() && known->second.served_instead == file.served_instead && bodies_.count(sha256) > 0;
        blobs_.insert_or_assign(sha256, file);
        if (!same)
            bodies_[sha256] =
                std::make_shared<const std::string>(file.served_instead ? *file.served_instead : file.content);
    }

    /// cpp-httplib would apply a request's Range to error bodies too (and turn a
    /// 403 into a 416); ranges are ours to honour, in serve_bytes only.
    static void take_over_ranges(const httplib::Request& req) { const_cast<httplib::Request&>(req).ranges.clear(); }

    void answer_cdn(const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        take_over_ranges(req);
        res.set_header("X-Amz-Cf-Id", "cdn-" + std::to_string(++request_counter_));
        auto xml_error = [&](int status, const std::string& code, const std::string& message) {
            res.status = status;
            res.set_content("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + code + "</Code><Message>" +
                                message + "</Message></Error>",
                            "application/xml");
        };
        if (req.has_header("Authorization")) {
            xml_error(400, "InvalidArgument",
                      "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                      "Signature query string parameter or the Authorization header should be specified");
            return;
        }
        std::string signature =
            req.has_param("Signature") ? req.get_param_value("Signature") : req.get_param_value("X-Amz-Signature");
        auto issued = signatures_.find(signature);
        if (signature.empty() || issued == signatures_.end()) {
            xml_error(403, "AccessDenied", "Access denied");
            return;
        }
        if (issued->second) {
            xml_error(403, "AccessDenied", "Request has expired");
            return;
        }
        std::string raw_path = req.target.substr(0, req.target.find('?'));
        std::string sha256 = raw_path.substr(raw_path.rfind('/') + 1);
        auto blob = blobs_.find(sha256);
        if (blob == blobs_.end()) {
            xml_error(404, "NoSuchKey", "The specified key does not exist.");
            return;
        }
        cdn_->serve_bytes(res, req, bodies_.at(sha256), serve_as("binary/octet-stream"));
        if (interrupt_after_ && res.content_provider_) {
            // The links expire when the connection drops, not when it starts:
            // by then the client has the answer's headers and a megabyte of body.
            std::uint64_t limit = *interrupt_after_;
            interrupt_after_.reset();
            auto deliver = res.content_provider_;
            res.content_provider_ = [this, deliver, limit](std::size_t offset, std::size_t length,
                                                           httplib::DataSink& sink) {
                if (offset >= limit) {
                    std::lock_guard<std::mutex> expire(mutex_);
                    for (auto& [issued_signature, expired] : signatures_) expired = true;
                    return false;  // drop the connection
                }
                return deliver(offset, static_cast<std::size_t>(std::min<std::uint64_t>(length, limit - offset)), sink);
            };
        }
    }

    std::vector<std::string> hub_names_;

    mutable std::mutex mutex_;
    std::map<std::string, Repo> repos_;
    std::map<std::string, std::string> renamed_;
    std::map<std::string, HubToken> tokens_;
    std::map<std::string, HubFile> blobs_;                              ///< SHA-256 -> file, for the CDN
    std::map<std::string, std::shared_ptr<const std::string>> bodies_;  ///< SHA-256 -> the bytes the CDN serves
    std::map<std::string, bool> signatures_;                            ///< issued link signatures -> expired
    std::vector<std::string> request_ids_;
    std::uint64_t commit_counter_ = 0;
    std::uint64_t request_counter_ = 0;
    bool rate_limited_ = false;
    std::optional<std::uint64_t> interrupt_after_;
    std::size_t tree_page_size_ = 1000;
    std::map<std::string, std::size_t> tree_cursors_;  ///< opaque cursor -> offset of the page it starts
    struct PendingMove {
        std::string repo_key, ref, commit;
    };
    std::optional<PendingMove> pending_move_;

    // Last, so they stop (and no handler runs) before the state above is destroyed.
    std::unique_ptr<LoopbackServer> hub_;
    std::unique_ptr<LoopbackServer> cdn_;
};

}  // namespace provision_test

#endif
