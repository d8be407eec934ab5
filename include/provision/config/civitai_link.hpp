// SPDX-License-Identifier: MIT
// provision: what a user pastes to name a CivitAI model: a page link, an API or
// download link, or an AIR id (reference/civitai-gdrive.md, A5).
//
// Every form is reduced to (site, model id, version id, file id) when the
// config is read, so a typo is a config error with its line and column, and
// the resolver only ever deals with ids. Nothing here touches the network.
#ifndef PROVISION_CONFIG_CIVITAI_LINK_HPP
#define PROVISION_CONFIG_CIVITAI_LINK_HPP

#include "../error.hpp"
#include "../url.hpp"
#include "../support/query.hpp"

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace provision {
namespace detail {

/// Hosts that run CivitAI's site and API: civitai.com, civitai.red and their
/// subdomains (a dotted-suffix match, so "evilcivitai.com" is not one).
inline bool is_civitai_host(std::string_view host) {
    for (std::string_view domain : {std::string_view("civitai.com"), std::string_view("civitai.red")})
        if (host == domain ||
            (host.size() > domain.size() && ends_with(host, domain) && host[host.size() - domain.size() - 1] == '.'))
            return true;
    return false;
}

/// The ids a link or AIR names. Empty strings are "not given".
struct CivitaiReference {
    std::string site;  ///< "https://civitai.red" when the link is on civitai.red; "" for civitai.com
    std::string model_id;
    std::string version_id;
    std::string file_id;
};

inline bool is_civitai_id(std::string_view text) {
    if (text.empty() || text.size() > 19 || text.find_first_not_of('0') == std::string_view::npos) return false;
    for (unsigned char c : text)
        if (!std::isdigit(c)) return false;
    return true;
}

/// The site whose API answers for a link on `host`: civitai.red serves its own
/// download links (the API builds them from the Host header).
inline std::string civitai_site_of(std::string_view host) {
    std::string_view red = "civitai.red";
    return host == red || ends_with(host, ".civitai.red") ? "https://civitai.red" : "";
}

/// What link forms we accept, for messages.
inline const char* civitai_link_forms() {
    return "https://civitai.com/models/<model id>[/<slug>][?modelVersionId=<version id>], "
           "https://civitai.com/model-versions/<version id>, https://civitai.com/api/download/models/<version id>, "
           "or the same on civitai.red";
}

/// Reads a CivitAI link. The message of an error says what is wrong with it;
/// the caller names the key. Query values other than the ids (type=, format=,
/// and above all token=) are ignored: the token comes from CIVITAI_TOKEN.
inline Result<CivitaiReference> parse_civitai_link(const Url& url) {
    if (!is_civitai_host(url.host))
        return make_error(errc::config, "\"" + url.host + "\" is not a CivitAI site (civitai.com or civitai.red)");
    CivitaiReference ref;
    ref.site = civitai_site_of(url.host);
    std::vector<std::string> segments;
    for (std::size_t pos = 1; pos <= url.path.size();) {
        std::size_t slash = url.path.find('/', pos);
        if (slash == std::string::npos) slash = url.path.size();
        if (slash > pos) segments.push_back(url.path.substr(pos, slash - pos));
        pos = slash + 1;
    }
    auto query = [&](const char* name) { return query_value(url.query, name).value_or(""); };
    auto id_or_fail = [&](const std::string& text, const char* what) -> Result<std::string> {
        if (is_civitai_id(text)) return text;
        return make_error(errc::config, std::string("the link's ") + what + " \"" + text + "\" is not a number");
    };
    const std::size_t n = segments.size();
    if (n >= 2 && segments[0] == "models") {  // /models/<id>[/<slug>]
        auto model = id_or_fail(segments[1], "model id");
        if (!model) return model.error();
        ref.model_id = model.value();
        std::string version = query("modelVersionId");
        if (version.empty()) version = query("version");
        if (!version.empty()) {
            auto checked = id_or_fail(version, "modelVersionId");
            if (!checked) return checked.error();
            ref.version_id = checked.value();
        }
        return ref;
    }
    if (n == 2 && segments[0] == "model-versions") {
        auto version = id_or_fail(segments[1], "version id");
        if (!version) return version.error();
        ref.version_id = version.value();
        return ref;
    }
    if (n == 4 && segments[0] == "api" && segments[1] == "download" && segments[2] == "models") {
        auto version = id_or_fail(segments[3], "version id");
        if (!version) return version.error();
        ref.version_id = version.value();
        if (std::string file = query("fileId"); !file.empty()) {
            auto checked = id_or_fail(file, "fileId");
            if (!checked) return checked.error();
            ref.file_id = checked.value();
        }
        return ref;
    }
    if (n == 4 && segments[0] == "api" && segments[1] == "v1" &&
        (segments[2] == "model-versions" || segments[2] == "models")) {
        auto id = id_or_fail(segments[3], segments[2] == "models" ? "model id" : "version id");
        if (!id) return id.error();
        (segments[2] == "models" ? ref.model_id : ref.version_id) = id.value();
        return ref;
    }
    return make_error(errc::config, "this CivitAI link names no model; use " + std::string(civitai_link_forms()));
}

/// Reads an AIR id: [urn:][air:][<ecosystem>:][<type>:]civitai:<model>[@<version>][+<file>][.<format>].
inline Result<CivitaiReference> parse_civitai_air(std::string_view text) {
    std::string air = to_lower(text);
    for (const char* prefix : {"urn:", "air:"})
        if (starts_with(air, prefix)) air.erase(0, std::string_view(prefix).size());
    std::vector<std::string> parts;
    for (std::size_t pos = 0;;) {
        std::size_t colon = air.find(':', pos);
        parts.push_back(air.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos));
        if (colon == std::string::npos) break;
        pos = colon + 1;
    }
    const char* shape =
        "write it as urn:air:<ecosystem>:<type>:civitai:<model id>@<version id>, e.g. "
        "urn:air:sdxl:lora:civitai:328553@368189";
    if (parts.size() < 2 || parts.size() > 4) return make_error(errc::config, std::string("not an AIR id; ") + shape);
    for (const auto& part : parts) {
        bool ok = !part.empty();
        for (unsigned char c : part)
            ok = ok && (std::isalnum(c) || c == '_' || c == '-' || c == '/' || c == '@' || c == '+' || c == '.');
        if (!ok) return make_error(errc::config, std::string("not an AIR id (an empty or odd segment); ") + shape);
    }
    const std::string& source = parts[parts.size() - 2];
    if (source != "civitai")
        return make_error(
            errc::config,
            "the AIR id names the source \"" + source +
                "\"; only civitai AIR ids can be used here (a Hugging Face model takes source = \"huggingface\")");
    std::string id = parts.back();
    CivitaiReference ref;
    if (std::size_t dot = id.find('.'); dot != std::string::npos) id.erase(dot);  // .safetensor / .ckpt: a format hint
    if (std::size_t plus = id.find('+'); plus != std::string::npos) {
        ref.file_id = id.substr(plus + 1);
        id.erase(plus);
        if (!is_civitai_id(ref.file_id))
            return make_error(errc::config, "the AIR id's file id (after '+') is not a number; " + std::string(shape));
    }
    if (std::size_t at = id.find('@'); at != std::string::npos) {
        ref.version_id = id.substr(at + 1);
        id.erase(at);
        if (!is_civitai_id(ref.version_id))
            return make_error(errc::config, "the AIR id's version (after '@') is not a number; " + std::string(shape));
    }
    if (!is_civitai_id(id))
        return make_error(errc::config, "the AIR id's model id is not a number; " + std::string(shape));
    ref.model_id = id;
    return ref;
}

}  // namespace detail
}  // namespace provision

#endif
