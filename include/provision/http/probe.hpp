// SPDX-License-Identifier: MIT
// provision: one request whose body is read only when it is a document.
//
// Resolvers must see redirects, error bodies and confirmation pages, but a
// request that turns out to answer with the model itself must not pull
// gigabytes through memory. A probe stops before the body of whatever the
// caller calls the payload (unless asked to keep a small one, e.g. a config
// file) and keeps at most a bounded prefix of anything else.
#ifndef PROVISION_HTTP_PROBE_HPP
#define PROVISION_HTTP_PROBE_HPP

#include "../error.hpp"
#include "client.hpp"

#include <cstddef>
#include <functional>
#include <string>

namespace provision {
namespace detail {

/// What one probe saw.
struct ProbeResult {
    HttpResponse response;   ///< body: the document (or kept payload), at most the limit
    bool payload = false;    ///< the caller's test said this response is the file itself
    bool truncated = false;  ///< the body was longer than the limit; response.body holds its start
};

/// Decides from status and headers alone whether a response is the file.
using PayloadTest = std::function<bool(const HttpResponse&)>;

/// Performs `request`; a payload's body is skipped (payload_limit == 0) or kept
/// up to payload_limit bytes; any other body is kept up to document_limit bytes.
inline Result<ProbeResult> probe(HttpClient& http, const HttpRequest& request, const PayloadTest& is_payload,
                                 std::size_t document_limit, std::size_t payload_limit = 0) {
    ProbeResult result;
    std::size_t limit = document_limit;
    std::string body;
    auto check = [&](const HttpResponse& response) {
        result.payload = is_payload && is_payload(response);
        if (!result.payload) return true;
        limit = payload_limit;
        return payload_limit > 0;
    };
    auto sink = [&](const char* data, std::size_t size) {
        if (body.size() + size > limit) {
            body.append(data, limit - body.size());
            result.truncated = true;
            return false;
        }
        body.append(data, size);
        return true;
    };
    auto response = http.stream(request, check, sink);
    if (!response) return response.error();
    result.response = std::move(response).value();
    result.response.body = std::move(body);
    return result;
}

/// A short, single-line excerpt of a server's text for an error message.
inline std::string excerpt(std::string_view text, std::size_t limit = 200) {
    std::string out;
    bool space = false;
    for (unsigned char c : text) {
        if (c < 0x20 || c == 0x7f || c == ' ') {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += static_cast<char>(c);
        if (out.size() >= limit) {
            out += "...";
            break;
        }
    }
    return out;
}

}  // namespace detail
}  // namespace provision

#endif
