// SPDX-License-Identifier: MIT
// Fuzz target: query strings. Drive's confirmation form and CivitAI's links
// are read as name/value lists; every URL provision prints hides the value of
// any parameter not known to be harmless.
//
// Input: a raw query (what follows '?'), used three ways: as a query on its
// own, as the query of an https URL, and of a CivitAI model link.
#include "fuzz_support.hpp"

#include <provision/config/civitai_link.hpp>
#include <provision/support/query.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace detail = provision::detail;
    const std::string_view query = provision_fuzz::as_text(data, size);

    // Parsing what we build gives back the same pairs, in order.
    const auto pairs = detail::parse_query(query);
    const std::string built = detail::build_query(pairs);
    const auto again = detail::parse_query(built);
    PROVISION_FUZZ_CHECK(again.size() == pairs.size());
    for (std::size_t i = 0; i < pairs.size() && i < again.size(); ++i) PROVISION_FUZZ_CHECK(again[i] == pairs[i]);
    for (const auto& [name, value] : pairs) {
        PROVISION_FUZZ_CHECK(detail::query_count(query, name) >= 1);
        PROVISION_FUZZ_CHECK(detail::query_value(query, name).has_value());
    }

    // Redaction: every value shown belongs to a harmless parameter.
    auto url = provision::parse_url("https://host.example/file.bin?" + std::string(query));
    if (url) {
        const std::string shown = url->redacted();
        const std::size_t question = shown.find('?');
        if (question != std::string::npos) {
            const std::string_view shown_query = std::string_view(shown).substr(question + 1);
            std::size_t pos = 0;
            while (pos <= shown_query.size()) {
                std::size_t amp = shown_query.find('&', pos);
                if (amp == std::string_view::npos) amp = shown_query.size();
                const std::string_view pair = shown_query.substr(pos, amp - pos);
                const std::size_t eq = pair.find('=');
                if (eq != std::string_view::npos) {
                    const std::string name = detail::to_lower(provision::percent_decode(pair.substr(0, eq)));
                    PROVISION_FUZZ_CHECK(pair.substr(eq + 1) == "***" || detail::is_harmless_query_parameter(name));
                }
                pos = amp + 1;
            }
        }
        // Redacting twice changes nothing more.
        PROVISION_FUZZ_CHECK(provision::redact_url(shown) == shown);
    }

    // A CivitAI link's ids come from its query only as numbers.
    auto link = provision::parse_url("https://civitai.com/models/4201/slug?" + std::string(query));
    if (link) {
        auto reference = detail::parse_civitai_link(link.value());
        if (reference) {
            PROVISION_FUZZ_CHECK(reference->model_id == "4201");
            PROVISION_FUZZ_CHECK(reference->version_id.empty() || detail::is_civitai_id(reference->version_id));
        } else {
            PROVISION_FUZZ_CHECK(!reference.error().message.empty());
        }
    }
    return 0;
}
