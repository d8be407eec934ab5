// SPDX-License-Identifier: MIT
// Fuzz target: the record of installed files (.provision/installed.json). A
// re-run trusts a file its record describes without reading it, so a record
// must mean exactly what it says, and a damaged file only costs re-hashing.
//
// Input: the file's text.
#include "fuzz_support.hpp"

#include <provision/engine/install_record.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace detail = provision::detail;
    const auto records = detail::parse_install_records(provision_fuzz::as_text(data, size));
    for (const auto& [key, record] : records) PROVISION_FUZZ_CHECK(key == record.path);

    // What we write, we read back: the same records.
    const std::string written = detail::install_records_text(records);
    const auto again = detail::parse_install_records(written);
    PROVISION_FUZZ_CHECK(again.size() == records.size());
    for (const auto& [key, record] : records) {
        auto found = again.find(key);
        PROVISION_FUZZ_CHECK(found != again.end());
        const auto& back = found->second;
        PROVISION_FUZZ_CHECK(back.stamp == record.stamp && back.sha256 == record.sha256);
        PROVISION_FUZZ_CHECK(back.identity == record.identity && back.validator == record.validator);
        PROVISION_FUZZ_CHECK(back.installed_at == record.installed_at);
    }
    PROVISION_FUZZ_CHECK(detail::install_records_text(again) == written);
    return 0;
}
