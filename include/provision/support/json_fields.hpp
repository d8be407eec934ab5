// SPDX-License-Identifier: MIT
// provision: fields read from JSON that anyone may have written (the resume
// state and the install record live in the workspace). Each reader says "no"
// to a value of the wrong kind; none throws and none casts.
//
// nlohmann/json's get<std::uint64_t>() converts whatever number it holds:
// a float such as 3e29 is cast to an integer type it does not fit, which is
// undefined behaviour (found by tests/fuzz/fuzz_resume_state.cpp), and -1
// silently becomes 18446744073709551615. These accept only an integer written
// as one, in range, and say "no" to anything else.
#ifndef PROVISION_SUPPORT_JSON_FIELDS_HPP
#define PROVISION_SUPPORT_JSON_FIELDS_HPP

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace provision {
namespace detail {

/// A non-negative integer (nlohmann stores every one that was written without
/// a sign, fraction or exponent as number_unsigned).
inline std::optional<std::uint64_t> json_unsigned(const nlohmann::json& value) {
    if (!value.is_number_unsigned()) return std::nullopt;
    return value.get<std::uint64_t>();
}

/// An integer that fits in 64 signed bits.
inline std::optional<std::int64_t> json_signed(const nlohmann::json& value) {
    if (value.is_number_unsigned()) {
        auto number = value.get<std::uint64_t>();
        if (number > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
        return static_cast<std::int64_t>(number);
    }
    if (!value.is_number_integer()) return std::nullopt;
    return value.get<std::int64_t>();
}

/// The member `key` of an object as json_unsigned reads it; nullopt when the
/// member is missing. (`document.value(key, 0)` would cast a float such as
/// 1e20 to int: the same undefined behaviour, found by fuzz_resume_state.)
inline std::optional<std::uint64_t> json_field_unsigned(const nlohmann::json& document, const char* key) {
    auto member = document.find(key);
    if (member == document.end()) return std::nullopt;
    return json_unsigned(*member);
}

/// True when the member `key` is the string `expected`. (`document.value(key,
/// "")` throws when the member is a number: `{"format":1}` in installed.json
/// ended the whole run, found by fuzz_install_record.)
inline bool json_field_is(const nlohmann::json& document, const char* key, std::string_view expected) {
    auto member = document.find(key);
    return member != document.end() && member->is_string() && member->get_ref<const std::string&>() == expected;
}

}  // namespace detail
}  // namespace provision

#endif
