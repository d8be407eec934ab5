// SPDX-License-Identifier: MIT
// provision: reading CivitAI's answers: the model-version JSON, its files,
// and the error bodies of the API and download routes.
//
// The JSON is untrusted and changes over time, so every field is checked
// before use and an odd one becomes an explained error; nothing here throws.
#ifndef PROVISION_SOURCES_CIVITAI_API_HPP
#define PROVISION_SOURCES_CIVITAI_API_HPP

#include "../../config/config.hpp"
#include "../../error.hpp"
#include "../../http/client.hpp"
#include "../../config/civitai_link.hpp"
#include "../../http/probe.hpp"

#include "../../support/bounded_json.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace provision {
namespace detail {

/// Where CIVITAI_TOKEN may go: https API routes of CivitAI's own hosts. Not
/// its storage (b2.civitai.com), not other hosts, never in a query string.
inline bool may_carry_civitai_token(const Url& url) {
    return url.is_https() && is_civitai_host(url.host) && starts_with(url.path, "/api/");
}

/// Exact bytes from CivitAI's `sizeKB` (KiB as a double), or nullopt.
///
/// CivitAI computes sizeKB = bytes / 1024, which a double holds exactly, so
/// sizeKB * 1024 is then a whole number. A value that does not give whole
/// bytes was rounded somewhere and is useless as a length. A whole-KiB value
/// is ambiguous (exact, or rounded to a whole KiB), so it is not used either:
/// a wrong expected size would fail a download whose SHA-256 is fine.
inline std::optional<std::uint64_t> civitai_size_bytes(double size_kb) {
    if (!std::isfinite(size_kb) || size_kb <= 0 || size_kb > 8.0e15 / 1024) return std::nullopt;
    if (std::floor(size_kb) == size_kb) return std::nullopt;
    double bytes = size_kb * 1024.0;
    if (std::floor(bytes) != bytes) return std::nullopt;
    return static_cast<std::uint64_t>(bytes);
}

/// The parts of one files[] entry we use.
struct CivitaiFile {
    std::string id;    ///< ModelFile id (digits): the download route's fileId
    std::string name;  ///< the name CivitAI serves the file under (untrusted)
    std::string type;  ///< "Model", "VAE", "Pruned Model", ... ("" when absent)
    bool primary = false;
    std::optional<double> size_kb;
    std::string sha256;  ///< lower-case hex, or "" when CivitAI lists none
};

/// The parts of /api/v1/model-versions/{id} we use.
struct CivitaiVersion {
    std::string model_name;
    std::string model_mode;  ///< "Archived" or "TakenDown" when moderated, else ""
    std::string model_type;  ///< the ModelType: "Checkpoint", "LORA", "LoCon", "TextualInversion", ... ("" when absent)
    std::vector<CivitaiFile> files;
};

/// A positive integer id, as a number or a string of digits; "" otherwise.
inline std::string civitai_json_id(const nlohmann::json& value) {
    if (value.is_number_unsigned()) {
        auto id = value.get<std::uint64_t>();
        return id > 0 ? std::to_string(id) : std::string();
    }
    if (value.is_number_integer()) {
        auto id = value.get<std::int64_t>();
        return id > 0 ? std::to_string(id) : std::string();
    }
    if (value.is_string()) {
        const auto& text = value.get_ref<const std::string&>();
        bool digits = !text.empty() && text.size() < 20;
        for (unsigned char c : text) digits = digits && std::isdigit(c);
        if (digits && text.find_first_not_of('0') != std::string::npos) return text;
    }
    return "";
}

/// A string member, or "" when it is absent or not a string.
inline std::string civitai_json_string(const nlohmann::json& object, const char* key) {
    auto found = object.find(key);
    return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
}

/// Reads the version JSON. Messages say what is odd (the caller names the entry).
inline Result<CivitaiVersion> parse_civitai_version(std::string_view text) {
    try {
        bool too_large = false;
        nlohmann::json document = parse_api_json(text, &too_large);
        if (document.is_discarded())
            return make_error(errc::network,
                              too_large ? "the answer is far larger or deeper than any version CivitAI describes"
                                        : "the answer is not valid JSON");
        if (!document.is_object()) return make_error(errc::network, "the answer is not a JSON object");
        CivitaiVersion version;
        if (auto model = document.find("model"); model != document.end() && model->is_object()) {
            version.model_name = civitai_json_string(*model, "name");
            version.model_mode = civitai_json_string(*model, "mode");
            version.model_type = civitai_json_string(*model, "type");
        }
        auto files = document.find("files");
        if (files == document.end() || files->is_null()) return version;  // archived versions may drop it
        if (!files->is_array()) return make_error(errc::network, "its \"files\" is not a list");
        for (std::size_t i = 0; i < files->size(); ++i) {
            const nlohmann::json& item = (*files)[i];
            std::string where = "files[" + std::to_string(i) + "]";
            if (!item.is_object()) return make_error(errc::network, where + " is not an object");
            CivitaiFile file;
            if (auto id = item.find("id"); id != item.end()) file.id = civitai_json_id(*id);
            if (file.id.empty()) return make_error(errc::network, where + " has no usable \"id\"");
            where += " (id " + file.id + ")";
            file.name = civitai_json_string(item, "name");
            if (file.name.empty()) return make_error(errc::network, where + " has no \"name\"");
            file.type = civitai_json_string(item, "type");
            if (auto primary = item.find("primary"); primary != item.end() && primary->is_boolean())
                file.primary = primary->get<bool>();
            if (auto size = item.find("sizeKB"); size != item.end() && size->is_number())
                file.size_kb = size->get<double>();
            if (auto hashes = item.find("hashes"); hashes != item.end() && hashes->is_object()) {
                for (auto hash = hashes->begin(); hash != hashes->end(); ++hash) {
                    if (!iequals(hash.key(), "SHA256") || hash->is_null()) continue;
                    std::string digest =
                        hash->is_string() ? std::string(trim(hash->get<std::string>())) : std::string();
                    if (!is_hex_of_length(digest, 64))
                        return make_error(errc::network,
                                          where + " has a malformed hashes.SHA256 (expected 64 hexadecimal digits)");
                    file.sha256 = to_lower(digest);  // CivitAI writes upper case; we compare lower case
                }
            }
            version.files.push_back(std::move(file));
        }
        return version;
    } catch (const std::exception& e) {
        return make_error(errc::network, std::string("the answer could not be read: ") + e.what());
    }
}

/// The parts of /api/v1/models/{id} we use.
struct CivitaiModel {
    std::string name;
    std::string type;                      ///< the ModelType, as in CivitaiVersion::model_type
    std::vector<std::string> version_ids;  ///< published versions in CivitAI's order: the first is the site's default
};

/// Reads the model JSON. Messages say what is odd (the caller names the entry).
inline Result<CivitaiModel> parse_civitai_model(std::string_view text) {
    bool too_large = false;
    nlohmann::json document = parse_api_json(text, &too_large);
    if (document.is_discarded())
        return make_error(errc::network, too_large
                                             ? "the answer is far larger or deeper than any model CivitAI describes"
                                             : "the answer is not valid JSON");
    if (!document.is_object()) return make_error(errc::network, "the answer is not a JSON object");
    CivitaiModel model;
    model.name = civitai_json_string(document, "name");
    model.type = civitai_json_string(document, "type");
    auto versions = document.find("modelVersions");
    if (versions == document.end() || versions->is_null()) return model;
    if (!versions->is_array()) return make_error(errc::network, "its \"modelVersions\" is not a list");
    for (std::size_t i = 0; i < versions->size(); ++i) {
        const nlohmann::json& item = (*versions)[i];
        std::string id = item.is_object() && item.contains("id") ? civitai_json_id(item["id"]) : std::string();
        if (id.empty())
            return make_error(errc::network, "modelVersions[" + std::to_string(i) + "] has no usable \"id\"");
        model.version_ids.push_back(id);
    }
    return model;
}

/// "123 \"a.safetensors\" (Model, primary), 124 \"vae.pt\" (VAE)" for messages.
inline std::string describe_civitai_files(const std::vector<CivitaiFile>& files) {
    std::string out;
    for (const auto& file : files) {
        if (!out.empty()) out += ", ";
        out += file.id + " \"" + excerpt(file.name, 80) + "\" (" + (file.type.empty() ? "no type" : file.type) +
               (file.primary ? ", primary" : "") + ")";
    }
    return out;
}

/// The file an entry asks for: file_id, else type (primary among equals first),
/// else the primary file. `who` names the entry and version.
inline Result<CivitaiFile> pick_civitai_file(const CivitaiVersion& version, const Entry& entry,
                                             const std::string& who) {
    const auto& files = version.files;
    if (files.empty()) return make_error(errc::not_found, who + " lists no downloadable files");
    if (!entry.file_id.empty()) {
        for (const auto& file : files) {
            if (file.id != entry.file_id) continue;
            if (!entry.file_type.empty() && !iequals(file.type, entry.file_type))
                return make_error(errc::config, who + ": file_id " + entry.file_id + " is a \"" + file.type +
                                                    "\" file, but the entry asks for type = \"" + entry.file_type +
                                                    "\"; remove one of the two");
            return file;
        }
        return make_error(errc::not_found, who + " has no file with file_id " + entry.file_id +
                                               "; its files are: " + describe_civitai_files(files));
    }
    if (!entry.file_type.empty()) {
        const CivitaiFile* chosen = nullptr;
        for (const auto& file : files)
            if (iequals(file.type, entry.file_type) && (!chosen || (file.primary && !chosen->primary))) chosen = &file;
        if (chosen) return *chosen;
        return make_error(errc::not_found, who + " has no file of type \"" + entry.file_type + "\"; its files are: " +
                                               describe_civitai_files(files) + " (pick one with type or file_id)");
    }
    for (const auto& file : files)
        if (file.primary) return file;
    for (const auto& file : files)
        if (file.type == "Model") return file;
    return files.front();
}

/// What a CivitAI error body says: JSON {"error","message","deadline"} from
/// API clients, plain text for browser agents, an HTML page from the edge.
struct CivitaiErrorBody {
    std::string error;
    std::string message;
    std::string deadline;
    std::string text;  ///< the body when it is not JSON, as an excerpt
    bool html = false;

