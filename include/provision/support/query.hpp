// SPDX-License-Identifier: MIT
// provision: URL query strings as ordered name/value lists.
//
// Google Drive's confirmation form and CivitAI's signed URLs are plain
// `a=b&c=d` queries; we read and rebuild them ourselves so that parameter
// order and encoding stay predictable.
#ifndef PROVISION_SUPPORT_QUERY_HPP
#define PROVISION_SUPPORT_QUERY_HPP

#include "../url.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace provision {
namespace detail {

using QueryParameters = std::vector<std::pair<std::string, std::string>>;

/// Splits "a=1&b=%2F" into decoded pairs, in order; '+' means a space, as forms encode it.
inline QueryParameters parse_query(std::string_view query) {
    QueryParameters out;
    auto decode = [](std::string_view text) {
        std::string plus_as_space(text);
        for (auto& c : plus_as_space)
            if (c == '+') c = ' ';
        return percent_decode(plus_as_space);
    };
    std::size_t pos = 0;
    while (pos < query.size()) {
        std::size_t amp = query.find('&', pos);
        if (amp == std::string_view::npos) amp = query.size();
        std::string_view pair = query.substr(pos, amp - pos);
        if (!pair.empty()) {
            std::size_t eq = pair.find('=');
            if (eq == std::string_view::npos) out.emplace_back(decode(pair), "");
            else out.emplace_back(decode(pair.substr(0, eq)), decode(pair.substr(eq + 1)));
        }
        pos = amp + 1;
    }
    return out;
}

/// Encodes pairs as "a=1&b=%2F" (every byte that is not unreserved is escaped).
inline std::string build_query(const QueryParameters& parameters) {
    std::string out;
    for (const auto& [name, value] : parameters) {
        if (!out.empty()) out += '&';
        out += percent_encode(name) + "=" + percent_encode(value);
    }
    return out;
}

/// The first value of `name` in a raw query, decoded.
inline std::optional<std::string> query_value(std::string_view query, std::string_view name) {
    for (auto& [key, value] : parse_query(query))
        if (key == name) return value;
    return std::nullopt;
}

/// How many times `name` occurs in a raw query.
inline std::size_t query_count(std::string_view query, std::string_view name) {
    std::size_t count = 0;
    for (const auto& parameter : parse_query(query))
        if (parameter.first == name) ++count;
    return count;
}

/// Sets `name` to `value`: overwrites the first occurrence or appends.
inline void set_query_parameter(QueryParameters& parameters, const std::string& name, const std::string& value) {
    for (auto& parameter : parameters)
        if (parameter.first == name) {
            parameter.second = value;
            return;
        }
    parameters.emplace_back(name, value);
}

}  // namespace detail
}  // namespace provision

#endif
