// SPDX-License-Identifier: MIT
// Serves the world the seed's examples point at (seed_world.hpp) on 127.0.0.1
// until SIGINT or SIGTERM: huggingface.co and its CDN, civitai.com and its
// storage, Google Drive and example.com, each under its real host name, over
// HTTPS with a throw-away CA. For the demo (tools/demo.sh) and for trying
// provision by hand, offline:
//
//   emulated_services --options-file OPTS --env-file ENV &
//   readarray -t options < OPTS; set -a; . ENV; set +a
//   provision tests/data/configs/flux.toml --workspace /tmp/ws "${options[@]}"
//
// OPTS gets the provision options that reach the emulators (--cacert and one
// --connect-to per host), one per line; ENV the tokens they accept.
//
// More, for tests that put something between provision and these services
// (tests/fleet/fleet_test.sh puts a caching nginx there):
//   --hub-file REPO:PATH:BYTES[:xet]  one more Hub file (Git LFS, or Xet), with
//                                     deterministic bytes; repeatable
//   --example-file PATH:BYTES         a public file on example.com; repeatable
//   --tree-page-size N                Hub listings in pages of N items
//   --models-out DIR                  writes every model's bytes, as served, to
//                                     DIR/<name> (the reference copies)
//   --stats-file FILE                 on SIGUSR1, and at exit, writes what the
//                                     file hosts sent: "cdn_bytes N" and so on
#include "seed_world.hpp"

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

bool write_file(const std::string& path, const std::string& text) {
    std::string temporary = path + ".tmp";
    std::ofstream out(temporary, std::ios::trunc | std::ios::binary);
    out << text;
    out.close();
    // Renamed into place: whoever waits for the file never reads half of it.
    return out && std::rename(temporary.c_str(), path.c_str()) == 0;
}

struct Options {
    std::string options_file;
    std::string env_file;
    std::vector<std::string> hub_files;
    std::vector<std::string> example_files;
    std::size_t tree_page_size = 0;
    std::string models_out;
    std::string stats_file;
};

bool parse_options(int argc, char** argv, Options& options) {
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) return false;
        std::string name = argv[i];
        std::string value = argv[i + 1];
        if (name == "--options-file") options.options_file = value;
        else if (name == "--env-file") options.env_file = value;
        else if (name == "--hub-file") options.hub_files.push_back(value);
        else if (name == "--example-file") options.example_files.push_back(value);
        else if (name == "--tree-page-size") options.tree_page_size = std::strtoul(value.c_str(), nullptr, 10);
        else if (name == "--models-out") options.models_out = value;
        else if (name == "--stats-file") options.stats_file = value;
        else return false;
    }
    return !options.options_file.empty() && !options.env_file.empty();
}

/// "a:b:c" -> {"a", "b", "c"}
std::vector<std::string> split_colons(const std::string& text) {
    std::vector<std::string> parts(1);
    for (char c : text) {
        if (c == ':') parts.emplace_back();
        else parts.back() += c;
    }
    return parts;
}

/// Adds REPO:PATH:BYTES[:xet] to the Hub (a repo of its own per REPO, one commit on main).
bool add_hub_files(provision_test::SeedWorld& world, const std::vector<std::string>& specs) {
    std::map<std::string, std::map<std::string, provision_test::HubFile>> repos;
    for (const auto& spec : specs) {
        auto parts = split_colons(spec);
        if (parts.size() < 3 || parts.size() > 4 || parts[0].empty() || parts[1].empty()) return false;
        std::size_t size = std::strtoull(parts[2].c_str(), nullptr, 10);
        bool xet = parts.size() == 4 && parts[3] == "xet";
        if (size == 0 || (parts.size() == 4 && !xet)) return false;
        std::string key = parts[0] + "/" + parts[1];
        world.bytes[key] = provision_test::test_bytes(size, static_cast<unsigned>(world.bytes.size() + 1000));
        repos[parts[0]].insert_or_assign(
            parts[1], provision_test::HubFile(world.bytes[key],
                                              xet ? provision_test::HubStorage::xet : provision_test::HubStorage::lfs));
    }
    for (auto& [repo, files] : repos) {
        world.hub.add_repo(repo);
        world.hub.commit(repo, std::move(files));
    }
    return true;
}

