// SPDX-License-Identifier: MIT
// Fuzz target: reading the HTML pages Google Drive answers with instead of a
// file (virus-scan confirmation forms, legacy confirm links, viewer scripts,
// quota and error pages).
//
// Input: a page body. Whatever the page says, the reader names a kind, and a
// URL it tells us to request next is one we can put on a request line.
#include "fuzz_support.hpp"

#include <provision/sources/gdrive/drive_page.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view page = provision_fuzz::as_text(data, size);
    static const provision::Url page_url =
        provision::parse_url(
            "https://drive.usercontent.google.com/download?id=1AbCdEfGhIjKlMnOpQrStUvWxYz012345&export=download")
            .value();

    provision::detail::DrivePageReading reading = provision::detail::read_drive_page(page, page_url);
    using Kind = provision::detail::DrivePageReading::Kind;
    PROVISION_FUZZ_CHECK((reading.kind == Kind::confirm) == reading.next.has_value());
    if (reading.next) provision_fuzz::check_request_url(*reading.next);
    // Captions and titles come out with their white space collapsed to single spaces.
    PROVISION_FUZZ_CHECK(reading.text.find_first_of("\n\r\t\f\v") == std::string::npos);
    PROVISION_FUZZ_CHECK(reading.text.empty() || (reading.text.front() != ' ' && reading.text.back() != ' '));

    // The same bytes as Set-Cookie values (the pre-2022 confirm token).
    std::vector<provision::Header> headers;
    std::size_t pos = 0;
    while (pos < page.size() && headers.size() < 8) {
        std::size_t end = page.find('\n', pos);
        if (end == std::string_view::npos) end = page.size();
        headers.emplace_back("Set-Cookie", std::string(page.substr(pos, end - pos)));
        pos = end + 1;
    }
    (void)provision::detail::drive_download_warning_cookie(headers);
    (void)provision::detail::js_unescape(page);
    return 0;
}
