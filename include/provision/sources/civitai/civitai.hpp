// SPDX-License-Identifier: MIT
// provision: civitai entries -> download plans.
//
// Two requests resolve an entry: the version's details (which file, its name,
// SHA-256 and size), then the download route with ?fileId=, whose 307 points
// at a short-lived signed URL on the storage host (Cloudflare R2 or Backblaze
// B2). We read that redirect here instead of letting the downloader follow it:
//   - the download route's refusals (login required, downloads disabled, early
//     access, archived, rate limited, ...) differ only in their JSON body,
//     which a resolver reads; a plan's explain() sees status and headers only;
//   - CIVITAI_TOKEN must reach CivitAI's API routes and nothing else (R2
//     answers 400 and B2 403 when it leaks): the plan holds the signed URL and
//     no credentials at all;
//   - every hit on the route counts against CivitAI's download limiter, so a
//     transfer's segments and retries go to the signed URL, and only an
//     expired one is exchanged again, through the route (plan.refresh).
// The price is one route request per resolution, also in a dry run, which is
// what lets a dry run report a missing login before anything is downloaded.
#ifndef PROVISION_SOURCES_CIVITAI_CIVITAI_HPP
#define PROVISION_SOURCES_CIVITAI_CIVITAI_HPP

#include "../../config/config.hpp"
#include "api.hpp"
#include "../../layout/file_name.hpp"
#include "../../http/probe.hpp"
#include "../../plan.hpp"

#include <memory>
#include <string>
#include <vector>

