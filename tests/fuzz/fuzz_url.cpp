// SPDX-License-Identifier: MIT
// Fuzz target: URL parsing, normalisation, redirect resolution and redaction.
//
// Input: "BASE\nREFERENCE" (no line break: the whole input is BASE and REFERENCE
// is empty). BASE goes through parse_url; when it parses, REFERENCE is resolved
// against it as a Location header would be.
#include "fuzz_support.hpp"

#include <provision/url.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using provision_fuzz::check_request_url;

void check_same(const provision::Url& a, const provision::Url& b) {
    PROVISION_FUZZ_CHECK(a.scheme == b.scheme);
    PROVISION_FUZZ_CHECK(a.userinfo == b.userinfo);
    PROVISION_FUZZ_CHECK(a.host == b.host);
    PROVISION_FUZZ_CHECK(a.port == b.port);
    PROVISION_FUZZ_CHECK(a.path == b.path);
    PROVISION_FUZZ_CHECK(a.query == b.query);
    PROVISION_FUZZ_CHECK(a.fragment == b.fragment);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input = provision_fuzz::as_text(data, size);
    const std::size_t newline = input.find('\n');
    const std::string_view base_text = input.substr(0, newline);
    const std::string_view reference =
        newline == std::string_view::npos ? std::string_view{} : input.substr(newline + 1);

    // Percent-coding round-trips any bytes, and encodes to unreserved characters and %XX only.
    const std::string encoded = provision::percent_encode(input);
    PROVISION_FUZZ_CHECK(provision::percent_decode(encoded) == input);
    for (unsigned char c : encoded) PROVISION_FUZZ_CHECK(provision::detail::is_unreserved(c) || c == '%');
    (void)provision::percent_encode_path(input);
    (void)provision::redact_url(input);

    auto base = provision::parse_url(base_text);
    if (!base) {
        PROVISION_FUZZ_CHECK(!base.error().message.empty());
        return 0;
    }
    check_request_url(base.value());
    (void)base->last_segment();

    // What we print is what we parse: the URL written back parses to the same parts
    // (so a normalised URL stays put when it is logged, stored or followed again).
    auto again = provision::parse_url(base->str());
    PROVISION_FUZZ_CHECK(again.ok());
    check_same(base.value(), again.value());
    auto redacted = provision::parse_url(base->redacted());
    PROVISION_FUZZ_CHECK(redacted.ok());
    PROVISION_FUZZ_CHECK(redacted->userinfo.empty());
    PROVISION_FUZZ_CHECK(redacted->origin() == base->origin());

    auto resolved = provision::resolve_reference(base.value(), reference);
    if (resolved) {
        check_request_url(resolved.value());
        (void)resolved->redacted();
    }
    return 0;
}
