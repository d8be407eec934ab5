// SPDX-License-Identifier: MIT
// Fuzz target: CivitAI's answers: the model-version JSON, the choice of a file
// from it, the model JSON (a link without a version), and the error bodies of
// the API and download routes.
//
// Input: a response body. The status code, route and token flag used for the
// error explanation come from the input's length, so every seed stays a
// well-formed body and the fuzzer still reaches every branch.
#include "fuzz_support.hpp"

#include <provision/sources/civitai/api.hpp>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

void check_version(const provision::detail::CivitaiVersion& version) {
    for (const auto& file : version.files) {
        PROVISION_FUZZ_CHECK(!file.id.empty());
        for (unsigned char c : file.id) PROVISION_FUZZ_CHECK(std::isdigit(c));
        PROVISION_FUZZ_CHECK(!file.name.empty());
        PROVISION_FUZZ_CHECK(file.sha256.empty() || file.sha256.size() == 64);
        for (unsigned char c : file.sha256) PROVISION_FUZZ_CHECK(std::isdigit(c) || (c >= 'a' && c <= 'f'));
        if (file.size_kb) (void)provision::detail::civitai_size_bytes(*file.size_kb);
    }
    (void)provision::detail::describe_civitai_files(version.files);

    // The three ways an entry picks a file; a pick is always one of the listed files.
    provision::Entry by_default, by_id, by_type;
    if (!version.files.empty()) by_id.file_id = version.files.back().id;
    by_type.file_type = "VAE";
    for (const auto* entry : {&by_default, &by_id, &by_type}) {
        auto picked = provision::detail::pick_civitai_file(version, *entry, "models.lora.fuzz (version 1)");
        if (!picked) continue;
        bool listed = false;
        for (const auto& file : version.files) listed = listed || (file.id == picked->id && file.name == picked->name);
        PROVISION_FUZZ_CHECK(listed);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body = provision_fuzz::as_text(data, size);
    if (auto version = provision::detail::parse_civitai_version(body)) check_version(version.value());
    // The same body read as /api/v1/models/{id}: for a link without a version.
    if (auto model = provision::detail::parse_civitai_model(body)) {
        for (const auto& id : model->version_ids) PROVISION_FUZZ_CHECK(provision::detail::is_civitai_id(id));
    } else {
        PROVISION_FUZZ_CHECK(!model.error().message.empty() &&
                             !provision_fuzz::has_control_char(model.error().message));
    }

    static const int statuses[] = {400, 401, 403, 404, 410, 418, 429, 451, 500, 503};
    provision::HttpResponse response;
    response.status = statuses[size % (sizeof statuses / sizeof statuses[0])];
    response.headers.emplace_back("Content-Type", size % 3 == 0 ? "text/html; charset=utf-8" : "application/json");
    response.body = std::string(body);
    auto route =
        size % 2 ? provision::detail::CivitaiRoute::download : provision::detail::CivitaiRoute::version_details;
    provision::Error error =
        provision::detail::explain_civitai_answer("models.lora.fuzz (version 1)", route, response, size % 4 < 2);
    // The server's words are quoted into one message line.
    PROVISION_FUZZ_CHECK(!error.message.empty());
    PROVISION_FUZZ_CHECK(!provision_fuzz::has_control_char(error.message));
    return 0;
}
