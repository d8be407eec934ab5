// SPDX-License-Identifier: MIT
// provision: the download plan, the contract between sources and the downloader.
//
// A source turns a config Entry into a DownloadPlan: where to fetch, which
// headers go to which host, what size and digest to expect, what to call the
// file. The downloader executes plans without knowing which service they came from.
#ifndef PROVISION_PLAN_HPP
#define PROVISION_PLAN_HPP

#include "config/config.hpp"
#include "error.hpp"
#include "http/client.hpp"
#include "url.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace provision {

struct DownloadPlan;

/// Turns a final HTTP response that is not the file (4xx, 5xx, a login page)
/// into a message that names the entry and what to do.
using FailureExplainer = std::function<Error(const HttpResponse&)>;
/// Resolves the entry again (signed CDN URLs expire; a moved branch changes the target).
using Refresher = std::function<Result<DownloadPlan>()>;

struct DownloadPlan {
    std::string key_path;                ///< the entry, for messages: "models.lora.detail-tweaker"
    Url url;                             ///< first request of the download
    std::vector<Header> headers;         ///< sent on every hop
    std::vector<Header> scoped_headers;  ///< credentials and user headers: only to url's origin
    std::optional<std::uint64_t> size;   ///< expected size when the source knows it
    std::string sha256;                  ///< expected SHA-256, lower-case hex, or empty
    std::string git_sha1;                ///< expected git blob SHA-1 (small Hugging Face files), or empty
    std::filesystem::path folder;        ///< target folder (set by the provisioner from the layout)
    std::string file_name;     ///< relative to folder, may contain '/' (Hugging Face folders); empty: from the response
    std::string identity;      ///< what these bytes are: "hf:repo@commit/path", "civitai:file/123", "url:..."
    std::string validator;     ///< ETag or commit; a change means the upstream file changed
    FailureExplainer explain;  ///< optional; defaults to a generic message
    Refresher refresh;         ///< optional; re-resolve when a signed URL expires
};

/// Tokens the sources may use. Never printed.
struct Credentials {
    std::string hf_token;
    std::string civitai_token;
};

/// What a source needs to resolve entries.
struct ResolveContext {
    HttpClient& http;
    Credentials credentials;
    std::string hf_endpoint = "https://huggingface.co";
    std::string civitai_endpoint = "https://civitai.com";
};

}  // namespace provision

#endif
