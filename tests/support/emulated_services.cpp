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
#include "seed_world.hpp"

#include <signal.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace {

bool write_file(const std::string& path, const std::string& text) {
    std::string temporary = path + ".tmp";
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    out.close();
    // Renamed into place: whoever waits for the file never reads half of it.
    return out && std::rename(temporary.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string options_file;
    std::string env_file;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--options-file") == 0) options_file = argv[i + 1];
        else if (std::strcmp(argv[i], "--env-file") == 0) env_file = argv[i + 1];
    }
    if (options_file.empty() || env_file.empty() || argc != 5) {
        std::fprintf(stderr, "usage: %s --options-file FILE --env-file FILE\n", argv[0]);
        return 2;
    }
    // Blocked before the servers start their threads, so sigwait below gets them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    provision_test::SeedWorld world;
    std::string options;
    for (const auto& option : world.cli_options()) options += option + "\n";
    std::string env;
    for (const auto& [name, value] : world.env()) env += name + "=" + value + "\n";
    if (!write_file(env_file, env) || !write_file(options_file, options)) {
        std::fprintf(stderr, "emulated_services: cannot write %s or %s\n", options_file.c_str(), env_file.c_str());
        return 1;
    }
    std::fprintf(stderr,
                 "emulated_services: huggingface.co, civitai.com, drive.google.com and example.com on 127.0.0.1; "
                 "options in %s\n",
                 options_file.c_str());
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    return 0;
}
