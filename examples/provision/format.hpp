// SPDX-License-Identifier: MIT
// Human-readable sizes, rates and durations for the provision CLI.
#ifndef PROVISION_EXAMPLES_FORMAT_HPP
#define PROVISION_EXAMPLES_FORMAT_HPP

#include <cstdint>
#include <cstdio>
#include <string>

namespace console {

/// "1.5 GiB", "312.0 KiB", "17 B"
inline std::string human_bytes(std::uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024 && unit < 4) {
        value /= 1024;
        ++unit;
    }
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
    return buffer;
}

/// "85.3 MiB/s"
inline std::string human_rate(double bytes_per_second) {
    return human_bytes(static_cast<std::uint64_t>(bytes_per_second)) + "/s";
}

/// "42s", "3m07s", "2h05m"
inline std::string human_duration(double seconds) {
    auto total = static_cast<long long>(seconds + 0.5);
    char buffer[32];
    if (total < 60) std::snprintf(buffer, sizeof buffer, "%llds", total);
    else if (total < 3600) std::snprintf(buffer, sizeof buffer, "%lldm%02llds", total / 60, total % 60);
    else std::snprintf(buffer, sizeof buffer, "%lldh%02lldm", total / 3600, (total % 3600) / 60);
    return buffer;
}

}  // namespace console

#endif
