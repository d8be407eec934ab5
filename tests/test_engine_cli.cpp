// SPDX-License-Identifier: MIT
// The download engine through the provision program, as a container runs it:
// killed and restarted, stopped by signals, two copies on one workspace.
#include "common.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"
#include "support/skip.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

namespace suite_engine_cli {  // apart from the suites compiled with it (tests/meson.build)

using provision_test::LoopbackServer;
using provision_test::TempDir;
using provision_test::test_bytes;

namespace {

const std::string cli = PROVISION_CLI_PATH;

/// A running provision process, its output captured to files.
class Child {
  public:
    Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
        out_ = dir_.path() / "out";
        err_ = dir_.path() / "err";
        program_ = argv.empty() ? std::string() : argv[0];
        int out = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        pid_ = provision_test::spawn_process(argv, env, out, err);  // PATH and sanitizer settings too
        ::close(out);
        ::close(err);
    }
    ~Child() {
        if (!reaped_) {
            ::kill(pid_, SIGKILL);
            wait();
        }
    }
    pid_t pid() const { return pid_; }
    void signal(int number) { ::kill(pid_, number); }
    /// Waits for the process; its exit code, or 128 + the signal that ended it.
    int wait() {
        if (!reaped_) {
            int status = 0;
            ::waitpid(pid_, &status, 0);
            reaped_ = true;
            code_ = provision_test::exit_code_of(status);
            signal_ = provision_test::signal_of(status);
            provision_test::check_no_sanitizer_report(program_, err());
        }
        return code_;
    }
    /// The signal that ended the process, 0 when it exited by itself (after wait()).
    int ended_by_signal() const { return signal_; }
    std::string out() const { return provision_test::read_whole_file(out_); }
    std::string err() const { return provision_test::read_whole_file(err_); }

