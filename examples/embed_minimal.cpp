// SPDX-License-Identifier: MIT
// embed_minimal: the smallest program that embeds provision through the single header.
//
//   embed_minimal CONFIG_PATH_OR_URL WORKSPACE
#include <provision/provision.hpp>

#include <cstdio>

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s CONFIG_PATH_OR_URL WORKSPACE\n", argv[0]);
        return 2;
    }
    auto options = provision::ProvisionOptions::from_environment();
    options.workspace = argv[2];
    provision::ProvisioningSystem system(options);
    // provision() takes what PROVISION_URL takes: an http(s):// URL (Drive
    // share links too) is fetched, anything else is a local file, so a file
    // named "http-models.toml" is still read from disk.
    provision::Report report = system.provision(argv[1]);
    for (const auto& entry : report.entries)
        std::printf(
            "%-9s %s %s\n", provision::to_string(entry.status), entry.key_path.c_str(),
            entry.status == provision::EntryOutcome::Status::failed ? entry.error.message.c_str() : entry.path.c_str());
    for (const auto& problem : report.config_errors) std::printf("%s\n", problem.str().c_str());
    if (report.fatal) std::printf("%s\n", report.fatal->message.c_str());
    return report.exit_code();
}
