// SPDX-License-Identifier: MIT
// The provision example program, run as a user would run it.
#include "common.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"

#include <cctype>
#include <set>
#include <sstream>

namespace suite_cli {  // apart from the suites compiled with it (tests/meson.build)

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

TEST_CASE("cli: --print-schema prints the schema of the source tree, byte for byte, and nothing else") {
    auto printed = run_process({cli, "--print-schema"});
    CHECK(printed.exit_code == 0);
    CHECK(printed.err.empty());
    auto file =
        provision_test::read_whole_file(std::filesystem::path(PROVISION_SOURCE_DIR) / "schema/provision.schema.json");
    REQUIRE(!file.empty());
    CHECK(printed.out == file);
    auto schema = nlohmann::json::parse(printed.out);
    CHECK(schema.at("$schema") == "http://json-schema.org/draft-07/schema#");
    CHECK(schema.at("properties").contains("models"));
}

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
    // ... and the libraries it was built with, for a bug report. The test
    // program's own headers say which versions those are.
    CHECK(version.out.find("built with OpenSSL 3.") != std::string::npos);
    CHECK(version.out.find("(running OpenSSL 3.") != std::string::npos);
    CHECK(version.out.find("toml++ " + std::to_string(TOML_LIB_MAJOR) + "." + std::to_string(TOML_LIB_MINOR) + ".") !=
          std::string::npos);
    CHECK(version.out.find("nlohmann/json " + std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
                           std::to_string(NLOHMANN_JSON_VERSION_MINOR) + ".") != std::string::npos);
    CHECK(version.out.find("cpp-httplib " CPPHTTPLIB_VERSION " ") != std::string::npos);
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
    std::string model = provision_test::test_bytes(300000, 21);
    std::string config = "[models.checkpoints]\nbase = \"https://models.example/base.safetensors\"\n";
    auto server = LoopbackServer::https({"models.example"});
    server->server().Get("/config.toml", [&](const httplib::Request&, httplib::Response& res) {
        res.set_content(config, "text/plain");
    });
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
    auto dry = run_process(
        cli_args(*server, {"https://models.example/config.toml", "--dry-run", "--workspace", other.path().string()}));
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
    server->server().Get("/denied.safetensors",
                         [](const httplib::Request&, httplib::Response& res) { res.status = 403; });
    // A sign-in page labelled as a binary: only its first bytes tell it apart.
    server->server().Get("/disguised.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>sign in</body></html>\n",
                        "application/octet-stream");
    });
    TempDir dir;
    auto run_with = [&](const std::string& path) {
        auto config = dir.write("c.toml", "[models.lora]\nx = \"https://models.example" + path + "\"\n");
        return run_process(cli_args(*server, {config.string(), "--workspace", (dir / "ws").string()}));
    };
    CHECK(run_with("/missing.safetensors").exit_code == 4);
    CHECK(run_with("/login.safetensors").exit_code == 8);
    CHECK(run_with("/denied.safetensors").exit_code == 3);
    auto disguised = run_with("/disguised.safetensors");
    CHECK(disguised.exit_code == 8);
    CHECK_FALSE(std::filesystem::exists(dir / "ws/sdnext/models/Lora/disguised.safetensors"));
    // without --cacert the loopback CA is not trusted: refused at once (no
    // retries: time does not fix a certificate), explained, exit 8
    auto config = dir.write("c.toml", "[models.lora]\nx = \"https://models.example/a.bin\"\n");
    auto untrusted = run_process({cli, config.string(), "--workspace", (dir / "ws").string(), "--connect-to",
                                  "models.example:443:127.0.0.1:" + std::to_string(server->port())});
    CHECK(untrusted.exit_code == 8);
    CHECK(untrusted.out.find("not trusted") != std::string::npos);
}

TEST_CASE("cli: a server that keeps failing exits 5, a persistent 429 exits 6, after the retries asked for") {
    auto server = LoopbackServer::https({"models.example"});
    server->server().Get("/down.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.status = 500;
        res.set_content("internal error", "text/plain");
    });
    server->server().Get("/limited.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.status = 429;
        res.set_header("Retry-After", "1");
        res.set_content("slow down", "text/plain");
    });
    TempDir dir;
    auto asked_for = [&](const std::string& path) {
        std::size_t count = 0;
        for (const auto& request : server->requests()) count += request.path == path;
        return count;
    };
    struct Case {
        std::string path;
        std::string retries;
        int exit_code;
        std::size_t requests;
    };
    for (const Case& each : {Case{"/down.safetensors", "1", 5, 2}, Case{"/down.safetensors", "0", 5, 1},
                             Case{"/limited.safetensors", "1", 6, 2}}) {
        CAPTURE(each.path);
        CAPTURE(each.retries);
        auto config = dir.write("c.toml", "[models.lora]\nx = \"https://models.example" + each.path + "\"\n");
        std::size_t before = asked_for(each.path);
        auto run = run_process(
            cli_args(*server, {config.string(), "--workspace", (dir / "ws").string(), "--retries", each.retries}));
        INFO(run.out);
        CHECK(run.signal == 0);
        CHECK(run.exit_code == each.exit_code);
        CHECK(asked_for(each.path) - before == each.requests);  // the first try and the retries, no more
        CHECK(run.out.find("gave up after " + std::to_string(each.requests) + " attempts") != std::string::npos);
    }
}

