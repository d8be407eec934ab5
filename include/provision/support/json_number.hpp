// SPDX-License-Identifier: MIT
// provision: whole numbers read from JSON that anyone may have written (the
// resume state and the install record live in the workspace).
//
// nlohmann/json's get<std::uint64_t>() converts whatever number it holds:
// a float such as 3e29 is cast to an integer type it does not fit, which is
// undefined behaviour (found by tests/fuzz/fuzz_resume_state.cpp), and -1
// silently becomes 18446744073709551615. These accept only an integer written
// as one, in range, and say "no" to anything else.
#ifndef PROVISION_SUPPORT_JSON_NUMBER_HPP
#define PROVISION_SUPPORT_JSON_NUMBER_HPP

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>

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

}  // namespace detail
}  // namespace provision

#endif
