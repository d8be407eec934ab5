// SPDX-License-Identifier: MIT
// Fuzz target: the response head parser and the body framing it leads to
// (include/provision/http/response_head.hpp), fed bytes with no socket.
//
// Input: anything a server could send as a head. Invariants beyond "no
// crash": a parsed status is 100-599; names are non-empty with no colon,
// blank or control character; values hold no CR, LF or NUL and are trimmed;
// never more fields than the limit; a rejected head says why; the framing of
// a head is either refused or one of the four kinds, and is never reusable
// when it runs to the close, switches protocols, or mixes Transfer-Encoding
// with Content-Length.
#include "fuzz_support.hpp"

#include <provision/http/response_head.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view block = provision_fuzz::as_text(data, size);
    provision::detail::RawResponseHead head;
    std::string problem;
    provision::detail::ResponseHeadLimits limits;
    if (!provision::detail::parse_response_head(block, head, problem, limits)) {
        PROVISION_FUZZ_CHECK(!problem.empty());
        PROVISION_FUZZ_CHECK(!provision_fuzz::has_control_char(problem));
        return 0;
    }
    PROVISION_FUZZ_CHECK(head.status >= 100 && head.status <= 599);
    PROVISION_FUZZ_CHECK(head.headers.size() <= limits.max_fields);
    bool has_length = false, has_coding = false;
    for (const auto& [name, value] : head.headers) {
        PROVISION_FUZZ_CHECK(!name.empty());
        PROVISION_FUZZ_CHECK(name.find_first_of(": \t\r\n") == std::string::npos);
        PROVISION_FUZZ_CHECK(value.find_first_of("\r\n") == std::string::npos);
        PROVISION_FUZZ_CHECK(value.find('\0') == std::string::npos);
        PROVISION_FUZZ_CHECK(value.empty() || (value.front() != ' ' && value.back() != ' '));
        if (provision::detail::iequals(name, "content-length")) has_length = true;
        if (provision::detail::iequals(name, "transfer-encoding")) has_coding = true;
    }
    for (bool head_request : {false, true}) {
        provision::detail::BodyFraming framing;
        std::string why;
        if (!provision::detail::body_framing(head, head_request, framing, why)) {
            PROVISION_FUZZ_CHECK(!why.empty());
            continue;
        }
        using Kind = provision::detail::BodyFraming::Kind;
        if (framing.kind == Kind::to_close || head.status == 101) PROVISION_FUZZ_CHECK(!framing.keep_alive);
        if (framing.kind == Kind::chunked && has_length) PROVISION_FUZZ_CHECK(!framing.keep_alive);
        if (framing.kind == Kind::chunked) PROVISION_FUZZ_CHECK(has_coding);
        if (head_request) PROVISION_FUZZ_CHECK(framing.kind == Kind::none);
    }
    return 0;
}
