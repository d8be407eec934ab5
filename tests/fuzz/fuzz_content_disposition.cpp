// SPDX-License-Identifier: MIT
// Fuzz target: the file name a server proposes in Content-Disposition, and the
// sanitizer every server-chosen name goes through before it touches the disk.
//
// Input: a Content-Disposition header value. Both the name it proposes and the
// raw input itself are sanitized; whatever comes out must be one plain name
// that cannot leave its folder.
#include "fuzz_support.hpp"

#include <provision/config/config.hpp>
#include <provision/layout/file_name.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

void check_sanitized(const std::string& name) {
    if (name.empty()) return;  // "nothing usable": the caller falls back to another name
    PROVISION_FUZZ_CHECK(name != "." && name != "..");
    PROVISION_FUZZ_CHECK(name.find('/') == std::string::npos);
    PROVISION_FUZZ_CHECK(name.find('\\') == std::string::npos);
    PROVISION_FUZZ_CHECK(!provision_fuzz::has_control_char(name));
    PROVISION_FUZZ_CHECK(name.size() <= 200);
    PROVISION_FUZZ_CHECK(name.front() != '.' && name.front() != ' ');  // never hidden, never blank-led
    PROVISION_FUZZ_CHECK(provision_fuzz::is_valid_utf8(name));
    PROVISION_FUZZ_CHECK(provision::is_safe_filename(name));
    (void)provision::detail::is_model_file_name(name);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view header = provision_fuzz::as_text(data, size);
    check_sanitized(provision::detail::sanitize_file_name(header));
    if (auto proposed = provision::detail::content_disposition_filename(header))
        check_sanitized(provision::detail::sanitize_file_name(*proposed));
    return 0;
}
