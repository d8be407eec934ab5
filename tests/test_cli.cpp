// SPDX-License-Identifier: MIT
// The provision example program, run as a user would run it.
#include "common.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"

using provision_test::LoopbackServer;
using provision_test::run_process;
using provision_test::TempDir;

namespace {

const std::string cli = PROVISION_CLI_PATH;

/// Routes the real host name to the loopback server, as a mirror or test would.
std::vector<std::string> cli_args(const LoopbackServer& server, std::vector<std::string> args) {
    std::vector<std::string> out = {cli, "--cacert", provision_test::test_ca().ca_cert_path, "--connect-to",
                                    "models.example:443:127.0.0.1:" + std::to_string(server.port())};
    out.insert(out.end(), args.begin(), args.end());
    return out;
}

}  // namespace

TEST_CASE("cli: --help and --version") {
    auto help = run_process({cli, "--help"});
    CHECK(help.exit_code == 0);
    CHECK(help.out.find("--dry-run") != std::string::npos);
    CHECK(help.out.find("--connect-to") != std::string::npos);
    CHECK(help.out.find("PROVISION_URL") != std::string::npos);
    CHECK(help.out.find("Exit codes:") != std::string::npos);
    auto version = run_process({cli, "--version"});
    CHECK(version.exit_code == 0);
    CHECK(version.out.find("provision " PROVISION_VERSION_STRING) != std::string::npos);
}

TEST_CASE("cli: usage errors exit 2 with a message") {
    auto nothing = run_process({cli});
    CHECK(nothing.exit_code == 2);
    CHECK(nothing.err.find("no config given") != std::string::npos);
    auto bad_flag = run_process({cli, "--no-such-flag"});
    CHECK(bad_flag.exit_code == 2);
    auto bad_jobs = run_process({cli, "x.toml", "--jobs", "0"});
    CHECK(bad_jobs.exit_code == 2);
    auto bad_rule = run_process({cli, "x.toml", "--connect-to", "nonsense"});
    CHECK(bad_rule.exit_code == 2);
    CHECK(bad_rule.err.find("HOST1:PORT1:HOST2:PORT2") != std::string::npos);
    auto missing = run_process({cli, "/nonexistent/config.toml", "--workspace", "/tmp"});
    CHECK(missing.exit_code == 2);
    CHECK(missing.err.find("cannot read the config file") != std::string::npos);
}

TEST_CASE("cli: a bad config names file, line and key and exits 2") {
    TempDir dir;
    auto config = dir.write("bad.toml", "[models.lora.x]\nsource = \"civitai\"\nversion_id = true\n");
    auto result = run_process({cli, config.string(), "--workspace", (dir / "ws").string()});
    CHECK(result.exit_code == 2);
    CHECK(result.err.find(config.string() + ":3:") != std::string::npos);
    CHECK(result.err.find("models.lora.x.version_id") != std::string::npos);
}

TEST_CASE("cli: provisions from PROVISION_URL into WORKSPACE and exits 0") {
    auto server = LoopbackServer::https({"models.example"});
    std::string model = provision_test::test_bytes(300000, 21);
    std::string config = "[models.checkpoints]\nbase = \"https://models.example/base.safetensors\"\n";
    server->server().Get("/config.toml", [&](const httplib::Request&, httplib::Response& res) { res.set_content(config, "text/plain"); });
    server->server().Get("/base.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, model);
    });
    TempDir workspace;
    auto result = run_process(cli_args(*server, {}), {{"PROVISION_URL", "https://models.example/config.toml"},
                                                      {"WORKSPACE", workspace.path().string()}});
    INFO(result.err);
    CHECK(result.exit_code == 0);
    auto installed = workspace.path() / "sdnext/models/Stable-diffusion/base.safetensors";
    CHECK(provision_test::read_whole_file(installed) == model);
    CHECK(result.out.find("installed") != std::string::npos);
    CHECK(std::filesystem::exists(workspace.path() / "logs/provision.log"));

    // --dry-run on the same config downloads nothing and still exits 0.
    auto before = server->requests().size();
    TempDir other;
    auto dry = run_process(cli_args(*server, {"https://models.example/config.toml", "--dry-run", "--workspace", other.path().string()}));
    CHECK(dry.exit_code == 0);
    // The config, and the model's first byte only (is the link alive, how big is it).
    auto requests = server->requests();
    REQUIRE(requests.size() == before + 2);
    CHECK(requests.back().header("Range") == "bytes=0-0");
    CHECK_FALSE(std::filesystem::exists(other.path() / "sdnext/models/Stable-diffusion"));
}

TEST_CASE("cli: exit codes follow the class of failure") {
    auto server = LoopbackServer::https({"models.example"});
    server->server().Get("/login.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("<html>login</html>", "text/html");
    });
    server->server().Get("/denied.safetensors", [](const httplib::Request&, httplib::Response& res) { res.status = 403; });
    TempDir dir;
    auto run_with = [&](const std::string& path) {
        auto config = dir.write("c.toml", "[models.lora]\nx = \"https://models.example" + path + "\"\n");
        return run_process(cli_args(*server, {config.string(), "--workspace", (dir / "ws").string()}));
    };
    CHECK(run_with("/missing.safetensors").exit_code == 4);
    CHECK(run_with("/login.safetensors").exit_code == 8);
    CHECK(run_with("/denied.safetensors").exit_code == 3);
    // without --cacert the loopback CA is not trusted: refused at once (no
    // retries: time does not fix a certificate), explained, exit 8
    auto config = dir.write("c.toml", "[models.lora]\nx = \"https://models.example/a.bin\"\n");
    auto untrusted = run_process({cli, config.string(), "--workspace", (dir / "ws").string(), "--connect-to",
                                  "models.example:443:127.0.0.1:" + std::to_string(server->port())});
    CHECK(untrusted.exit_code == 8);
    CHECK(untrusted.out.find("not trusted") != std::string::npos);
}
