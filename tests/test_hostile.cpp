// SPDX-License-Identifier: MIT
// Hostile servers, tried from outside as a user meets them: the real provision
// program as a child process (default signal dispositions, empty mask) against
// a misbehaving HTTPS server in another process (tests/support/hostile_server.cpp).
// Nothing a server sends may end the run: the process exits by itself, with
// its summary, and the entries the server did not break are installed.
#include "common.hpp"
#include "support/run_process.hpp"
#include "support/server_process.hpp"
#include "support/test_ca.hpp"
#include "support/test_bytes.hpp"

#include <chrono>
#include <string>

using provision_test::ProcessResult;
using provision_test::ServerProcess;
using provision_test::TempDir;

namespace {

const std::string cli = PROVISION_CLI_PATH;
const std::string hostile_server = PROVISION_HOSTILE_SERVER_PATH;

/// The hostile server over TLS, with a certificate for models.example from the test CA.
std::unique_ptr<ServerProcess> start_hostile(const TempDir& dir) {
    auto leaf = provision_test::test_ca().issue({"models.example"});
    return std::make_unique<ServerProcess>(std::vector<std::string>{
        hostile_server, "--cert", leaf.cert_path, "--key", leaf.key_path, "--log", (dir / "requests.log").string()});
}

ProcessResult run_cli(const ServerProcess& server, const TempDir& workspace, const std::string& config) {
    auto config_path = workspace.write("provision.toml", config);
    return provision_test::run_process({cli, config_path.string(), "--cacert", provision_test::test_ca().ca_cert_path,
                                        "--connect-to", "models.example:443:127.0.0.1:" + std::to_string(server.port())},
                                       {{"WORKSPACE", workspace.path().string()}});
}

std::string installed(const TempDir& workspace, const std::string& name) {
    return provision_test::read_whole_file(workspace.path() / "sdnext/models/Stable-diffusion" / name);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("hostile: a stalled HTTPS download is dropped at the 30 s default and retried; the run lives and both files install") {
    // The server sends 1 MiB of 3 MiB and then nothing, socket open. When the
    // watchdog shuts that socket down, OpenSSL's next write on it (an alert,
    // a key update) used to raise SIGPIPE and end the process: exit by signal
    // 13, no summary, the other download lost with it.
    TempDir workspace;
    auto server = start_hostile(workspace);
    auto started = std::chrono::steady_clock::now();
    auto run = run_cli(*server, workspace,
                       "[models.checkpoints]\n"
                       "stalled = \"https://models.example/stall-once/stalled.safetensors\"\n"
                       "fine = \"https://models.example/ok/fine.safetensors\"\n");
    auto took = std::chrono::steady_clock::now() - started;
    INFO(run.out);
    INFO(run.err);
    CHECK(run.signal == 0);
    CHECK(run.exit_code == 0);
    CHECK(contains(run.out, "summary"));
    CHECK(installed(workspace, "stalled.safetensors") == provision_test::test_bytes(3u << 20, 77));
    CHECK(installed(workspace, "fine.safetensors") == provision_test::test_bytes(2u << 20, 77));
    // The stall was detected by the default limit (30 s without enough bytes), not sooner and not much later.
    CHECK(took >= std::chrono::seconds(29));
    CHECK(took < std::chrono::seconds(90));
    CHECK(contains(provision_test::read_whole_file(workspace.path() / "logs/provision.log"), "retry"));
}

TEST_CASE("hostile: a folded header line made only of blanks neither kills the run nor spoils the answer") {
    // "X-Fold: a\r\n \r\n" once made the response reader call substr(npos);
    // the exception escaped a worker thread and std::terminate aborted every
    // download.
    TempDir workspace;
    auto server = start_hostile(workspace);
    auto run = run_cli(*server, workspace,
                       "[models.checkpoints]\n"
                       "folded = \"https://models.example/folded/folded.safetensors\"\n"
                       "fine = \"https://models.example/ok/fine.safetensors\"\n");
    INFO(run.out);
    INFO(run.err);
    CHECK(run.signal == 0);
    CHECK(run.exit_code == 0);
    CHECK_FALSE(contains(run.err, "terminate called"));
    CHECK(installed(workspace, "folded.safetensors") == provision_test::test_bytes(2u << 20, 77));
    CHECK(installed(workspace, "fine.safetensors") == provision_test::test_bytes(2u << 20, 77));
}