    bool mentions(std::string_view words) const {
        auto has = [&](const std::string& in) { return to_lower(in).find(to_lower(words)) != std::string::npos; };
        return has(error) || has(message) || has(text);
    }
    /// The server's own words, for a message: "Unauthorized: The creator ...".
    std::string summary() const {
        std::string out = error;
        if (!message.empty()) out += (out.empty() ? "" : ": ") + message;
        if (out.empty() && !html) out = text;
        return excerpt(out);
    }
};

inline CivitaiErrorBody parse_civitai_error(const HttpResponse& response) {
    CivitaiErrorBody body;
    std::string content_type = to_lower(response.header("Content-Type").value_or(""));
    body.html = content_type.find("html") != std::string::npos;
    try {
        auto document = parse_api_json(response.body);
        if (document.is_object()) {
            body.error = civitai_json_string(document, "error");
            body.message = civitai_json_string(document, "message");
            body.deadline = civitai_json_string(document, "deadline");
            return body;
        }
    } catch (const std::exception&) {
    }
    body.text = excerpt(response.body);
    return body;
}

/// Which CivitAI route answered.
enum class CivitaiRoute { version_details, model_details, download };

/// Explains a CivitAI answer that is neither the data nor the file. `who`
/// names the entry and version; `token_sent` says whether CIVITAI_TOKEN went along.
inline Error explain_civitai_answer(const std::string& who, CivitaiRoute route, const HttpResponse& response,
                                    bool token_sent) {
    auto body = parse_civitai_error(response);
    const std::string http_status = "HTTP " + std::to_string(response.status);
    std::string said = body.summary();
    std::string quoted = said.empty() ? http_status : http_status + ": \"" + said + "\"";
    const char* key_page = "https://civitai.com/user/account";
    switch (response.status) {
    case 400:
        return make_error(errc::config,
                          who + ": CivitAI rejected the request (" + quoted + "); check version_id and file_id");
    case 401:
        if (body.mentions("disabled downloads"))
            return make_error(errc::auth, who + ": the creator has disabled downloads of this file (" + quoted +
                                              "); no token changes that: choose another version or model");
        if (token_sent)
            return make_error(errc::auth,
                              who + ": CivitAI did not accept CIVITAI_TOKEN (" + http_status +
                                  "; an invalid or expired key counts as not logged in) and the creator requires a "
                                  "login to download it; create a new API key at " +
                                  key_page + " and set CIVITAI_TOKEN to it");
        return make_error(errc::auth, who + ": the creator requires a login to download it (" + http_status +
                                          "); create an API key at " + key_page + " and set CIVITAI_TOKEN to it");
    case 403:
        if (body.mentions("early access")) {
            std::string until = body.deadline.empty() ? "" : " until " + excerpt(body.deadline, 40);
            return make_error(errc::auth,
                              who + ": the version is in Early Access" + until + " (" + http_status +
                                  "): only accounts that bought access can download it now; buy access on "
                                  "civitai.com and set CIVITAI_TOKEN to that account's API key, or wait until it ends");
        }
        if (body.mentions("do not have access"))
            return make_error(errc::auth,
                              who + ": " + (token_sent ? "the account behind CIVITAI_TOKEN" : "an anonymous download") +
                                  " has no access to this file (" + quoted + "); " +
                                  (token_sent ? "use the API key of an account that has access"
                                              : "set CIVITAI_TOKEN to the API key of an account that has access"));
        if (body.html)
            return make_error(errc::network, who +
                                                 ": CivitAI's edge (Cloudflare) blocked the request with a web page (" +
                                                 http_status + "); try again later");
        return make_error(errc::auth, who + ": CivitAI refuses downloads from this account or address (" + quoted +
                                          "); contact support@civitai.com if that is unexpected");
    case 404:
        if (route == CivitaiRoute::model_details)
            return make_error(errc::not_found,
                              who + " does not exist on CivitAI (" + quoted +
                                  "); check the model id: it is the number after /models/ in the model page's URL");
        if (route == CivitaiRoute::version_details)
            return make_error(errc::not_found,
                              who + " does not exist on CivitAI (" + quoted +
                                  "); check version_id: it is the number after ?modelVersionId= in the "
                                  "model page's URL, not the model id");
        return make_error(errc::not_found, who + ": CivitAI has no downloadable file for it (" + quoted +
                                               "): the version or file is unpublished, deleted or unavailable; check "
                                               "version_id and file_id, or try again later");
    case 410:
        return make_error(errc::not_found,
                          who + ": the model is archived on CivitAI and no longer available for download (" + quoted +
                              "); choose another model or version");
    case 429:
        return make_error(errc::rate_limited, who +
                                                  ": CivitAI is rate limiting requests from this account or address (" +
                                                  quoted + "); wait and run provision again later");
    case 451:
        return make_error(errc::auth, who + ": CivitAI is not available from this machine's region (" + http_status +
                                          ", legal restrictions); run provision from a machine in another region");
    default:
        if (response.status >= 500)
            return make_error(errc::network, who + ": CivitAI had a server error (" + quoted + "); try again later");
        return make_error(errc::network, who + ": CivitAI answered " + quoted);
    }
}

}  // namespace detail
}  // namespace provision

#endif
