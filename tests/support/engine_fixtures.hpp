// SPDX-License-Identifier: MIT
// What the engine-level suites (downloader, resume, faults, and the sources'
// suites that look at the files left behind) build their downloads from:
// an HTTP client that trusts the test CA, a plan for a plain URL, engine
// settings that make failure paths take milliseconds, and a listing of the
// files a run left in a folder.
#ifndef PROVISION_TESTS_ENGINE_FIXTURES_HPP
#define PROVISION_TESTS_ENGINE_FIXTURES_HPP

#include "test_ca.hpp"

#include <provision/provision.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace provision_test {

/// Client options that trust the CA the loopback servers' certificates come from.
inline provision::HttpOptions trusting_options() {
    provision::HttpOptions options;
    options.ca_files = {test_ca().ca_cert_path};
    return options;
}

/// A plan for a plain URL, as the url source makes one. An empty name lets the
/// server's Content-Disposition or the URL choose. Messages name `key_path`.
inline provision::DownloadPlan plan_for(const std::string& url, const std::filesystem::path& folder,
                                        const std::string& name = "",
                                        const std::string& key_path = "models.lora.test") {
    provision::DownloadPlan plan;
    plan.key_path = key_path;
    plan.url = provision::parse_url(url).value();
    plan.folder = folder;
    plan.file_name = name;
    return plan;
}

/// Engine settings for tests: small pieces so small files still split over
/// several connections; quick retries and stall detection so that failure
/// paths take milliseconds. The stall timeout stays at 2 s: a loaded machine
/// is not a stall (tests that stall on purpose set their own).
inline provision::DownloadOptions fast_options(std::size_t connections = 4, int max_attempts = 3) {
    provision::DownloadOptions options;
    options.connections_per_file = connections;
    options.min_segment_size = 64 * 1024;
    options.max_segment_size = 256 * 1024;
    options.write_batch = 64 * 1024;
    options.retry.max_attempts = max_attempts;
    options.retry.base_delay = std::chrono::milliseconds(1);
    options.retry.max_delay = std::chrono::milliseconds(5);
    options.stall_timeout = std::chrono::seconds(2);
    options.checkpoint_interval = std::chrono::milliseconds(20);
    return options;
}

/// Every regular file under a folder, as relative names in sorted order.
inline std::vector<std::string> files_under(const std::filesystem::path& folder) {
    std::vector<std::string> names;
    if (!std::filesystem::exists(folder)) return names;
    for (const auto& item : std::filesystem::recursive_directory_iterator(folder))
        if (item.is_regular_file()) names.push_back(std::filesystem::relative(item.path(), folder).string());
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace provision_test

#endif
