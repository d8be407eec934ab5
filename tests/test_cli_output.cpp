// SPDX-License-Identifier: MIT
// What the provision CLI shows: plain log lines, the live terminal view, --json and --report.
#include "common.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"

#include <nlohmann/json.hpp>

#include <set>
#include <thread>

using provision_test::LoopbackServer;
using provision_test::run_process;
using provision_test::TempDir;

namespace {

const std::string cli = PROVISION_CLI_PATH;

/// A server whose model trickles out over about a second, so progress has something to show.
std::unique_ptr<LoopbackServer> slow_model_server(const std::string& body) {
    auto server = LoopbackServer::https({"models.example"});
    server->server().Get("/slow.safetensors", [body](const httplib::Request&, httplib::Response& res) {
        res.set_content_provider(body.size(), "application/octet-stream",
                                 [body](std::size_t offset, std::size_t, httplib::DataSink& sink) {
                                     std::size_t piece = std::min<std::size_t>(body.size() - offset, body.size() / 10);
                                     std::this_thread::sleep_for(std::chrono::milliseconds(120));
                                     sink.write(body.data() + offset, piece);
                                     return true;
                                 });
    });
    server->server().Get("/fast.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(std::string(1000, 'f'), "application/octet-stream");
    });
    return server;
}

std::vector<std::string> base_args(const LoopbackServer& server, const std::filesystem::path& config,
                                   const std::filesystem::path& workspace) {
    return {cli,
            config.string(),
            "--workspace",
            workspace.string(),
            "--cacert",
            provision_test::test_ca().ca_cert_path,
            "--connect-to",
            "models.example:443:127.0.0.1:" + std::to_string(server.port()),
            "--connections",
            "1"};
}

const char* config_text = "[models.checkpoints]\nslow = \"https://models.example/slow.safetensors\"\n"
                          "[models.lora]\nfast = \"https://models.example/fast.safetensors\"\n"
                          "missing = \"https://models.example/missing.safetensors\"\n";

}  // namespace

TEST_CASE("cli output: without a terminal, plain lines at start, every 10% and at the end") {
    auto server = slow_model_server(provision_test::test_bytes(8 << 20, 4));
    TempDir dir;
    auto config = dir.write("c.toml", config_text);
    auto result = run_process(base_args(*server, config, dir / "ws"), {{"NO_COLOR", ""}});
    CHECK(result.exit_code == 4);
    CHECK(result.err.find("\x1b[") == std::string::npos);  // no escape sequences in a log
    CHECK(result.err.find("start models.checkpoints.slow -> ") != std::string::npos);
    CHECK(result.err.find("done models.checkpoints.slow -> ") != std::string::npos);
    CHECK(result.err.find("FAILED models.lora.missing") != std::string::npos);
    std::size_t progress_lines = 0;
    for (std::size_t pos = result.err.find("models.checkpoints.slow: "); pos != std::string::npos;
         pos = result.err.find("models.checkpoints.slow: ", pos + 1))
        ++progress_lines;
    CHECK(progress_lines >= 3);
    CHECK(progress_lines <= 11);
    CHECK(result.out.find("3 entries: 2 ok, 1 failed") != std::string::npos);
    CHECK(result.out.find("exit code 4") != std::string::npos);

    auto quiet = run_process([&] {
        auto args = base_args(*server, config, dir / "ws2");
        args.push_back("--quiet");
        return args;
    }());
    CHECK(quiet.err.find("start ") == std::string::npos);
    CHECK(quiet.err.find("FAILED models.lora.missing") != std::string::npos);
}

TEST_CASE("cli output: on a terminal the live view redraws in place") {
    if (!std::filesystem::exists("/usr/bin/script")) {
        MESSAGE("skipped: script(1) is not installed, so no pseudo-terminal can be made");
        return;
    }
    auto server = slow_model_server(provision_test::test_bytes(8 << 20, 6));
    TempDir dir;
    auto config = dir.write("c.toml", config_text);
    std::string command;
    for (const auto& arg : base_args(*server, config, dir / "ws")) command += "'" + arg + "' ";
    auto result = run_process({"/usr/bin/script", "-qfec", command + "2>&1", "/dev/null"}, {{"TERM", "xterm"}});
    CHECK(result.exit_code == 4);
    CHECK(result.out.find("\x1b[1A\x1b[2K") != std::string::npos);  // cursor up + clear line: an in-place redraw
    CHECK(result.out.find("total: ") != std::string::npos);
    CHECK(result.out.find("\x1b[32mdone\x1b[0m") != std::string::npos);  // colour on a terminal
    std::string fresh;  // a new workspace, or everything would already be in place
    for (const auto& arg : base_args(*server, config, dir / "ws-plain")) fresh += "'" + arg + "' ";
    auto plain = run_process({"/usr/bin/script", "-qfec", fresh + "2>&1", "/dev/null"}, {{"TERM", "xterm"}, {"NO_COLOR", "1"}});
    CHECK(plain.out.find("\x1b[32m") == std::string::npos);
    CHECK(plain.out.find("total: ") != std::string::npos);
}

TEST_CASE("cli output: --json is one JSON object per line, ending with the report; --report writes it to a file") {
    auto server = slow_model_server(provision_test::test_bytes(1 << 20, 8));
    TempDir dir;
    auto config = dir.write("c.toml", config_text);
    auto args = base_args(*server, config, dir / "ws");
    args.push_back("--json");
    args.push_back("--report");
    args.push_back((dir / "report.json").string());
    auto result = run_process(args);
    CHECK(result.exit_code == 4);
    std::vector<nlohmann::json> lines;
    std::size_t start = 0;
    while (start < result.out.size()) {
        std::size_t end = result.out.find('\n', start);
        lines.push_back(nlohmann::json::parse(result.out.substr(start, end - start)));  // throws if not JSON
        start = end + 1;
    }
    REQUIRE(lines.size() >= 5);
    std::set<std::string> kinds;
    for (const auto& line : lines) kinds.insert(line.at("event").get<std::string>());
    CHECK(kinds.count("start"));
    CHECK(kinds.count("done"));
    CHECK(kinds.count("error"));
    const auto& report = lines.back();
    CHECK(report.at("event") == "report");
    CHECK(report.at("ok") == false);
    CHECK(report.at("exit_code") == 4);
    REQUIRE(report.at("entries").size() == 3);
    const auto& slow = report.at("entries")[0];
    CHECK(slow.at("entry") == "models.checkpoints.slow");
    CHECK(slow.at("status") == "installed");
    CHECK(slow.at("size") == 1 << 20);
    CHECK(slow.at("sha256").get<std::string>().size() == 64);
    CHECK(slow.at("source") == "url");
    const auto& missing = report.at("entries")[2];
    CHECK(missing.at("status") == "failed");
    CHECK(missing.at("error").at("kind") == "not_found");
    CHECK(missing.at("error").at("exit_code") == 4);
    auto from_file = nlohmann::json::parse(provision_test::read_whole_file(dir / "report.json"));
    CHECK(from_file.at("entries") == report.at("entries"));
    CHECK(result.err.empty());  // nothing else on the terminal in JSON mode
}
