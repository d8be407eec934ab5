// SPDX-License-Identifier: MIT
// provision: ProvisioningSystem::where the config comes from. A local file, or a URL
// (plain http only from this machine unless allowed; a Drive link runs
// Drive's flow); either way the text goes on to provision_from_text (run.hpp).
// Before the guard: provisioner.hpp includes its definitions, this file in its
// place among them, whichever of them is included first.
#include "../provisioner.hpp"

#ifndef PROVISION_PROVISIONER_CONFIG_SOURCE_HPP
#define PROVISION_PROVISIONER_CONFIG_SOURCE_HPP

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace provision {

inline Result<std::string> ProvisioningSystem::fetch_config(const std::string& url_text) {
    auto url = parse_url(url_text);
    if (!url) return url.error();
    // A Drive share link names a file, not its bytes: run Drive's flow (sources/gdrive/gdrive.hpp).
    if (auto drive = parse_drive_link(url.value()))
        return fetch_drive_text(http_, *drive, "the config URL " + url->redacted(), 4u << 20);
    HttpRequest request;
    request.url = url.value();
    auto response = http_.fetch(request, 4u << 20);
    if (!response) return make_error(response.error().code, "cannot download the config: " + response.error().message);
    if (response->status != 200)
        return make_error(
            response->status == 404                              ? errc::not_found
            : response->status == 401 || response->status == 403 ? errc::auth
                                                                 : errc::network,
            "cannot download the config: " + url->redacted() + " answered HTTP " + std::to_string(response->status));
    if (detail::looks_like_html(response->body))
        return make_error(errc::config, "the config URL " + url->redacted() +
                                            " returned a web page, not a TOML file; link to the raw file");
    return response->body;
}
inline Report ProvisioningSystem::provision_from_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        Report report;
        report.origin = path.string();
        report.fatal =
            make_error(errc::usage, "cannot read the config file " + path.string() + ": " +
                                        (std::filesystem::exists(path) ? "permission denied" : "no such file"));
        return report;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return provision_from_text(text.str(), path.string());
}
inline Report ProvisioningSystem::provision_from_url(const std::string& url) {
    log_.open(options_.log_file);
    auto parsed = parse_url(url);
    if (parsed && parsed->scheme == "http" && !detail::is_loopback_host(parsed->host) && !options_.allow_http_config) {
        Report report;
        report.origin = redact_url(url);
        report.fatal =
            make_error(errc::unsafe, "refusing the config at " + report.origin +
                                         ": over plain http anyone on the network path can rewrite it; serve it "
                                         "over https, or set PROVISION_ALLOW_HTTP_CONFIG=1 to accept it");
        log_.write("error: " + report.fatal->message);
        return report;
    }
    auto text = fetch_config(url);
    if (!text) {
        Report report;
        report.origin = redact_url(url);
        report.fatal = text.error();
        report.fatal->message = redactor_.apply(report.fatal->message);
        log_.write("error: " + report.fatal->message);
        return report;
    }
    ConfigTrust trust = options_.remote_config;
    trust.remote = true;
    return provision_from_text(text.value(), redact_url(url), trust);
}
inline Result<Layout> ProvisioningSystem::layout_for(const ManifestSettings& settings) const {
    if (options_.layout) return *options_.layout;
    std::string name = !options_.layout_name.empty() ? options_.layout_name
                       : !settings.layout.empty()    ? settings.layout
                                                     : "sdnext";
    std::filesystem::path models_dir = options_.models_dir;
    if (models_dir.empty() && !settings.models_dir.empty()) {
        models_dir = settings.models_dir;
        if (models_dir.is_relative()) models_dir = options_.workspace / models_dir;
    }
    auto layout = Layout::by_name(name, options_.workspace, models_dir);
    if (!layout) return layout.error();
    for (const auto& [category, folder] : settings.directories) layout->add(category, folder);
    return layout;
}
}  // namespace provision

#endif  // PROVISION_PROVISIONER_CONFIG_SOURCE_HPP