/// Adds PATH:BYTES as public files on example.com.
bool add_example_files(provision_test::SeedWorld& world, const std::vector<std::string>& specs) {
    for (const auto& spec : specs) {
        auto parts = split_colons(spec);
        if (parts.size() != 2 || parts[0].empty() || parts[0][0] != '/') return false;
        std::size_t size = std::strtoull(parts[1].c_str(), nullptr, 10);
        if (size == 0) return false;
        std::string key = "example.com" + parts[0];
        world.bytes[key] = provision_test::test_bytes(size, static_cast<unsigned>(world.bytes.size() + 2000));
        auto body = std::make_shared<const std::string>(world.bytes[key]);
        auto* example = world.example.get();
        example->server().Get(parts[0], [example, body](const httplib::Request& req, httplib::Response& res) {
            example->serve_bytes(res, req, body);
        });
    }
    return true;
}

bool write_models(const provision_test::SeedWorld& world, const std::string& dir) {
    for (const auto& [name, bytes] : world.bytes) {
        std::filesystem::path path = std::filesystem::path(dir) / name;
        std::error_code error;
        std::filesystem::create_directories(path.parent_path(), error);
        if (error || !write_file(path.string(), bytes)) return false;
    }
    return true;
}

bool write_stats(provision_test::SeedWorld& world, const std::string& path) {
    const std::vector<std::pair<std::string, std::uint64_t>> counts = {
        {"cdn_bytes", world.hub.cdn().bytes_sent()},
        {"cdn_requests", world.hub.cdn().requests().size()},
        {"hub_requests", world.hub.hub().requests().size()},
        {"example_bytes", world.example->bytes_sent()},
        {"example_requests", world.example->requests().size()},
    };
    std::string text;
    for (const auto& [name, count] : counts) text += name + " " + std::to_string(count) + "\n";
    return write_file(path, text);
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    if (!parse_options(argc, argv, options)) {
        std::fprintf(stderr,
                     "usage: %s --options-file FILE --env-file FILE [--hub-file REPO:PATH:BYTES[:xet]]... "
                     "[--example-file PATH:BYTES]... [--tree-page-size N] [--models-out DIR] [--stats-file FILE]\n",
                     argv[0]);
        return 2;
    }
    // Blocked before the servers start their threads, so sigwait below gets them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    provision_test::SeedWorld world;
    if (!add_hub_files(world, options.hub_files) || !add_example_files(world, options.example_files)) {
        std::fprintf(stderr, "emulated_services: --hub-file wants REPO:PATH:BYTES[:xet], --example-file /PATH:BYTES\n");
        return 2;
    }
    if (options.tree_page_size > 0) world.hub.set_tree_page_size(options.tree_page_size);
    if (!options.models_out.empty() && !write_models(world, options.models_out)) {
        std::fprintf(stderr, "emulated_services: cannot write the models to %s\n", options.models_out.c_str());
        return 1;
    }
    std::string cli_options;
    for (const auto& option : world.cli_options()) cli_options += option + "\n";
    std::string env;
    for (const auto& [name, value] : world.env()) env += name + "=" + value + "\n";
    // The options file last: whoever waits for it finds everything else ready.
    if (!write_file(options.env_file, env) || !write_file(options.options_file, cli_options)) {
        std::fprintf(stderr, "emulated_services: cannot write %s or %s\n", options.options_file.c_str(),
                     options.env_file.c_str());
        return 1;
    }
    std::fprintf(stderr,
                 "emulated_services: huggingface.co, civitai.com, drive.google.com and example.com on 127.0.0.1; "
                 "options in %s\n",
                 options.options_file.c_str());
    int signal_number = 0;
    while (true) {
        sigwait(&stop_signals, &signal_number);
        if (signal_number != SIGUSR1) break;
        if (!options.stats_file.empty() && !write_stats(world, options.stats_file))
            std::fprintf(stderr, "emulated_services: cannot write %s\n", options.stats_file.c_str());
    }
    if (!options.stats_file.empty()) write_stats(world, options.stats_file);
    return 0;
}
