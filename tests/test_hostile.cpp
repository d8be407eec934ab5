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
#include "support/skip.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <map>
#include <vector>
#include <string>

namespace suite_hostile {  // apart from the suites compiled with it (tests/meson.build)

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
    return provision_test::run_process(
        {cli, config_path.string(), "--cacert", provision_test::test_ca().ca_cert_path, "--connect-to",
         "models.example:443:127.0.0.1:" + std::to_string(server.port())},
        {{"WORKSPACE", workspace.path().string()}});
}

std::string installed(const TempDir& workspace, const std::string& name) {
    return provision_test::read_whole_file(workspace.path() / "sdnext/models/Stable-diffusion" / name);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE(
    "hostile: a stalled HTTPS download is dropped at the 30 s default and retried; the run lives and both files "
    "install") {
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
    // A doubled default (60 s) fails here; under TSan the whole hostile suite took 47 s in CI.
    CHECK(took < std::chrono::seconds(55));
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

namespace {

/// The hostile server serving `dir`'s files under /files/ as well.
std::unique_ptr<ServerProcess> start_hostile_with_files(const TempDir& dir, bool plain = false) {
    auto leaf = provision_test::test_ca().issue({"models.example"});
    std::vector<std::string> argv = {hostile_server,
                                     "--cert",
                                     leaf.cert_path,
                                     "--key",
                                     leaf.key_path,
                                     "--log",
                                     (dir / "requests.log").string(),
                                     "--files",
                                     dir.path().string()};
    if (plain) argv.push_back("--plain");
    return std::make_unique<ServerProcess>(argv);
}

ProcessResult run_cli_args(const ServerProcess& server, const TempDir& workspace, std::vector<std::string> args,
                           std::map<std::string, std::string> env = {}) {
    std::vector<std::string> argv = {cli, "--cacert", provision_test::test_ca().ca_cert_path, "--connect-to",
                                     "models.example:443:127.0.0.1:" + std::to_string(server.port())};
    argv.insert(argv.end(), args.begin(), args.end());
    env["WORKSPACE"] = workspace.path().string();
    return provision_test::run_process(argv, env);
}

}  // namespace

TEST_CASE("hostile: a config fetched from a URL cannot read the machine's variables unless the operator allows them") {
    TempDir workspace;
    auto server = start_hostile_with_files(workspace);
    workspace.write("remote.toml",
                    "[models.checkpoints]\n"
                    "stolen = { url = \"https://models.example/ok/stolen.safetensors\", "
                    "headers = { \"X-Steal\" = \"${AWS_SECRET_ACCESS_KEY}\" } }\n"
                    "fine = \"https://models.example/ok/fine.safetensors\"\n");
    std::map<std::string, std::string> env = {{"AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"}};
    auto run = run_cli_args(*server, workspace, {"https://models.example/files/remote.toml"}, env);
    INFO(run.out);
    INFO(run.err);
    CHECK(run.signal == 0);
    CHECK(run.exit_code == 3);  // that entry lacks a credential; the rest of the config ran
    CHECK(contains(run.out + run.err, "PROVISION_ALLOW_VARS=AWS_SECRET_ACCESS_KEY"));
    CHECK(installed(workspace, "fine.safetensors") == provision_test::test_bytes(2u << 20, 77));
    CHECK_FALSE(std::filesystem::exists(workspace.path() / "sdnext/models/Stable-diffusion/stolen.safetensors"));
    std::string received = provision_test::read_whole_file(workspace.path() / "requests.log");
    CHECK_FALSE(contains(received, "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"));
    CHECK_FALSE(contains(received, "stolen.safetensors"));  // never even asked for
    // The log names where the config came from and its SHA-256.
    std::string log = provision_test::read_whole_file(workspace.path() / "logs/provision.log");
    CHECK(contains(log, "config: https://models.example/files/remote.toml (fetched from a URL), sha256 "));

    // The operator allows that one variable: now it is expanded and sent.
    env["PROVISION_ALLOW_VARS"] = "OTHER, AWS_SECRET_ACCESS_KEY";
    auto allowed = run_cli_args(*server, workspace, {"https://models.example/files/remote.toml"}, env);
    INFO(allowed.out);
    CHECK(allowed.exit_code == 0);
    CHECK(contains(provision_test::read_whole_file(workspace.path() / "requests.log"),
                   "X-Steal: wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"));
}

TEST_CASE("hostile: a local config with an unset variable fails only the entry that needs it, exit 3") {
    // The seed's own production template has auth_header = "Bearer ${S3_TOKEN}":
    // without S3_TOKEN the other entries must still install.
    TempDir workspace;
    auto server = start_hostile(workspace);
    auto run = run_cli(
        *server, workspace,
        "[models.checkpoints]\n"
        "private = { url = \"https://models.example/ok/private.safetensors\", auth_header = \"Bearer ${S3_TOKEN}\" }\n"
        "fine = \"https://models.example/ok/fine.safetensors\"\n");
    INFO(run.out);
    INFO(run.err);
    CHECK(run.exit_code == 3);
    CHECK(contains(run.out + run.err, "S3_TOKEN is not set"));
    CHECK(contains(run.out + run.err, "models.checkpoints.private"));
    CHECK(installed(workspace, "fine.safetensors") == provision_test::test_bytes(2u << 20, 77));
}

TEST_CASE("hostile: a config over plain http from a host that is not loopback is refused unless allowed, exit 8") {
    TempDir workspace;
    auto server = start_hostile_with_files(workspace, true);
    workspace.write("remote.toml", "[models.checkpoints]\nfine = \"http://127.0.0.1:" + std::to_string(server->port()) +
                                       "/ok/fine.safetensors\"\n");
    std::vector<std::string> argv = {cli, "--connect-to",
                                     "config.example:80:127.0.0.1:" + std::to_string(server->port()),
                                     "http://config.example/files/remote.toml"};
    auto refused = provision_test::run_process(argv, {{"WORKSPACE", workspace.path().string()}});
    INFO(refused.err);
    CHECK(refused.exit_code == 8);
    CHECK(contains(refused.err + refused.out, "PROVISION_ALLOW_HTTP_CONFIG=1"));
    CHECK_FALSE(contains(provision_test::read_whole_file(workspace.path() / "requests.log"), "remote.toml"));

    auto allowed = provision_test::run_process(
        argv, {{"WORKSPACE", workspace.path().string()}, {"PROVISION_ALLOW_HTTP_CONFIG", "1"}});
    INFO(allowed.out);
    CHECK(allowed.exit_code == 0);
    // From loopback itself, plain http needs no leave.
    auto local =
        provision_test::run_process({cli, "http://127.0.0.1:" + std::to_string(server->port()) + "/files/remote.toml"},
                                    {{"WORKSPACE", workspace.path().string()}});
    CHECK(local.exit_code == 0);
}

TEST_CASE("hostile: a config fetched from a URL may not place files outside the workspace unless allowed") {
    TempDir workspace;
    auto server = start_hostile_with_files(workspace);
    TempDir elsewhere;
    workspace.write("remote.toml", "[directories]\ncheckpoints = \"" + elsewhere.path().string() +
                                       "\"\n"
                                       "[models.checkpoints]\nfine = \"https://models.example/ok/fine.safetensors\"\n");
    auto refused = run_cli_args(*server, workspace, {"https://models.example/files/remote.toml"});
    INFO(refused.out);
    INFO(refused.err);
    CHECK(refused.exit_code == 2);
    CHECK(contains(refused.out + refused.err, "PROVISION_ALLOW_REMOTE_PATHS=1"));
    CHECK_FALSE(std::filesystem::exists(elsewhere / "fine.safetensors"));
    auto allowed =
        run_cli_args(*server, workspace, {"https://models.example/files/remote.toml", "--allow-remote-paths"});
    CHECK(allowed.exit_code == 0);
    CHECK(std::filesystem::exists(elsewhere / "fine.safetensors"));
}

TEST_CASE(
    "hostile: query values of a signed URL never reach the log, the lockfile, the install record, --json or --report") {
    TempDir workspace;
    auto server = start_hostile(workspace);
    std::string signed_url =
        "https://models.example/ok/signed.safetensors?X-Goog-Algorithm=GOOG4-RSA-SHA256"
        "&X-Goog-Credential=CREDSECRET456%2F20261203&X-Goog-Signature=SIGSECRET123abcdef"
        "&hf_token=hf_TOKENSECRET789";
    auto config = workspace.write("provision.toml", "[models.checkpoints]\nsigned = \"" + signed_url + "\"\n");
    auto run =
        provision_test::run_process({cli, config.string(), "--json", "--report", (workspace / "report.json").string(),
                                     "--cacert", provision_test::test_ca().ca_cert_path, "--connect-to",
                                     "models.example:443:127.0.0.1:" + std::to_string(server->port())},
                                    {{"WORKSPACE", workspace.path().string()}});
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    CHECK(contains(provision_test::read_whole_file(workspace.path() / "requests.log"),
                   "SIGSECRET123abcdef"));  // it was used
    for (const auto& [what, text] : std::vector<std::pair<std::string, std::string>>{
             {"stdout", run.out},
             {"stderr", run.err},
             {"log", provision_test::read_whole_file(workspace.path() / "logs/provision.log")},
             {"lockfile", provision_test::read_whole_file(workspace.path() / "provision.lock")},
             {"install record", provision_test::read_whole_file(workspace.path() / ".provision/installed.json")},
             {"report", provision_test::read_whole_file(workspace.path() / "report.json")}}) {
        CAPTURE(what);
        if (what != "stderr") CHECK_FALSE(text.empty());  // --json keeps stderr quiet
        CHECK_FALSE(contains(text, "SIGSECRET123abcdef"));
        CHECK_FALSE(contains(text, "CREDSECRET456"));
        CHECK_FALSE(contains(text, "TOKENSECRET789"));
    }
}

TEST_CASE("hostile: two entries that would land on one file are both refused before any download, in one message") {
    TempDir workspace;
    auto server = start_hostile(workspace);
    auto run = run_cli(*server, workspace,
                       "[models.checkpoints]\n"
                       "first = \"https://models.example/ok/a/model.safetensors\"\n"
                       "second = \"https://models.example/ok/b/model.safetensors\"\n"
                       "other = \"https://models.example/ok/other.safetensors\"\n");
    INFO(run.out);
    INFO(run.err);
    CHECK(run.exit_code == 2);
    CHECK(
        contains(run.out + run.err, "models.checkpoints.first and models.checkpoints.second would both be saved as "));
    CHECK_FALSE(contains(run.out + run.err, "another provision process"));
    CHECK_FALSE(std::filesystem::exists(workspace.path() / "sdnext/models/Stable-diffusion/model.safetensors"));
    CHECK(installed(workspace, "other.safetensors") == provision_test::test_bytes(2u << 20, 77));
    CHECK_FALSE(contains(provision_test::read_whole_file(workspace.path() / "requests.log"), "model.safetensors"));
}

TEST_CASE("hostile: links planted in the workspace are never written through") {
    // A local user who can write the workspace plants links where provision
    // will create files; what they point to must stay as it was.
    TempDir workspace;
    auto server = start_hostile(workspace);
    TempDir outside;
    auto victim = outside.write("precious.txt", "precious");
    auto models = workspace.path() / "sdnext/models/Stable-diffusion";
    std::filesystem::create_directories(models);
    std::filesystem::create_directories(workspace.path() / "logs");
    std::filesystem::create_directories(workspace.path() / ".provision");
    for (const auto& planted :
         {models / "fine.safetensors.part", workspace.path() / "logs/provision.log",
          workspace.path() / "provision.lock.tmp", workspace.path() / ".provision/installed.json.tmp"})
        std::filesystem::create_symlink(victim, planted);
    auto run =
        run_cli(*server, workspace, "[models.checkpoints]\nfine = \"https://models.example/ok/fine.safetensors\"\n");
    INFO(run.out);
    INFO(run.err);
    CHECK(run.exit_code == 0);
    CHECK(provision_test::read_whole_file(victim) == "precious");
    CHECK(installed(workspace, "fine.safetensors") == provision_test::test_bytes(2u << 20, 77));

    // A link where the file's lock goes: that entry is refused, and says why.
    std::filesystem::remove(models / "fine.safetensors");
    std::filesystem::remove(workspace.path() / ".provision/installed.json");
    std::filesystem::create_symlink(victim, models / "fine.safetensors.lock");
    auto refused =
        run_cli(*server, workspace, "[models.checkpoints]\nfine = \"https://models.example/ok/fine.safetensors\"\n");
    INFO(refused.out);
    CHECK(refused.exit_code == 8);
    CHECK(contains(refused.out + refused.err, "is a symbolic link"));
    CHECK(provision_test::read_whole_file(victim) == "precious");
}

TEST_CASE(
    "hostile: a Hub listing shaped to be expensive (16 MiB of empty objects) is refused within 128 MiB of memory") {
    TempDir workspace;
    auto server = start_hostile(workspace);
    auto config = workspace.write("provision.toml",
                                  "[models.checkpoints]\nall = { repo = \"padded/repo\", include = [\"*\"] }\n");
    auto run = provision_test::run_process(
        {cli, config.string(), "--cacert", provision_test::test_ca().ca_cert_path, "--connect-to",
         "models.example:443:127.0.0.1:" + std::to_string(server->port())},
        {{"WORKSPACE", workspace.path().string()}, {"HF_ENDPOINT", "https://models.example"}});
    INFO(run.out);
    INFO(run.err);
    CHECK(run.signal == 0);
    CHECK(run.exit_code == 5);
    CHECK(contains(run.out + run.err, "far more values than any Hub page"));
    CHECK(contains(provision_test::read_whole_file(workspace.path() / "requests.log"), "/tree/"));  // it was asked for
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    CHECK(run.peak_rss_kib < 128 * 1024);  // a sanitizer's shadow memory would dwarf the figure
#endif
    MESSAGE("peak RSS with a 16 MiB listing of empty objects: " << run.peak_rss_kib / 1024 << " MiB");
}

namespace {

/// A free loopback port (bound, read, released).
int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(fd);
    return ntohs(address.sin_port);
}

bool accepts_connections(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

TEST_CASE(
    "hostile: through a real squid forward proxy, a file and a CDN redirect arrive byte-exact, TLS verified end to "
    "end") {
    if (!std::filesystem::exists("/usr/sbin/squid")) {
        provision_test::skip_test("squid", "/usr/sbin/squid is not installed (tools/install-deps.sh installs it)");
        return;
    }
    TempDir dir;
    std::filesystem::permissions(dir.path(), std::filesystem::perms::all);  // squid's workers run as the proxy user
    auto leaf = provision_test::test_ca().issue({"models.example", "cdn.example"});
    ServerProcess server(
        {hostile_server, "--cert", leaf.cert_path, "--key", leaf.key_path, "--log", (dir / "requests.log").string()});
    dir.write("hosts", "127.0.0.1 models.example cdn.example\n");
    int squid_port = free_port();
    dir.write("squid.conf", "http_port 127.0.0.1:" + std::to_string(squid_port) +
                                "\n"
                                "http_access allow all\n"
                                "cache deny all\n"
                                "hosts_file " +
                                (dir / "hosts").string() +
                                "\n"
                                "pid_filename " +
                                (dir / "squid.pid").string() +
                                "\n"
                                "cache_log " +
                                (dir / "cache.log").string() +
                                "\n"
                                "access_log stdio:" +
                                (dir / "access.log").string() +
                                "\n"
                                "coredump_dir " +
                                dir.path().string() +
                                "\n"
                                "pinger_enable off\n"
                                "shutdown_lifetime 0 seconds\n"
                                "visible_hostname provision-test\n");
    int squid_out = ::open((dir / "squid.out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_t squid = provision_test::spawn_process({"/usr/sbin/squid", "-N", "-f", (dir / "squid.conf").string()}, {},
                                                squid_out, squid_out);
    ::close(squid_out);
    struct StopSquid {
        pid_t pid;
        ~StopSquid() {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    } stop{squid};
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!accepts_connections(squid_port) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::string squid_said =
        provision_test::read_whole_file(dir / "squid.out") + provision_test::read_whole_file(dir / "cache.log");
    INFO(squid_said);
    REQUIRE(accepts_connections(squid_port));

    TempDir workspace;
    std::string origin = "https://models.example:" + std::to_string(server.port());
    auto config = workspace.write("provision.toml",
                                  "[models.checkpoints]\n"
                                  "plain = \"" +
                                      origin +
                                      "/ok/plain.safetensors\"\n"
                                      "cdn = \"" +
                                      origin + "/hub-redirect/cdn.safetensors\"\n");
    auto run = provision_test::run_process(
        {cli, config.string(), "--cacert", provision_test::test_ca().ca_cert_path},
        {{"WORKSPACE", workspace.path().string()}, {"HTTPS_PROXY", "http://127.0.0.1:" + std::to_string(squid_port)}});
    INFO(run.out);
    INFO(run.err);
    CHECK(run.exit_code == 0);
    CHECK(installed(workspace, "plain.safetensors") == provision_test::test_bytes(2u << 20, 77));
    CHECK(installed(workspace, "cdn.safetensors") == provision_test::test_bytes(2u << 20, 77));
    std::string tunnels = provision_test::read_whole_file(dir / "access.log");
    INFO(tunnels);
    CHECK(contains(tunnels, "CONNECT models.example:" + std::to_string(server.port())));
    CHECK(contains(tunnels, "CONNECT cdn.example:" + std::to_string(server.port())));
    // The origin saw the requests inside the tunnels, never the proxy's own.
    CHECK(contains(provision_test::read_whole_file(dir / "requests.log"), "GET /ok/cdn.safetensors"));
}

}  // namespace suite_hostile
