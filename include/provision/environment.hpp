// SPDX-License-Identifier: MIT
// provision: how the toolkit reads environment variables.
//
// Through an injectable lookup, never std::getenv directly, so tests and
// library callers decide what a run sees. Its own header because the config
// (variables in a config), the proxy settings (HTTPS_PROXY, NO_PROXY) and the
// provisioner (HF_TOKEN, WORKSPACE, ...) all take one.
#ifndef PROVISION_ENVIRONMENT_HPP
#define PROVISION_ENVIRONMENT_HPP

#include <cstdlib>
#include <functional>
#include <optional>
#include <string>

namespace provision {

/// Looks up an environment variable; injectable so tests need not touch the real environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// The process environment.
inline EnvLookup process_environment() {
    return [](const std::string& name) -> std::optional<std::string> {
        const char* value = std::getenv(name.c_str());
        if (!value) return std::nullopt;
        return std::string(value);
    };
}

}  // namespace provision

#endif  // PROVISION_ENVIRONMENT_HPP