TEST_CASE("cli: a SHA-256 mismatch exits 8 and keeps nothing; the right digest installs") {
    // The expected digest is written out, not computed by the code under test:
    // `head -c 1048576 /dev/zero | sha256sum`.
    const std::string zeros_sha256 = "30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58";
    const std::string other_sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";  // of "abc"
    auto server = LoopbackServer::https({"models.example"});
    server->server().Get("/zeros.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(std::string(1048576, '\0'), "application/octet-stream");
    });
    TempDir dir;
    auto target = dir / "ws/sdnext/models/Lora/zeros.safetensors";
    auto run_with = [&](const std::string& sha256) {
        auto config = dir.write("c.toml",
                                "[models.lora.zeros]\nurl = \"https://models.example/zeros.safetensors\"\n"
                                "sha256 = \"" +
                                    sha256 + "\"\n");
        return run_process(
            cli_args(*server, {config.string(), "--workspace", (dir / "ws").string(), "--retries", "0"}));
    };
    auto wrong = run_with(other_sha256);
    INFO(wrong.out);
    CHECK(wrong.signal == 0);
    CHECK(wrong.exit_code == 8);
    CHECK(wrong.out.find("SHA-256 mismatch") != std::string::npos);
    CHECK(wrong.out.find(other_sha256) != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(target));
    auto right = run_with(zeros_sha256);
    INFO(right.out);
    CHECK(right.exit_code == 0);
    REQUIRE(std::filesystem::exists(target));
    CHECK(std::filesystem::file_size(target) == 1048576);
}

TEST_CASE("cli: a folder that cannot be made exits 9, naming it") {
    // The layout's folder is a regular file here: mkdir fails (ENOTDIR), a
    // local file-system error, which must read 9 whatever the user is (root
    // ignores permission bits, so a read-only folder would not do).
    TempDir dir;
    auto config = dir.write("c.toml", "[models.lora]\nx = \"https://models.example/a.safetensors\"\n");
    std::filesystem::create_directories(dir / "ws");
    dir.write("ws/sdnext", "not a folder");
    auto run = run_process({cli, config.string(), "--workspace", (dir / "ws").string()});
    INFO(run.out);
    CHECK(run.signal == 0);
    CHECK(run.exit_code == 9);
    CHECK(run.out.find("cannot create") != std::string::npos);
    CHECK(run.out.find("Not a directory") != std::string::npos);
}

TEST_CASE("cli: the README's exit-code table and --help list the same codes") {
    // Each side is read as text: README.md's "### Exit codes" table, and the
    // "Exit codes:" block of --help. A code added to one and not the other fails.
    auto numbers_in = [](const std::string& text) {
        std::set<int> found;
        std::size_t i = 0;
        while (i < text.size()) {
            if (std::isdigit(static_cast<unsigned char>(text[i]))) {
                std::size_t end = i;
                while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
                found.insert(std::stoi(text.substr(i, end - i)));
                i = end;
            } else {
                ++i;
            }
        }
        return found;
    };
    std::string readme = provision_test::read_whole_file(std::filesystem::path(PROVISION_SOURCE_DIR) / "README.md");
    auto section = readme.find("### Exit codes");
    REQUIRE(section != std::string::npos);
    std::set<int> from_readme;
    std::istringstream table(readme.substr(section, readme.find("\n#", section + 1) - section));
    for (std::string line; std::getline(table, line);) {
        if (line.rfind("| ", 0) != 0) continue;
        auto first_cell = line.substr(2, line.find('|', 2) - 2);  // "5 " or "130 / 143 "
        for (int code : numbers_in(first_cell)) from_readme.insert(code);
    }
    auto help = run_process({cli, "--help"});
    REQUIRE(help.exit_code == 0);
    auto block = help.out.find("Exit codes:");
    REQUIRE(block != std::string::npos);
    std::set<int> from_help;
    std::istringstream lines(help.out.substr(block));
    std::string heading;
    std::getline(lines, heading);
    for (std::string line; std::getline(lines, line) && !line.empty();) {
        if (line.size() < 3 || line[0] != ' ' || !std::isdigit(static_cast<unsigned char>(line[2]))) continue;
        auto code_end = line.find_first_not_of("0123456789", 2);
        from_help.insert(std::stoi(line.substr(2, code_end - 2)));
        if (line.find("143 terminated") != std::string::npos) from_help.insert(143);
    }
    CHECK(from_readme == std::set<int>{0, 2, 3, 4, 5, 6, 7, 8, 9, 70, 130, 143});
    CHECK(from_help == from_readme);
}

}  // namespace suite_cli