namespace provision {
namespace detail {

/// What it takes to exchange the download route for a signed URL, again and again.
struct CivitaiDownloadRoute {
    HttpClient* http = nullptr;  ///< must outlive the plan's refresh
    Url route;                   ///< https://civitai.com/api/download/models/{version}?fileId={file}
    std::string token;           ///< CIVITAI_TOKEN; sent only where may_carry_civitai_token()
    std::string who;             ///< "models.lora.x: CivitAI version 123", for messages
    DownloadPlan base;           ///< everything but url, credentials and refresh
};

inline std::vector<Header> civitai_credentials(const Url& url, const std::string& token) {
    if (token.empty() || !may_carry_civitai_token(url)) return {};
    return {{"Authorization", "Bearer " + token}};
}

/// A text, JSON or HTML body: never a model.
inline bool is_document_content_type(const HttpResponse& response) {
    std::string type = to_lower(response.header("Content-Type").value_or(""));
    return starts_with(type, "text/") || type.find("json") != std::string::npos ||
           type.find("html") != std::string::npos || type.find("xml") != std::string::npos;
}

inline bool is_browser_user_agent(std::string_view agent) {
    std::string lower = to_lower(agent);
    for (const char* word : {"mozilla", "chrome", "safari", "firefox", "opera", "edge"})
        if (lower.find(word) != std::string::npos) return true;
    return false;
}

/// Explains a failure of the transfer itself (the signed storage URL, or the
/// route when it served the file directly).
inline Error explain_civitai_transfer(const std::string& who, bool token_sent, const HttpResponse& response) {
    if (may_carry_civitai_token(response.url))
        return explain_civitai_answer(who, CivitaiRoute::download, response, token_sent);
    std::string where =
        who + ": the file storage " + response.url.host + " answered HTTP " + std::to_string(response.status);
    switch (response.status) {
    case 400:
    case 401:
    case 403:
        return make_error(errc::network, where +
                                             " to the signed download link CivitAI handed out; the link has probably "
                                             "expired: run provision again for a fresh one");
    case 404:
    case 410:
        return make_error(errc::not_found,
                          where +
                              ": it no longer has the file; run provision again, and check the version "
                              "on civitai.com if this persists");
    case 429: return make_error(errc::rate_limited, where + " (too many requests); wait and try again later");
    default: return make_error(errc::network, where + "; try again later");
    }
}

/// Asks the download route for the file and turns its answer into a plan.
inline Result<DownloadPlan> redeem_civitai_route(const std::shared_ptr<const CivitaiDownloadRoute>& route) {
    const std::string& who = route->who;
    const bool browser_agent = is_browser_user_agent(route->http->options().user_agent);
    const std::string agent_hint = browser_agent
                                       ? " (the configured User-Agent looks like a browser's, which makes CivitAI "
                                         "answer with web pages instead of errors)"
                                       : "";
    auto finish = [&](Url url) {
        DownloadPlan plan = route->base;
        plan.scoped_headers = civitai_credentials(url, route->token);
        plan.url = std::move(url);
        plan.refresh = [route] { return redeem_civitai_route(route); };
        return plan;
    };
    auto is_file = [](const HttpResponse& response) {
        return response.status >= 200 && response.status < 300 && !is_document_content_type(response);
    };
    Url current = route->route;
    for (int hop = 0; hop < 5; ++hop) {
        HttpRequest request;
        request.url = current;
        request.redirects = RedirectPolicy::none;
        request.scoped_headers = civitai_credentials(current, route->token);
        const bool token_sent = !request.scoped_headers.empty();
        auto probed = probe(*route->http, request, is_file, 256 * 1024);
        if (!probed) return make_error(probed.error().code, who + ": " + probed.error().message);
        const HttpResponse& response = probed->response;
        if (probed->payload) return finish(current);  // the route serves the file itself; rare, but fine
        if (!response.is_redirect()) {
            if (response.status >= 200 && response.status < 300)
                return make_error(errc::integrity,
                                  who + ": CivitAI answered the download with a document (" +
                                      response.header("Content-Type").value_or("no content type") +
                                      ") instead of the model file; nothing was saved. Try again later; if "
                                      "it persists, open the version on civitai.com to see why" +
                                      agent_hint);
            return explain_civitai_answer(who, CivitaiRoute::download, response, token_sent);
        }
        auto location = response.header("Location");
        if (!location)
            return make_error(errc::network, who + ": CivitAI answered HTTP " + std::to_string(response.status) +
                                                 " without a Location");
        auto target = resolve_reference(response.url, *location);
        if (!target)
            return make_error(errc::network,
                              who + ": CivitAI redirected to an unusable address: " + target.error().message);
        const std::string& host = target->host;
        bool site_page = (host == "civitai.com" || host == "civitai.red" || host == "www.civitai.com" ||
                          host == "www.civitai.red") &&
                         !starts_with(target->path, "/api/");
        if (site_page && starts_with(target->path, "/login"))
            return make_error(
                errc::auth,
                who +
                    ": CivitAI sent the download to its login page (reason=download-auth): the "
                    "creator requires a login" +
                    (token_sent ? std::string(" and CIVITAI_TOKEN was not accepted; create a new API key at "
                                              "https://civitai.com/user/account and set CIVITAI_TOKEN to it")
                                : std::string("; create an API key at https://civitai.com/user/account "
                                              "and set CIVITAI_TOKEN to it")) +
                    agent_hint);
        if (site_page)
            return make_error(errc::auth,
                              who + ": CivitAI sent the download to the web page " + target->path +
                                  " instead of the file: the version is probably in Early Access or needs access "
                                  "this account lacks; check it on civitai.com and set CIVITAI_TOKEN to the API "
                                  "key of an account that has access" +
                                  agent_hint);
        if (!target->is_https())
            return make_error(errc::unsafe, who + ": CivitAI redirected the download to the unencrypted " +
                                                target->redacted() + "; refusing it");
        if (may_carry_civitai_token(target.value())) {  // another API hop (e.g. civitai.com -> civitai.red)
            current = std::move(target).value();
            continue;
        }
        return finish(std::move(target).value());  // the signed storage URL: no credentials go there
    }
    return make_error(errc::network, who + ": CivitAI's download route kept redirecting; try again later");
}

}  // namespace detail

namespace sources {
namespace civitai {

/// The API root for an entry: the site its link named (civitai.red answers for
/// its own links), else the configured endpoint; without trailing '/'.
inline std::string endpoint_for(const Entry& entry, const ResolveContext& context) {
    std::string endpoint = entry.civitai_site.empty() ? context.civitai_endpoint : entry.civitai_site;
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    return endpoint;
}

/// CIVITAI_TOKEN trimmed, or an error when it cannot go in a header.
inline Result<std::string> token_of(const ResolveContext& context, const std::string& who) {
    std::string token(detail::trim(context.credentials.civitai_token));
    for (unsigned char c : token)
        if (c < 0x20 || c == 0x7f)
            return make_error(
                errc::usage,
                who + ": CIVITAI_TOKEN contains a line break or control character; set it to the API key alone");
    return token;
}

/// GET of a CivitAI API route (JSON, token attached); the 200 answer or an explained error.
inline Result<HttpResponse> fetch_api(ResolveContext& context, const std::string& endpoint, const std::string& path,
                                      const std::string& token, const std::string& who, detail::CivitaiRoute route) {
    auto url = parse_url(endpoint + path);
    if (!url)
        return make_error(errc::usage,
                          who + ": the CivitAI endpoint \"" + redact_url(endpoint) + "\" is not an http(s) URL");
    HttpRequest request;
    request.url = url.value();
    request.headers.emplace_back("Accept", "application/json");
    request.scoped_headers = detail::civitai_credentials(request.url, token);
    request.redirects = RedirectPolicy::relative_only;
    const bool token_sent = !request.scoped_headers.empty();
    auto probed = detail::probe(context.http, request, nullptr, 8u << 20);
    if (!probed) return make_error(probed.error().code, who + ": " + probed.error().message);
    const HttpResponse& response = probed->response;
    const char* what = route == detail::CivitaiRoute::model_details ? "the model's details" : "the version's details";
    if (response.is_redirect())
        return make_error(errc::network, who + ": CivitAI redirected " + what + " elsewhere (HTTP " +
                                             std::to_string(response.status) + "); check the CivitAI endpoint");
    if (response.status != 200) return detail::explain_civitai_answer(who, route, response, token_sent);
    if (probed->truncated)
        return make_error(errc::network, who + ": CivitAI's answer about it is unexpectedly large (over 8 MiB)");
    std::string content_type = detail::to_lower(response.header("Content-Type").value_or(""));
    if (content_type.find("html") != std::string::npos)
        return make_error(errc::network, who + ": CivitAI answered with a web page instead of " + what +
                                             " (often a "
                                             "Cloudflare check); try again later");
    return response;
}

/// /api/v1/models/{id}: the model's type and its versions, the site's default first.
inline Result<detail::CivitaiModel> fetch_model(const Entry& entry, ResolveContext& context) {
    const std::string who = entry.key_path + ": CivitAI model " + entry.model_id;
    auto token = token_of(context, who);
    if (!token) return token.error();
    auto response = fetch_api(context, endpoint_for(entry, context), "/api/v1/models/" + entry.model_id, token.value(),
                              who, detail::CivitaiRoute::model_details);
    if (!response) return response.error();
    auto model = detail::parse_civitai_model(response->body);
    if (!model)
        return make_error(model.error().code, who +
                                                  ": CivitAI's answer about it is unusable: " + model.error().message +
                                                  "; try again later, and report it if it persists");
    if (model->version_ids.empty())
        return make_error(errc::not_found,
                          who + " (\"" + detail::excerpt(model->name, 80) +
                              "\") has no published version to download; check the model on civitai.com");
    return model;
}

/// The category a CivitAI model type goes to ([models.auto]), or nullptr for a
/// type no UI has a models folder for. Names are the layouts' categories, so
/// each UI's folder comes from the active layout (LoCon -> lycoris, which is
/// Lora for SD.Next and ComfyUI).
inline const char* category_for_type(std::string_view type) {
    struct Pair {
        const char* type;
        const char* category;
    };
    static const Pair table[] = {
        {"Checkpoint", "checkpoints"},
        {"LORA", "lora"},
        {"DoRA", "lora"},
        {"LoCon", "lycoris"},
        {"TextualInversion", "embeddings"},
        {"Hypernetwork", "hypernetworks"},
        {"VAE", "vae"},
        {"Controlnet", "controlnet"},
        {"Upscaler", "upscale"},
        {"MotionModule", "motion"},
        {"TextEncoder", "text_encoder"},
        {"CLIP", "text_encoder"},
        {"UNet", "unet"},
        {"CLIPVision", "clip_vision"},
    };
    for (const auto& pair : table)
        if (detail::iequals(pair.type, type)) return pair.category;
    return nullptr;
}

}  // namespace civitai

/// For an entry under [models.auto]: asks CivitAI for the model's type and
/// returns the entry with the category that type goes to (and its version
/// pinned, so the download is the version whose type was read).
inline Result<Entry> place_civitai_entry(const Entry& entry, ResolveContext& context) {
    Entry placed = entry;
    std::string type, model_name;
    if (placed.version_id.empty()) {
        auto model = civitai::fetch_model(placed, context);
        if (!model) return model.error();
        placed.version_id = model->version_ids.front();
        type = model->type;
        model_name = model->name;
    } else {
        const std::string who = entry.key_path + ": CivitAI version " + entry.version_id;
        auto token = civitai::token_of(context, who);
        if (!token) return token.error();
        auto response = civitai::fetch_api(context, civitai::endpoint_for(entry, context),
                                           "/api/v1/model-versions/" + entry.version_id, token.value(), who,
                                           detail::CivitaiRoute::version_details);
        if (!response) return response.error();
        auto version = detail::parse_civitai_version(response->body);
        if (!version)
            return make_error(version.error().code,
                              who + ": CivitAI's answer about it is unusable: " + version.error().message);
        type = version->model_type;
        model_name = version->model_name;
    }
    const char* category = civitai::category_for_type(type);
    if (!category)
        return make_error(errc::config,
                          entry.key_path + ": CivitAI says \"" + detail::excerpt(model_name, 80) +
                              "\" is a model of type \"" +
                              detail::excerpt(type.empty() ? std::string("(none)") : type, 40) +
                              "\", which [models.auto] cannot place (it knows Checkpoint, LORA, DoRA, LoCon, "
                              "TextualInversion, Hypernetwork, VAE, Controlnet, Upscaler, MotionModule, "
                              "TextEncoder, CLIP, UNet and CLIPVision); move the entry under [models.<category>] "
                              "to choose its folder");
    placed.category = category;
    return placed;
}

/// Resolves a civitai entry: picks the file, learns its name, size and
/// SHA-256, and exchanges the download route for a signed storage URL.
inline Result<DownloadPlan> resolve_civitai(const Entry& given, ResolveContext& context) {
    Entry entry = given;
    if (entry.version_id.empty() && !entry.model_id.empty()) {  // a model: its default (first listed) version
        auto model = civitai::fetch_model(entry, context);
        if (!model) return model.error();
        entry.version_id = model->version_ids.front();
    }
    const std::string& version_id = entry.version_id;
    bool digits = !version_id.empty() && version_id.size() <= 19;
    for (unsigned char c : version_id) digits = digits && std::isdigit(c);
    if (!digits)
        return make_error(errc::config, entry.key_path +
                                            ": version_id must be the number of a CivitAI model version (the "
                                            "number after ?modelVersionId= in the model page's URL)");
    const std::string who = entry.key_path + ": CivitAI version " + version_id;

    auto checked_token = civitai::token_of(context, who);
    if (!checked_token) return checked_token.error();
    const std::string token = checked_token.value();
    const std::string endpoint = civitai::endpoint_for(entry, context);
    auto route_url = parse_url(endpoint + "/api/download/models/" + version_id);
    if (!route_url)
        return make_error(errc::usage,
                          who + ": the CivitAI endpoint \"" + redact_url(endpoint) + "\" is not an http(s) URL");

    // 1. The version's details.
    auto response = civitai::fetch_api(context, endpoint, "/api/v1/model-versions/" + version_id, token, who,
                                       detail::CivitaiRoute::version_details);
    if (!response) return response.error();
    const bool token_sent = !detail::civitai_credentials(response->url, token).empty();
    auto version = detail::parse_civitai_version(response->body);
    if (!version)
        return make_error(version.error().code,
                          who + ": CivitAI's answer about it is unusable: " + version.error().message +
                              "; try again later, and report it if it persists");

    // 2. Which file, and what it must be.
    if (version->files.empty()) {
        std::string model = version->model_name.empty()
                                ? "the model"
                                : "the model \"" + detail::excerpt(version->model_name, 80) + "\"";
        if (version->model_mode == "Archived")
            return make_error(errc::not_found, who + ": " + model +
                                                   " is archived on CivitAI and its files are no longer "
                                                   "available for download; choose another model or version");
        if (version->model_mode == "TakenDown")
            return make_error(errc::not_found,
                              who + ": " + model + " was taken down on CivitAI; its files cannot be downloaded");
        return make_error(errc::not_found,
                          who + " lists no downloadable files; check version_id, or choose another version");
    }
    auto file = detail::pick_civitai_file(version.value(), entry, who);
    if (!file) return file.error();
    if (!entry.sha256.empty() && !file->sha256.empty() && entry.sha256 != file->sha256)
        return make_error(errc::integrity, who + ": the entry's sha256 " + entry.sha256 +
                                               " differs from CivitAI's SHA256 " + file->sha256 + " for file " +
                                               file->id +
                                               "; the file on CivitAI changed or the "
                                               "digest in the config is wrong: correct or remove sha256");

    DownloadPlan base;
    base.key_path = entry.key_path;
    base.sha256 = file->sha256.empty() ? entry.sha256 : file->sha256;
    if (file->size_kb) base.size = detail::civitai_size_bytes(*file->size_kb);
    base.file_name = entry.filename.empty() ? detail::sanitize_file_name(file->name) : entry.filename;
    if (base.file_name.empty())
        return make_error(errc::config, who + ": CivitAI's name for file " + file->id +
                                            " is not usable as a file name; "
                                            "set filename = \"...\" in the entry");
    base.identity = "civitai:file/" + file->id;
    base.validator = base.sha256;
    base.explain = [who, token_sent](const HttpResponse& failed) {
        return detail::explain_civitai_transfer(who, token_sent, failed);
    };

    // 3. The signed URL, from the download route pinned to that file.
    auto route = std::make_shared<detail::CivitaiDownloadRoute>();
    route->http = &context.http;
    route->route = route_url.value();
    route->route.query = "fileId=" + file->id;
    route->token = token;
    route->who = who;
    route->base = std::move(base);
    return detail::redeem_civitai_route(route);
}

}  // namespace sources
}  // namespace provision

#endif