  private:
    TempDir dir_;
    std::filesystem::path out_;
    std::filesystem::path err_;
    std::string program_;
    pid_t pid_ = -1;
    bool reaped_ = false;
    int code_ = -1;
    int signal_ = 0;
};

std::vector<std::string> cli_args(const LoopbackServer& server, std::vector<std::string> args) {
    std::vector<std::string> out = {cli, "--cacert", provision_test::test_ca().ca_cert_path, "--connect-to",
                                    "models.example:443:127.0.0.1:" + std::to_string(server.port())};
    out.insert(out.end(), args.begin(), args.end());
    return out;
}

/// Waits until `done` says yes (checked every 10 ms), at most 20 s.
bool wait_for(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

/// Bytes the resume state beside `part` lists as complete (0 without a state).
std::uint64_t recorded_bytes(const std::filesystem::path& part) {
    auto state = provision::detail::load_resume_state(provision::detail::resume_state_path(part));
    return state ? state->done.covered() : 0;
}

/// Serves `body` at /big.safetensors, throttled per connection while `throttled`.
void serve_big(LoopbackServer& server, std::shared_ptr<const std::string> body, std::atomic<bool>& throttled,
               std::uint64_t rate = 4u << 20) {
    server.server().Get("/big.safetensors",
                        [&server, body, &throttled, rate](const httplib::Request& req, httplib::Response& res) {
                            provision_test::ServeOptions options;
                            if (throttled) options.bytes_per_second = rate;
                            res.set_header("ETag", "\"big-v1\"");
                            server.serve_bytes(res, req, body, options);
                        });
}

}  // namespace

TEST_CASE("engine cli: after SIGKILL mid-file, the re-run fetches only the missing bytes") {
    // Large enough for two 8 MiB pieces and more: the default settings split it.
    auto body = std::make_shared<const std::string>(test_bytes(24u << 20, 50));
    std::atomic<bool> throttled{true};
    auto server = LoopbackServer::https({"models.example"});
    serve_big(*server, body, throttled);
    TempDir workspace;
    auto config = workspace.write("c.toml", "[models.checkpoints]\nbig = \"https://models.example/big.safetensors\"\n");
    auto part = workspace.path() / "sdnext/models/Stable-diffusion/big.safetensors.part";
    auto target = workspace.path() / "sdnext/models/Stable-diffusion/big.safetensors";
    std::map<std::string, std::string> env = {{"WORKSPACE", workspace.path().string()}};

    Child first(cli_args(*server, {config.string(), "--connections", "2"}), env);
    REQUIRE(wait_for([&] { return recorded_bytes(part) >= (4u << 20); }));
    first.signal(SIGKILL);
    CHECK(first.wait() == 128 + SIGKILL);
    std::uint64_t kept = recorded_bytes(part);  // read after the kill: what the next run finds
    CHECK(kept >= (4u << 20));
    CHECK(kept < body->size());
    CHECK_FALSE(std::filesystem::exists(target));  // never a partial file under the final name

    throttled = false;
    REQUIRE(server->wait_until_idle());  // the killed run's responses have ended
    auto served_before = server->bytes_sent();
    auto requests_before = server->requests().size();
    std::string kept_ranges;
    if (auto state = provision::detail::load_resume_state(provision::detail::resume_state_path(part)))
        for (const auto& span : state->done.spans())
            kept_ranges += std::to_string(span.begin) + "-" + std::to_string(span.end) + " ";
    INFO("kept: " << kept_ranges);
    // One connection: no piece is split, so the server's count is exact.
    auto second = provision_test::run_process(cli_args(*server, {config.string(), "--connections", "1"}), env);
    INFO(second.err);
    CHECK(second.exit_code == 0);
    CHECK(provision_test::read_whole_file(target) == *body);
    std::string asked;
    auto all = server->requests();
    for (std::size_t i = requests_before; i < all.size(); ++i) asked += all[i].header("Range") + " ";
    INFO("asked: " << asked);
    CHECK(server->bytes_sent() - served_before == body->size() - kept);  // exactly the bytes that were missing
    CHECK_FALSE(std::filesystem::exists(part));
    CHECK_FALSE(std::filesystem::exists(provision::detail::resume_state_path(part)));
}

TEST_CASE("engine cli: by default a failing download is retried 8 times, the waits doubling from about 1 s") {
    // Every other test sets its own retries; this one holds the defaults the
    // README promises ("retries stop after 8 failures"), read from the --json
    // retry events of a server that always answers 503.
    auto server = LoopbackServer::https({"models.example"});
    server->server().Get("/busy.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.status = 503;
        res.set_content("busy", "text/plain");
    });
    TempDir workspace;
    auto config =
        workspace.write("c.toml", "[models.checkpoints]\nbusy = \"https://models.example/busy.safetensors\"\n");
    Child child(cli_args(*server, {config.string(), "--json"}), {{"WORKSPACE", workspace.path().string()}});
    REQUIRE(wait_for([&] { return child.out().find("retry 2 of 8 in ") != std::string::npos; }));
    child.signal(SIGTERM);
    CHECK(child.wait() == 143);
    INFO(child.out());
    // "...; retry N of 8 in 734 ms" or "in 1.2 s": the announced waits, in ms.
    std::vector<double> waits;
    std::istringstream lines(child.out());
    for (std::string line; std::getline(lines, line);) {
        auto event = nlohmann::json::parse(line, nullptr, false);
        if (event.is_discarded() || event.value("event", "") != "retry") continue;
        std::string message = event.value("message", "");
        auto at = message.rfind(" in ");
        REQUIRE(at != std::string::npos);
        std::istringstream wait(message.substr(at + 4));
        double amount = 0;
        std::string unit;
        wait >> amount >> unit;
        waits.push_back(unit == "s" ? amount * 1000 : amount);
    }
    REQUIRE(waits.size() >= 2);
    CHECK(waits[0] >= 500);  // the first wait: between half and all of 1 s
    CHECK(waits[0] <= 1000);
    CHECK(waits[1] >= 1000);  // the second: between half and all of 2 s
    CHECK(waits[1] <= 2000);
}

