// SPDX-License-Identifier: MIT
// file_server: a small loopback HTTP file server for the offline demo.
//
//   file_server ROOT [--port N] [--ready-file PATH]
//
// Serves ROOT on 127.0.0.1 with Range support, so provision can be tried end to
// end without a network. Prints "listening on http://127.0.0.1:PORT" once ready
// (and writes the port to --ready-file), then serves until SIGINT/SIGTERM.
#include <httplib.h>

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>

namespace {
httplib::Server* running_server = nullptr;
extern "C" void on_signal(int) {
    if (running_server) running_server->stop();
}
}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"file_server: serve a folder on 127.0.0.1 for the provision demo"};
    std::string root;
    int port = 0;
    std::string ready_file;
    app.add_option("root", root, "folder to serve")->required()->check(CLI::ExistingDirectory);
    app.add_option("--port", port, "port (0: any free port)")->check(CLI::Range(0, 65535));
    app.add_option("--ready-file", ready_file, "write the port number here once listening");
    CLI11_PARSE(app, argc, argv);

    httplib::Server server;
    for (const char* extension : {"safetensors", "ckpt", "pt", "pth", "bin", "gguf", "onnx", "sft"})
        server.set_file_extension_and_mimetype_mapping(extension, "application/octet-stream");
    server.set_file_extension_and_mimetype_mapping("toml", "application/toml");
    if (!server.set_mount_point("/", root)) {
        std::fprintf(stderr, "file_server: cannot serve %s\n", root.c_str());
        return 1;
    }
    server.set_logger([](const httplib::Request& request, const httplib::Response& response) {
        std::fprintf(stderr, "file_server: %s %s -> %d\n", request.method.c_str(), request.path.c_str(),
                     response.status);
    });
    int bound = port == 0 ? server.bind_to_any_port("127.0.0.1") : (server.bind_to_port("127.0.0.1", port) ? port : -1);
    if (bound < 0) {
        std::fprintf(stderr, "file_server: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    running_server = &server;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    if (!ready_file.empty()) std::ofstream(ready_file) << bound << "\n";
    std::printf("listening on http://127.0.0.1:%d\n", bound);
    std::fflush(stdout);
    server.listen_after_bind();
    return 0;
}
