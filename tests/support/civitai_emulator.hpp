// SPDX-License-Identifier: MIT
// provision tests: a loopback CivitAI, API and storage, answering as
// /work/shared/reference/civitai-gdrive.md (part A) describes.
//
// Two HTTPS servers signed by the test CA, reached through ConnectTo rules
// under the real host names:
//   api      civitai.com, civitai.red, www.civitai.com
//            GET /api/v1/model-versions/{id}   version details (JSON)
//            GET /api/v1/models/{id}           the model: type and modelVersions[]
//                                              in CivitAI's order (index ascending:
//                                              the first is the site's default)
//            GET /api/download/models/{id}     307 to a signed storage URL, or
//                                              the A4 error matrix (JSON for API
//                                              clients, text and page redirects
//                                              for browser User-Agents)
//            GET /login, /model-versions/{id}  HTML pages
//            every /api/* path answers 451 when region_blocked is set
//   storage  an R2 host (S3 presigned query) and b2.civitai.com (B2 token query)
//            honours Range; answers 400 (R2) or 403 (B2) to any request that
//            carries an Authorization header, as the real ones do, and refuses
//            unknown or expired signatures.
// The token is read as CivitAI reads it: the second word of Authorization,
// else ?token= (which the tests assert we never use).
#ifndef PROVISION_TEST_SUPPORT_CIVITAI_EMULATOR_HPP
#define PROVISION_TEST_SUPPORT_CIVITAI_EMULATOR_HPP

#include "loopback_server.hpp"

#include <provision/provision.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace provision_test {

/// One file of a model version.
struct CivitaiFileSpec {
    int id = 0;
    std::string name;
    std::string type = "Model";
    bool primary = false;
    std::string bytes;
    std::optional<double> size_kb;      ///< default: bytes / 1024, as CivitAI computes it
    std::optional<std::string> sha256;  ///< default: upper-case SHA-256 of bytes; "" leaves it out
};

/// One model version and how CivitAI treats downloads of it.
struct CivitaiVersionSpec {
    int id = 0;
    int model_id = 0;
    std::string model_name = "Detail Tweaker";
    std::string model_type = "LORA";
    std::string name = "v1.0";
    int index = 0;  ///< position in the model's version list; CivitAI lists index 0 first
    std::vector<CivitaiFileSpec> files;
    bool require_auth = true;                 ///< CivitAI's default today: every download needs a login
    bool downloads_disabled = false;          ///< the creator turned downloads off
    std::string early_access_until;           ///< set: Early Access until then, and nobody here bought it
    bool no_access = false;                   ///< signed in, but without an access grant
    bool archived = false;                    ///< details list no files (mode Archived); the route answers 410
    bool stale_details = false;               ///< archived, but the edge-cached details still list its files
    bool page_instead_of_file = false;        ///< the route answers 200 with an HTML page
    std::optional<std::string> details_body;  ///< served verbatim instead of the generated JSON
};

class CivitaiEmulator {
  public:
    static constexpr const char* r2_host =
        "civitai-delivery-worker-prod.5ac0637cfd0766c97916cefa3764fbdf.r2.cloudflarestorage.com";
    static constexpr const char* b2_host = "b2.civitai.com";
    static constexpr const char* token = "civitai-test-token-5f1e9c";  ///< the one valid API key
    enum class Storage { r2, b2 };

    std::atomic<bool> region_blocked{false};  ///< every /api/* path answers 451
    std::atomic<int> download_limit{1000};    ///< route hits before the limiter answers 429
    std::atomic<Storage> storage_kind{Storage::r2};
    std::atomic<bool> corrupt_storage{false};  ///< storage serves other bytes than listed

