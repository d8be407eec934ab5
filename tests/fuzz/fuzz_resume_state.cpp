// SPDX-License-Identifier: MIT
// Fuzz target: the resume state beside a part file (<target>.part.state). It
// lives in the workspace, where a crash, a full disk or another program may
// have left anything; what it says decides which bytes are not fetched again.
//
// Input: the state file's text.
#include "fuzz_support.hpp"

#include <provision/engine/resume_state.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace detail = provision::detail;
    auto state = detail::parse_resume_state(provision_fuzz::as_text(data, size));
    if (!state) return 0;

    // A state we accept never claims bytes outside the file, and its ranges
    // are ordered, disjoint and not touching (touching ones are merged).
    std::uint64_t previous_end = 0;
    bool first = true;
    for (const auto& span : state->done.spans()) {
        PROVISION_FUZZ_CHECK(span.begin < span.end);
        PROVISION_FUZZ_CHECK(span.end <= state->size);
        PROVISION_FUZZ_CHECK(first || span.begin > previous_end);
        previous_end = span.end;
        first = false;
    }

    // What we write, we read back.
    auto again = detail::parse_resume_state(detail::to_json_text(*state));
    PROVISION_FUZZ_CHECK(again.has_value());
    PROVISION_FUZZ_CHECK(again->identity == state->identity && again->validator == state->validator);
    PROVISION_FUZZ_CHECK(again->sha256 == state->sha256 && again->etag == state->etag);
    PROVISION_FUZZ_CHECK(again->last_modified == state->last_modified && again->size == state->size);
    PROVISION_FUZZ_CHECK(again->done == state->done);
    return 0;
}