TEST_CASE(
    "engine cli: SIGTERM and SIGINT stop promptly, keep the partial file, say what is left, exit 143 / 130 and say "
    "so") {
    auto body = std::make_shared<const std::string>(test_bytes(20u << 20, 51));
    std::atomic<bool> throttled{true};
    auto server = LoopbackServer::https({"models.example"});
    serve_big(*server, body, throttled, 512u << 10);  // about 13 s for the whole file
    for (int number : {SIGTERM, SIGINT}) {
        CAPTURE(number);
        TempDir workspace;
        auto config =
            workspace.write("c.toml", "[models.checkpoints]\nbig = \"https://models.example/big.safetensors\"\n");
        auto part = workspace.path() / "sdnext/models/Stable-diffusion/big.safetensors.part";
        Child child(cli_args(*server, {config.string()}), {{"WORKSPACE", workspace.path().string()}});
        REQUIRE(wait_for([&] { return recorded_bytes(part) > 0; }));
        auto sent = std::chrono::steady_clock::now();
        child.signal(number);
        int code = child.wait();
        auto took = std::chrono::steady_clock::now() - sent;
        CHECK(child.ended_by_signal() == 0);  // it exited by itself with the code; a kill would also give 128 + n
        CHECK(code == (number == SIGTERM ? 143 : 130));
        CHECK(took < std::chrono::seconds(5));  // the rest of the file would take about 10 s more
        INFO(child.out());
        INFO(child.err());
        CHECK(child.err().find("interrupted: 1 entry left unfinished") != std::string::npos);
        CHECK(child.out().find("kept in big.safetensors.part") != std::string::npos);
        // The summary names the status the process really exits with.
        CHECK(child.out().find(number == SIGTERM ? "exit code 143" : "exit code 130") != std::string::npos);
        CHECK(std::filesystem::exists(part));
        CHECK(recorded_bytes(part) > 0);
        CHECK_FALSE(std::filesystem::exists(workspace.path() / "sdnext/models/Stable-diffusion/big.safetensors"));
    }
}

TEST_CASE(
    "engine cli: two provisioners on one workspace never write the same file; the second waits and names the first") {
    auto body = std::make_shared<const std::string>(test_bytes(3u << 20, 52));
    std::atomic<bool> throttled{true};
    auto server = LoopbackServer::https({"models.example"});
    serve_big(*server, body, throttled, 2u << 20);
    TempDir workspace;
    auto config = workspace.write("c.toml", "[models.checkpoints]\nbig = \"https://models.example/big.safetensors\"\n");
    auto part = workspace.path() / "sdnext/models/Stable-diffusion/big.safetensors.part";
    std::map<std::string, std::string> env = {{"WORKSPACE", workspace.path().string()}};

    Child first(cli_args(*server, {config.string()}), env);
    REQUIRE(wait_for([&] { return std::filesystem::exists(part); }));
    Child second(cli_args(*server, {config.string()}), env);
    CHECK(first.wait() == 0);
    CHECK(second.wait() == 0);
    INFO(second.err());
    CHECK(second.err().find("pid " + std::to_string(first.pid())) != std::string::npos);
    CHECK(second.out().find("present") != std::string::npos);
    CHECK(provision_test::read_whole_file(workspace.path() / "sdnext/models/Stable-diffusion/big.safetensors") ==
          *body);
    std::string asked;
    for (const auto& request : server->requests()) asked += request.header("Range") + " ";
    INFO("asked: " << asked << " first: " << first.err());
    CHECK(server->bytes_sent() == body->size());  // fetched once, by the first
    auto records = provision_test::read_whole_file(workspace.path() / ".provision/installed.json");
    CHECK(records.find("big.safetensors") != std::string::npos);
}

