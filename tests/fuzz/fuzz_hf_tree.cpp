// SPDX-License-Identifier: MIT
// Fuzz target: a page of the Hub's tree listing (/api/models/{repo}/tree/...)
// and the Link header that points at the next page; the include/exclude
// selection applied to the paths it lists.
//
// Input: an answer as fuzz_answer.hpp reads it (status, headers such as
// "Link: <...>; rel=\"next\"", then the JSON body).
#include "fuzz_answer.hpp"
#include "fuzz_support.hpp"

#include <provision/sources/huggingface/tree.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace hf = provision::sources::hf;
    std::string_view body;
    provision::HttpResponse response = provision_fuzz::read_answer(provision_fuzz::as_text(data, size), body);
    response.body = std::string(body);

    if (auto next = hf::next_page_link(response)) {
        // The target is what stood between '<' and '>' of a Link value.
        bool found = false;
        for (const auto& header : response.headers)
            found = found || header.second.find("<" + *next + ">") != std::string::npos;
        PROVISION_FUZZ_CHECK(found);
        PROVISION_FUZZ_CHECK(next->find('>') == std::string::npos);
    }

    auto page = hf::parse_tree_page(response.body);
    if (!page) {
        PROVISION_FUZZ_CHECK(!page.error().message.empty());
        return 0;
    }
    const std::vector<std::string> include = {"*.safetensors", "vae/"};
    const std::vector<std::string> exclude = {"*fp16*"};
    for (const auto& file : page.value()) {
        // Every listed file has a path, and an LFS digest is a SHA-256 in lower case.
        PROVISION_FUZZ_CHECK(!file.path.empty());
        PROVISION_FUZZ_CHECK(file.sha256.empty() || provision::detail::is_hex_of_length(file.sha256, 64));
        for (char c : file.sha256) PROVISION_FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
        // Selection: with no patterns everything is kept; a kept file matches
        // no exclude; a path without pattern characters excludes itself.
        PROVISION_FUZZ_CHECK(hf::is_selected(file.path, {}, {}));
        if (hf::is_selected(file.path, include, exclude)) PROVISION_FUZZ_CHECK(hf::is_selected(file.path, {}, exclude));
        if (file.path.find_first_of("*?[\\") == std::string::npos)
            PROVISION_FUZZ_CHECK(!hf::is_selected(file.path, include, {file.path}));
        (void)hf::similar_paths(page.value(), file.path);
    }
    (void)hf::some_paths(page.value());
    return 0;
}