    CivitaiEmulator() {
        api_ = LoopbackServer::https({"civitai.com", "civitai.red", "www.civitai.com"});
        storage_ = LoopbackServer::https({b2_host, r2_host});  // CN is the first name; the R2 one exceeds 64 characters
        api_->on_pre_routing([this](const httplib::Request& req, httplib::Response& res) {
            if (region_blocked && req.path.compare(0, 5, "/api/") == 0) {
                res.status = 451;
                res.set_content(
                    R"({"error":"Access to this service is not available in your region due to legal restrictions.","code":"REGION_BLOCKED"})",
                    "application/json");
                return httplib::Server::HandlerResponse::Handled;
            }
            return httplib::Server::HandlerResponse::Unhandled;
        });
        api_->server().Get(R"(/api/v1/model-versions/([^/]+))",
                           [this](const httplib::Request& req, httplib::Response& res) { version_details(req, res); });
        api_->server().Get(R"(/api/v1/models/([^/]+))",
                           [this](const httplib::Request& req, httplib::Response& res) { model_details(req, res); });
        api_->server().Get(R"(/api/download/models/(\d+))",
                           [this](const httplib::Request& req, httplib::Response& res) { download_route(req, res); });
        api_->server().Get("/login", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(
                "<!DOCTYPE html><html><head><title>Sign in | Civitai</title></head><body>Sign in to "
                "continue</body></html>",
                "text/html; charset=utf-8");
        });
        api_->server().Get(R"(/model-versions/(\d+))", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(
                "<!DOCTYPE html><html><head><title>Detail Tweaker | Civitai</title></head><body>Early "
                "Access</body></html>",
                "text/html; charset=utf-8");
        });
        storage_->server().Get(
            ".*", [this](const httplib::Request& req, httplib::Response& res) { storage_object(req, res); });
    }

    void add(CivitaiVersionSpec spec) {
        std::lock_guard<std::mutex> lock(mutex_);
        int id = spec.id;
        versions_[id] = std::move(spec);
    }

    /// Routes the real host names to the two servers.
    std::vector<provision::ConnectTo> connect_to() const {
        auto to = [](const std::string& host, const LoopbackServer& server) {
            return provision::ConnectTo{host, std::nullopt, "127.0.0.1", static_cast<std::uint16_t>(server.port())};
        };
        return {to("civitai.com", *api_), to("civitai.red", *api_), to("www.civitai.com", *api_),
                to(r2_host, *storage_), to(b2_host, *storage_)};
    }

    /// Every signed URL handed out so far stops working, as after its expiry.
    void expire_signed_urls() {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& entry : signed_) entry.second.expired = true;
    }

    LoopbackServer& api() { return *api_; }
    LoopbackServer& storage() { return *storage_; }
    std::size_t route_hits() const { return api_->count("/api/download/models/"); }

    /// Upper-case hex SHA-256, as CivitAI lists it.
    static std::string upper_sha256(const std::string& bytes) {
        std::string hex = provision::detail::sha256_hex(bytes);
        for (auto& c : hex) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        return hex;
    }

  private:
    struct SignedObject {
        std::shared_ptr<const std::string> bytes;
        std::string name;
        std::string disposition;  ///< signed along with the URL: a mangled one breaks the signature
        bool expired = false;
    };

    static std::string host_of(const httplib::Request& req) {
        std::string host = req.get_header_value("Host");
        return host.substr(0, host.find(':'));
    }

    /// CivitAI's rule: the second word of Authorization; without the header, ?token=.
    static std::string token_of(const httplib::Request& req) {
        if (req.has_header("Authorization")) {
            std::string value = req.get_header_value("Authorization");
            auto space = value.find(' ');
            return space == std::string::npos ? std::string() : value.substr(space + 1);
        }
        return req.get_param_value("token");
    }

    static bool from_browser(const httplib::Request& req) {
        std::string agent = provision::detail::to_lower(req.get_header_value("User-Agent"));
        for (const char* word : {"mozilla", "chrome", "safari", "firefox", "opera", "edge"})
            if (agent.find(word) != std::string::npos) return true;
        return false;
    }

    /// JSON {"error": ...} for API clients, the bare text for browsers.
    static void refuse(const httplib::Request& req, httplib::Response& res, int status, const nlohmann::json& body) {
        res.status = status;
        if (from_browser(req)) res.set_content(body.value("error", std::string("Error")), "text/plain; charset=utf-8");
        else res.set_content(body.dump(), "application/json; charset=utf-8");
    }

    nlohmann::json details_json(const CivitaiVersionSpec& version, const std::string& host) const {
        using nlohmann::json;
        std::string route = "https://" + host + "/api/download/models/" + std::to_string(version.id);
        json files = json::array();
        if (!version.archived || version.stale_details) {
            for (const auto& file : version.files) {
                std::string sha = file.sha256.value_or(upper_sha256(file.bytes));
                json hashes = json::object();
                if (!sha.empty()) {
                    hashes["AutoV1"] = "4748A7F6";
                    hashes["AutoV2"] = sha.substr(0, std::min<std::size_t>(10, sha.size()));
                    hashes["SHA256"] = sha;
                    hashes["CRC32"] = "DAEE95B7";
                }
                json entry = {
                    {"id", file.id},
                    {"sizeKB", file.size_kb.value_or(static_cast<double>(file.bytes.size()) / 1024.0)},
                    {"name", file.name},
                    {"type", file.type},
                    {"pickleScanResult", "Success"},
                    {"pickleScanMessage", "No Pickle imports"},
                    {"virusScanResult", "Success"},
                    {"virusScanMessage", nullptr},
                    {"scannedAt", "2024-03-02T11:20:03.412Z"},
                    {"metadata", {{"format", "SafeTensor"}, {"size", "pruned"}, {"fp", "fp16"}}},
                    {"hashes", hashes},
                    {"primary", file.primary},
                    {"downloadUrl",
                     file.primary ? route
                                  : route + "?type=" + provision::percent_encode(file.type) + "&format=SafeTensor"},
                };
                files.push_back(entry);
            }
        }
        json model = {{"name", version.model_name}, {"type", version.model_type}, {"nsfw", false}, {"poi", false}};
        if (version.archived) model["mode"] = "Archived";
        json document = {
            {"id", version.id},
            {"modelId", version.model_id},
            {"name", version.name},
            {"createdAt", "2024-03-02T11:15:40.000Z"},
            {"updatedAt", "2024-03-02T11:30:12.000Z"},
            {"status", "Published"},
            {"publishedAt", "2024-03-02T11:30:12.000Z"},
            {"trainedWords", json::array({"add_detail"})},
            {"trainingStatus", nullptr},
            {"trainingDetails", nullptr},
            {"baseModel", "SD 1.5"},
            {"baseModelType", "Standard"},
            {"earlyAccessConfig", nullptr},
            {"earlyAccessEndsAt",
             version.early_access_until.empty() ? json(nullptr) : json(version.early_access_until)},
            {"description", "<p>Adds detail.</p>"},
            {"uploadType", "Created"},
            {"usageControl", "Download"},
            {"air", "urn:air:sd1:lora:civitai:" + std::to_string(version.model_id) + "@" + std::to_string(version.id)},
            {"stats", {{"downloadCount", 1207}, {"thumbsUpCount", 311}}},
            {"model", model},
            {"files", files},
            {"images", json::array()},
        };
        if (!version.archived) document["downloadUrl"] = route;
        return document;
    }

    void version_details(const httplib::Request& req, httplib::Response& res) {
        std::string id = req.matches[1];
        if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos) {
            res.status = 400;
            res.set_content(R"({"error":"Expected number, received nan"})", "application/json; charset=utf-8");
            return;
        }
        std::lock_guard<std::mutex> lock(mutex_);
        auto found = versions_.find(std::stoi(id));
        if (found == versions_.end()) {
            res.status = 404;
            res.set_content(R"({"error":"Model not found"})", "application/json; charset=utf-8");
            return;
        }
        res.set_header("Cache-Control", "public, s-maxage=60");
        if (found->second.details_body) res.set_content(*found->second.details_body, "application/json; charset=utf-8");
        else res.set_content(details_json(found->second, host_of(req)).dump(), "application/json; charset=utf-8");
    }

    /// The model, built from its versions: the name and type of the first one
    /// in CivitAI's order, and every version (archived ones included, as
    /// CivitAI lists them) with the version route's JSON shape.
    void model_details(const httplib::Request& req, httplib::Response& res) {
        std::string id = req.matches[1];
        if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos || id.size() > 9) {
            res.status = 400;
            res.set_content(R"({"error":"Expected number, received nan"})", "application/json; charset=utf-8");
            return;
        }
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<const CivitaiVersionSpec*> versions;
        for (const auto& [version_id, version] : versions_)
            if (version.model_id == std::stoi(id)) versions.push_back(&version);
        if (versions.empty()) {
            res.status = 404;
            res.set_content(nlohmann::json{{"error", "No model with id " + id}}.dump(),
                            "application/json; charset=utf-8");
            return;
        }
        std::stable_sort(versions.begin(), versions.end(),
                         [](const CivitaiVersionSpec* a, const CivitaiVersionSpec* b) { return a->index < b->index; });
        nlohmann::json list = nlohmann::json::array();
        for (const auto* version : versions) {
            nlohmann::json item = details_json(*version, host_of(req));
            item.erase("model");
            list.push_back(item);
        }
        nlohmann::json document = {{"id", std::stoi(id)},
                                   {"name", versions.front()->model_name},
                                   {"description", "<p>A model.</p>"},
                                   {"type", versions.front()->model_type},
                                   {"nsfw", false},
                                   {"poi", false},
                                   {"creator", {{"username", "someone"}, {"image", nullptr}}},
                                   {"tags", nlohmann::json::array({"detail"})},
                                   {"stats", {{"downloadCount", 1207}}},
                                   {"modelVersions", list}};
        res.set_header("Cache-Control", "public, s-maxage=300");
        res.set_content(document.dump(), "application/json; charset=utf-8");
    }

    void download_route(const httplib::Request& req, httplib::Response& res) {
        const int version_id = std::stoi(req.matches[1]);
        const bool signed_in = token_of(req) == token;
        const bool browser = from_browser(req);
        if (++route_hits_ > download_limit) {
            refuse(req, res, 429,
                   {{"error",
                     "We've noticed an unusual amount of downloading from your account. Contact "
                     "support@civitai.com or come back later."}});
            return;
        }
        std::lock_guard<std::mutex> lock(mutex_);
        auto found = versions_.find(version_id);
        if (found == versions_.end()) return refuse(req, res, 404, {{"error", "File not found"}});
        const CivitaiVersionSpec& version = found->second;
        if (version.archived) return refuse(req, res, 410, {{"error", "Model archived, not available for download"}});
        const CivitaiFileSpec* file = nullptr;
        for (const auto& candidate : version.files) {
            if (req.has_param("fileId")) {
                if (std::to_string(candidate.id) == req.get_param_value("fileId")) file = &candidate;
            } else if (req.has_param("type")) {
                if (candidate.type == req.get_param_value("type") && !file) file = &candidate;
            } else if (candidate.primary) {
                file = &candidate;
            }
        }
        if (!file) return refuse(req, res, 404, {{"error", "File not found"}});
        if (version.downloads_disabled) {
            res.status = 401;  // always JSON, whatever the agent
            res.set_content(
                R"({"error":"Unauthorized","message":"The creator of this asset has disabled downloads on this file"})",
                "application/json; charset=utf-8");
            return;
        }
        if (version.require_auth && !signed_in) {
            if (browser) {
                res.status = 307;
                res.set_header("Location", "/login?returnUrl=%2Fmodel-versions%2F" + std::to_string(version_id) +
                                               "&reason=download-auth");
                return;
            }
            return refuse(req, res, 401,
                          {{"error", "Unauthorized"},
                           {"message", "The creator of this asset requires you to be logged in to download it"}});
        }
        if (!version.early_access_until.empty()) {
            if (browser) {
                res.status = 307;
                res.set_header("Location", "/model-versions/" + std::to_string(version_id));
                return;
            }
            return refuse(req, res, 403,
                          {{"error", "Early Access"},
                           {"deadline", version.early_access_until},
                           {"message", "This asset is in Early Access. You can use Buzz access it now!"}});
        }
        if (version.no_access)
            return refuse(req, res, 403, {{"error", "You do not have access to download this file"}});
        if (version.page_instead_of_file) {
            res.set_content(
                "<!DOCTYPE html><html><head><title>Civitai | Maintenance</title></head><body>Back soon</body></html>",
                "text/html; charset=utf-8");
            return;
        }
        res.status = 307;
        res.set_header("Cache-Control", "no-store, max-age=0");
        res.set_header("Location", sign(*file));
    }

    /// A fresh signed URL for a file, in the style of the current storage backend.
    std::string sign(const CivitaiFileSpec& file) {
        std::string signature = provision::detail::sha256_hex(file.name + std::to_string(++signatures_issued_));
        std::string disposition_value = "attachment; filename=\"" + file.name + "\"";
        signed_[signature] =
            SignedObject{std::make_shared<const std::string>(file.bytes), file.name, disposition_value, false};
        std::string disposition = provision::percent_encode(disposition_value);
        std::string key = "model/" + std::to_string(file.id) + "/" + provision::percent_encode(file.name);
        if (storage_kind == Storage::b2)
            return std::string("https://") + b2_host + "/file/civitai-modelfiles/" + key +
                   "?Authorization=" + signature + "&b2ContentDisposition=" + disposition;
        return std::string("https://") + r2_host + "/" + key +
               "?X-Amz-Expires=86400&response-content-disposition=" + disposition +
               "&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=e1ff2a7b%2F20240302%2Fus-east-1%2Fs3%2Faws4_request"
               "&X-Amz-Date=20240302T113500Z&X-Amz-SignedHeaders=host&X-Amz-Signature=" +
               signature;
    }

    void storage_object(const httplib::Request& req, httplib::Response& res) {
        const bool b2 = host_of(req) == b2_host;
        if (req.has_header("Authorization")) {  // what R2 and B2 do when a client forwards a bearer token
            if (b2) {
                res.status = 403;
                res.set_content(R"({"code":"access_denied","message":"","status":403})", "application/json");
            } else {
                res.status = 400;
                res.set_content(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidRequest</Code><Message>Missing "
                    "x-amz-content-sha256</Message></Error>",
                    "application/xml");
            }
            return;
        }
        std::string signature = req.get_param_value(b2 ? "Authorization" : "X-Amz-Signature");
        SignedObject object;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto found = signed_.find(signature);
            std::string disposition = req.get_param_value(b2 ? "b2ContentDisposition" : "response-content-disposition");
            if (found == signed_.end() || found->second.expired || disposition != found->second.disposition) {
                if (b2) {
                    res.status = 401;
                    res.set_content(
                        R"({"code":"expired_auth_token","message":"Authorization token has expired","status":401})",
                        "application/json");
                } else {
                    res.status = 403;
                    res.set_content(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Request "
                        "has expired</Message></Error>",
                        "application/xml");
                }
                return;
            }
            object = found->second;
        }
        res.set_header("Content-Disposition", "attachment; filename=\"" + object.name + "\"");
        res.set_header("ETag", "\"" + provision::detail::sha256_hex(*object.bytes).substr(0, 32) + "\"");
        if (corrupt_storage) {
            std::string other = *object.bytes;
            if (!other.empty()) other[other.size() / 2] ^= 0x5a;
            storage_->serve_bytes(res, req, std::move(other));
        } else {
            storage_->serve_bytes(res, req, object.bytes);
        }
    }

    std::mutex mutex_;
    std::map<int, CivitaiVersionSpec> versions_;
    std::map<std::string, SignedObject> signed_;
    std::atomic<int> route_hits_{0};
    int signatures_issued_ = 0;
    // Last, so they stop (and finish their handlers) before the state above goes away.
    std::unique_ptr<LoopbackServer> api_;
    std::unique_ptr<LoopbackServer> storage_;
};

}  // namespace provision_test

#endif
