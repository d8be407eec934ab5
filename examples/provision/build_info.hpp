// SPDX-License-Identifier: MIT
// What `provision --version` prints: this program's version and the versions
// of the libraries it was built with, so a bug report names them all.
#ifndef PROVISION_EXAMPLES_BUILD_INFO_HPP
#define PROVISION_EXAMPLES_BUILD_INFO_HPP

#include <provision/provision.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <toml++/toml.h>

#include <string>

// meson passes the cpp-httplib version it found (pkg-config); the CLI does
// not include httplib.h, which only the test and demo servers use.
#ifndef PROVISION_BUILT_WITH_HTTPLIB
#define PROVISION_BUILT_WITH_HTTPLIB "unknown"
#endif

namespace console {

inline std::string version_text() {
    auto number = [](long major, long minor, long patch) {
        return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
    };
    std::string text = "provision " PROVISION_VERSION_STRING "\n";
    // The OpenSSL headers compiled against, and the library loaded now: a
    // container may carry another libssl3 than the build machine did.
    text += "built with " OPENSSL_VERSION_TEXT " (running " + std::string(OpenSSL_version(OPENSSL_VERSION)) + ")";
    text += ", toml++ " + number(TOML_LIB_MAJOR, TOML_LIB_MINOR, TOML_LIB_PATCH);
    text += ", nlohmann/json " +
            number(NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR, NLOHMANN_JSON_VERSION_PATCH);
    text += ", CLI11 " CLI11_VERSION;
    text += "\ncpp-httplib " PROVISION_BUILT_WITH_HTTPLIB " serves the test and demo servers (not linked here)";
    return text;
}

}  // namespace console

#endif
