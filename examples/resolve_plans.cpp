// SPDX-License-Identifier: MIT
// resolve_plans: the sources component. Every config entry becomes a
// provision::DownloadPlan (where to fetch, what size and SHA-256 to expect,
// where it goes) with metadata requests only: a Hugging Face HEAD, CivitAI's
// version details, Google Drive's confirmation flow. A plain URL needs no
// request at all. No model byte is fetched and nothing is written.
//
//   resolve_plans CONFIG.toml [--workspace DIR] [--cacert FILE]... [--connect-to HOST1:PORT1:HOST2:PORT2]...
//
// HF_TOKEN, CIVITAI_TOKEN, HF_ENDPOINT, WORKSPACE and the proxy variables are
// read as the CLI reads them. Exit status: 0 when every entry resolved,
// otherwise the CLI's code for the first failure (2 config, 3 auth, 4 not found...).
#include <provision/provision.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace {
int usage_error(const std::string& message) {
    std::fprintf(stderr, "%s\n", message.c_str());
    return 2;  // the CLI's code for usage and configuration errors
}
}  // namespace

int main(int argc, char** argv) {
    provision::ProvisionOptions options;
    try {
        options = provision::ProvisionOptions::from_environment();  // throws only for a malformed proxy variable
    } catch (const provision::error& e) {
        return usage_error(std::string("error: ") + e.what());
    }
    std::string config_path;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        bool valued = i + 1 < argc;
        if (arg == "--workspace" && valued) {
            options.workspace = argv[++i];
        } else if (arg == "--cacert" && valued) {
            options.http.ca_files.push_back(argv[++i]);  // trusted on top of the system store
        } else if (arg == "--connect-to" && valued) {
            auto rule = provision::ConnectTo::parse(argv[++i]);  // TLS still checks the original host name
            if (!rule) return usage_error("error: " + rule.error().message);
            options.http.connect_to.push_back(rule.value());
        } else if (config_path.empty() && arg.rfind("-", 0) != 0) {
            config_path = arg;
        } else {
            return usage_error(std::string("usage: ") + argv[0] +
                               " CONFIG.toml [--workspace DIR] [--cacert FILE]... [--connect-to RULE]...");
        }
    }
    std::ifstream in(config_path, std::ios::binary);
    if (config_path.empty() || !in) return usage_error("error: cannot read the config " + config_path);
    std::ostringstream text;
    text << in.rdbuf();
    provision::Manifest manifest = provision::parse_config(text.str(), config_path);
    if (!manifest.ok()) return usage_error(manifest.error_text() + "the config is not valid (parse_config says more)");

    // The folders come from the layout the config asks for, as in a real run.
    std::filesystem::path models_dir = manifest.settings.models_dir;
    if (!models_dir.empty() && models_dir.is_relative()) models_dir = options.workspace / models_dir;
    auto layout = provision::Layout::by_name(manifest.settings.layout.empty() ? "sdnext" : manifest.settings.layout,
                                             options.workspace, models_dir);
    if (!layout) return usage_error("error: " + layout.error().message);
    for (const auto& [category, folder] : manifest.settings.directories) layout->add(category, folder);

    provision::HttpClient http(options.http);
    provision::ResolveContext context{http, options.credentials, options.hf_endpoint};
    int status = 0;
    // expand_entries turns a several-file Hugging Face entry into one entry per
    // file and gives a [models.auto] CivitAI entry its category; others pass through.
    for (const auto& expanded : provision::expand_entries(manifest.entries, context)) {
        const provision::Entry& entry = expanded.entry;
        auto folder = layout->folder_for(entry.category);
        provision::Result<provision::DownloadPlan> plan =
            expanded.error ? *expanded.error
            : !folder ? provision::make_error(provision::errc::config, entry.key_path + ": " + folder.error().message)
                      : provision::resolve_entry(entry, context);
        std::printf("%s\n", entry.key_path.c_str());
        if (!plan) {
            std::printf("  error   %s\n", plan.error().message.c_str());
            if (status == 0) status = provision::exit_code(plan.error().code);
            continue;
        }
        // A plain URL without filename is named by its server's answer, later.
        std::string target = plan->file_name.empty() ? folder->string() + "/ (name chosen by the server)"
                                                     : (folder.value() / plan->file_name).string();
        std::string size = plan->size ? std::to_string(*plan->size) + " bytes" : "unknown";
        std::string digest = !plan->sha256.empty()     ? plan->sha256
                             : !plan->git_sha1.empty() ? "unknown; git SHA-1 " + plan->git_sha1 + " verifies it"
                                                       : "unknown";
        // redacted(): a signed CDN link carries its credential in the query.
        std::printf("  url     %s\n  target  %s\n  size    %s\n  sha256  %s\n", plan->url.redacted().c_str(),
                    target.c_str(), size.c_str(), digest.c_str());
    }
    return status;
}