TEST_CASE("engine cli: a re-run with everything in place fetches nothing; --verify re-hashes") {
    std::map<std::string, std::shared_ptr<const std::string>> files;
    std::string config = "[models.lora]\n";
    for (int i = 0; i < 30; ++i) {
        std::string name = "l" + std::to_string(i) + ".safetensors";
        files["/" + name] = std::make_shared<const std::string>(test_bytes(20000 + i, 60 + i));
        config += "l" + std::to_string(i) + " = \"https://models.example/" + name + "\"\n";
    }
    auto server = LoopbackServer::https({"models.example"});
    server->server().Get(R"(/l\d+\.safetensors)", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, files.at(req.path));
    });
    TempDir workspace;
    auto config_path = workspace.write("c.toml", config);
    std::map<std::string, std::string> env = {{"WORKSPACE", workspace.path().string()}};
    auto first = provision_test::run_process(cli_args(*server, {config_path.string()}), env);
    REQUIRE(first.exit_code == 0);
    auto requests = server->requests().size();

    auto second = provision_test::run_process(cli_args(*server, {config_path.string()}), env);
    CHECK(second.exit_code == 0);
    CHECK(server->requests().size() == requests);  // not one request
    CHECK(second.out.find("30 ok") != std::string::npos);
    CHECK(second.out.find("installed") == std::string::npos);

    // Damage one file in place, keeping its size and time: the record still
    // vouches for it; --verify does not trust the record and repairs it.
    auto damaged = workspace.path() / "sdnext/models/Lora/l7.safetensors";
    struct stat info {};
    REQUIRE(::stat(damaged.c_str(), &info) == 0);
    int fd = ::open(damaged.c_str(), O_WRONLY);
    REQUIRE(::pwrite(fd, "oops", 4, 100) == 4);
    ::close(fd);
    timespec times[2] = {info.st_atim, info.st_mtim};
    REQUIRE(::utimensat(AT_FDCWD, damaged.c_str(), times, 0) == 0);
    auto trusting = provision_test::run_process(cli_args(*server, {config_path.string()}), env);
    CHECK(trusting.exit_code == 0);
    CHECK(server->requests().size() == requests);
    auto verified = provision_test::run_process(cli_args(*server, {config_path.string(), "--verify"}), env);
    CHECK(verified.exit_code == 0);
    CHECK(server->requests().size() == requests + 1);  // only the damaged file
    CHECK(provision_test::read_whole_file(damaged) == *files["/l7.safetensors"]);
}

TEST_CASE("engine cli: a filesystem too small for the file fails it at once with exit 7 and a clear message") {
    TempDir mount_point;
    if (::mount("tmpfs", mount_point.path().c_str(), "tmpfs", 0, "size=1m") != 0) {
        provision_test::skip_test("disk-full-tmpfs",
                                  std::string("cannot mount a small tmpfs here (") + std::strerror(errno) + ")");
        return;
    }
    struct Unmount {
        std::filesystem::path path;
        ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
    } unmount{mount_point.path()};
    auto body = std::make_shared<const std::string>(test_bytes(3u << 20, 53));
    std::atomic<bool> throttled{false};
    auto server = LoopbackServer::https({"models.example"});
    serve_big(*server, body, throttled);
    TempDir elsewhere;
    auto config = elsewhere.write("c.toml", "[models.checkpoints]\nbig = \"https://models.example/big.safetensors\"\n");
    auto result =
        provision_test::run_process(cli_args(*server, {config.string()}), {{"WORKSPACE", mount_point.path().string()}});
    INFO(result.out);
    INFO(result.err);
    CHECK(result.exit_code == 7);
    CHECK(result.out.find("cannot reserve 3.0 MiB") != std::string::npos);
    CHECK(result.out.find("No space left on device") != std::string::npos);
    CHECK(server->bytes_sent() < body->size());
    CHECK_FALSE(std::filesystem::exists(mount_point.path() / "sdnext/models/Stable-diffusion/big.safetensors"));
    CHECK_FALSE(std::filesystem::exists(mount_point.path() / "sdnext/models/Stable-diffusion/big.safetensors.part"));
}

}  // namespace suite_engine_cli
