// SPDX-License-Identifier: MIT
// Fuzz target: what provision reads from Hugging Face's answers: the metadata
// headers of a resolve request (commit, ETag, size, Location), the error and
// rate-limit headers, and the whoami-v2 JSON of the gated-repo check.
//
// Input: an HTTP answer written as text:
//   STATUS            first line, digits (200 when it is not a number)
//   Name: value       header lines, up to an empty line
//   body              the rest (read as a whoami-v2 answer)
#include "fuzz_answer.hpp"
#include "fuzz_support.hpp"

#include <provision/sources/huggingface/huggingface.hpp>
#include <provision/sources/huggingface/auth.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace hf = provision::sources::hf;
    std::string_view body;
    provision::HttpResponse response = provision_fuzz::read_answer(provision_fuzz::as_text(data, size), body);
    response.body = std::string(body);

    hf::FileRef ref;
    ref.key_path = "models.vae.fuzz";
    ref.repo = "owner/name";
    ref.file = "vae/diffusion_pytorch_model.safetensors";
    ref.token_sent = size % 2 == 1;
    static const provision::Url hub_url =
        provision::parse_url("https://huggingface.co/owner/name/resolve/main/vae/diffusion_pytorch_model.safetensors")
            .value();
    static const provision::Url cdn_url =
        provision::parse_url("https://cas-bridge.xethub.hf.co/xet-bridge-us/abc?X-Amz-Signature=s").value();
    response.url = size % 3 == 0 ? cdn_url : hub_url;

    if (auto metadata = hf::read_file_metadata(ref, response)) {
        PROVISION_FUZZ_CHECK(!metadata->commit.empty());
        PROVISION_FUZZ_CHECK(!metadata->etag.empty());
        (void)hf::classify_etag(metadata->etag);
        if (auto pinned = hf::pin_to_commit(hub_url, ref.file, metadata->commit)) {
            // The commit comes from a header: once in the path it must still be one
            // segment of a URL we can request.
            provision_fuzz::check_request_url(*pinned);
            PROVISION_FUZZ_CHECK(
                provision::detail::ends_with(pinned->path, "/vae/diffusion_pytorch_model.safetensors"));
            auto reparsed = provision::parse_url(pinned->str());
            PROVISION_FUZZ_CHECK(reparsed.ok() && reparsed->path == pinned->path);
        }
    }
    provision::Error hub = hf::explain_hub_answer(ref, response);
    PROVISION_FUZZ_CHECK(!hub.message.empty());
    provision::Error download = hf::explain_download_answer(ref, response);
    PROVISION_FUZZ_CHECK(!download.message.empty());
    (void)hf::parse_rate_limit(response);
    for (const auto& header : response.headers) {
        (void)hf::normalize_etag(header.second);
        (void)hf::parse_decimal(header.second);
        (void)hf::split_structured_list(header.second);
    }

    if (auto token = hf::parse_whoami(response.body)) {
        (void)hf::token_may_read_gated(*token, ref.repo);
        (void)hf::token_may_read_gated(*token, "");
    }
    return 0;
}
