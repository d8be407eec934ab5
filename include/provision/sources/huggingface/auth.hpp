// SPDX-License-Identifier: MIT
// provision: the up-front token check for entries marked `gated = true`.
//
// A gated repo serves its files only to a signed-in account that accepted its
// terms. Rather than let every gated entry discover a missing or dead token on
// its own, the provisioner asks once (`/api/whoami-v2`) before queueing
// downloads and fails, with one clear message each, only the gated entries that
// cannot succeed. Everything else still runs. Whether the account was granted
// access to a particular repo is not something whoami can tell; the metadata
// request of that entry says so in its own words.
#ifndef PROVISION_SOURCES_HUGGINGFACE_AUTH_HPP
#define PROVISION_SOURCES_HUGGINGFACE_AUTH_HPP

#include "../../config/config.hpp"
#include "../../http/client.hpp"
#include "../../plan.hpp"
#include "huggingface.hpp"

#include "../../support/bounded_json.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace provision {
namespace sources {

/// A gated entry that cannot succeed with the token at hand, and why.
struct GatedEntryProblem {
    std::size_t index = 0;  ///< position in the entries given to check_gated_entries
    Error error;            ///< errc::auth, naming the entry, the repo and what to do
};

namespace hf {

/// What `/api/whoami-v2` says about a token (only what the gated check needs).
struct TokenInfo {
    std::string name;                       ///< the user (or org) the token belongs to
    std::vector<std::string> orgs;          ///< the user's organisations
    bool fine_grained = false;              ///< auth.accessToken.role == "fineGrained"
    std::optional<bool> can_read_gated;     ///< fineGrained.canReadGatedRepos, when stated
    std::vector<std::string> scoped_names;  ///< entities a fine-grained token has scoped permissions on
};

/// Parses a whoami-v2 body; nullopt when it is not the JSON object the Hub sends.
inline std::optional<TokenInfo> parse_whoami(const std::string& body) {
    auto json = provision::detail::parse_api_json(body);
    if (json.is_discarded() || !json.is_object()) return std::nullopt;
    TokenInfo info;
    auto text = [](const nlohmann::json& object, const char* key) -> std::string {
        auto found = object.find(key);
        return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
    };
    info.name = text(json, "name");
    if (auto orgs = json.find("orgs"); orgs != json.end() && orgs->is_array())
        for (const auto& org : *orgs)
            if (org.is_object()) info.orgs.push_back(text(org, "name"));
    if (auto auth = json.find("auth"); auth != json.end() && auth->is_object()) {
        if (auto access = auth->find("accessToken"); access != auth->end() && access->is_object()) {
            info.fine_grained = text(*access, "role") == "fineGrained";
            if (auto fine = access->find("fineGrained"); fine != access->end() && fine->is_object()) {
                if (auto flag = fine->find("canReadGatedRepos"); flag != fine->end() && flag->is_boolean())
                    info.can_read_gated = flag->get<bool>();
                if (auto scoped = fine->find("scoped"); scoped != fine->end() && scoped->is_array())
                    for (const auto& grant : *scoped)
                        if (grant.is_object())
                            if (auto entity = grant.find("entity"); entity != grant.end() && entity->is_object())
                                info.scoped_names.push_back(text(*entity, "name"));
            }
        }
    }
    return info;
}

/// False only when the token is sure to be refused by a gated repo: a fine-grained
/// token that says it cannot read gated repos and has no grant on this repo or its
/// owner (and the repo is not the account's own). In every doubtful case the
/// download goes ahead and the Hub decides.
inline bool token_may_read_gated(const TokenInfo& token, const std::string& repo) {
    if (!token.fine_grained || !token.can_read_gated || *token.can_read_gated) return true;
    const std::string owner = repo.substr(0, repo.find('/'));
    if (owner == token.name) return true;
    for (const auto& org : token.orgs)
        if (org == owner) return true;
    for (const auto& scoped : token.scoped_names)
        if (scoped == repo || scoped == owner) return true;
    return false;
}

}  // namespace hf

/// Checks HF_TOKEN once for all `gated = true` Hugging Face entries and returns
/// the ones that will fail, each with its reason. No gated entry, no request.
/// When the check itself cannot be made (network, rate limit, an odd answer) no
/// entry is failed: their own metadata requests will tell.
inline std::vector<GatedEntryProblem> check_gated_entries(const std::vector<Entry>& entries, ResolveContext& context) {
    std::vector<std::size_t> gated;
    for (std::size_t i = 0; i < entries.size(); ++i)
        if (entries[i].source == SourceKind::huggingface && entries[i].gated) gated.push_back(i);
    std::vector<GatedEntryProblem> problems;
    if (gated.empty()) return problems;

    auto fail_each = [&](auto&& message_for) {
        for (std::size_t i : gated)
            problems.push_back(GatedEntryProblem{i, make_error(errc::auth, message_for(entries[i]))});
        return problems;
    };
    auto page = [](const Entry& entry) { return hf::repo_page_url(entry.repo_type, entry.repo); };

    const std::string token(detail::trim(context.credentials.hf_token));
    if (token.empty())
        return fail_each([&](const Entry& entry) {
            return entry.key_path + ": " + entry.repo +
                   " is marked gated = true, and gated repos need a Hugging Face token, "
                   "but HF_TOKEN is not set. Accept the repo's terms at " +
                   page(entry) + " with your account, then set HF_TOKEN to a read token from " +
                   hf::token_settings_url();
        });

    auto whoami_url = parse_url(hf::endpoint_base(context.hf_endpoint) + "/api/whoami-v2");
    if (!whoami_url) return problems;  // resolve_huggingface words the bad HF_ENDPOINT for each entry
    HttpRequest request;
    request.url = whoami_url.value();
    request.headers = {{"Accept", "application/json"}};
    request.scoped_headers = {{"Authorization", "Bearer " + token}};
    auto answer = context.http.fetch(request, 1u << 20);
    if (!answer) return problems;

    if (answer->status == 401) {
        std::string server_text(detail::trim(answer->header("X-Error-Message").value_or("")));
        std::string why = "Hugging Face answered HTTP 401 to " + request.url.redacted() +
                          (server_text.empty() ? "" : ": \"" + server_text + "\"") +
                          hf::request_id_suffix(answer.value());
        return fail_each([&](const Entry& entry) {
            return entry.key_path + ": HF_TOKEN is not valid (" + why +
                   "): it is expired, revoked or mistyped, so the gated repo " + entry.repo +
                   " cannot be downloaded. Create a read token at " + hf::token_settings_url() +
                   " and set HF_TOKEN to it";
        });
    }
    if (answer->status != 200) return problems;
    auto info = hf::parse_whoami(answer->body);
    if (!info) return problems;
    for (std::size_t i : gated) {
        const Entry& entry = entries[i];
        if (hf::token_may_read_gated(*info, entry.repo)) continue;
        problems.push_back(GatedEntryProblem{
            i, make_error(errc::auth,
                          entry.key_path +
                              ": HF_TOKEN is a fine-grained token without the permission \"Read "
                              "access to contents of all public gated repos you can access\", so the gated repo " +
                              entry.repo + " will refuse it. Edit the token at " + hf::token_settings_url() +
                              " and tick that permission (or grant it this repo), and accept the repo's terms at " +
                              page(entry))});
    }
    return problems;
}

}  // namespace sources
}  // namespace provision

#endif
