// SPDX-License-Identifier: MIT
// What the provision CLI shows: plain log lines, the live terminal view, --json and --report.
#include "common.hpp"
#include "support/civitai_emulator.hpp"
#include "support/hf_emulator.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"
#include "support/skip.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <mutex>
#include <set>
#include <thread>

using provision_test::LoopbackServer;
using provision_test::run_process;
using provision_test::TempDir;

namespace {

const std::string cli = PROVISION_CLI_PATH;

/// A server whose model trickles out over about a second, so progress has something to show.
std::unique_ptr<LoopbackServer> slow_model_server(std::string bytes) {
    auto server = LoopbackServer::https({"models.example"});
    // Shared, never copied per request: under TSan, copying megabytes that the
    // main thread wrote (the handoff runs through a socket, which TSan cannot
    // see) raises one suppressed report per word, and each costs a search of
    // all the earlier ones. An 8 MiB copy stalled the server for minutes.
    auto body = std::make_shared<const std::string>(std::move(bytes));
    server->server().Get("/slow.safetensors", [body](const httplib::Request&, httplib::Response& res) {
        res.set_content_provider(
            body->size(), "application/octet-stream", [body](std::size_t offset, std::size_t, httplib::DataSink& sink) {
                std::size_t piece = std::min<std::size_t>(body->size() - offset, body->size() / 10);
                std::this_thread::sleep_for(std::chrono::milliseconds(120));
                // A client that gave up ends the response: otherwise the
                // server thread retries the same piece forever, and a slow
                // (TSan) run used up the server's 8 threads that way.
                return sink.write(body->data() + offset, piece);
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

const char* config_text =
    "[models.checkpoints]\nslow = \"https://models.example/slow.safetensors\"\n"
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
        provision_test::skip_test("pseudo-terminal", "script(1) is not installed, so no pseudo-terminal can be made");
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
    auto plain =
        run_process({"/usr/bin/script", "-qfec", fresh + "2>&1", "/dev/null"}, {{"TERM", "xterm"}, {"NO_COLOR", "1"}});
    CHECK(plain.out.find("\x1b[32m") == std::string::npos);
    CHECK(plain.out.find("total: ") != std::string::npos);
}

TEST_CASE("cli output: on a terminal, entries still queued count in the total line and its ETA") {
    if (!std::filesystem::exists("/usr/bin/script")) {
        provision_test::skip_test("pseudo-terminal", "script(1) is not installed, so no pseudo-terminal can be made");
        return;
    }
    auto server = slow_model_server(provision_test::test_bytes(2 << 20, 9));
    TempDir dir;
    auto config = dir.write("q.toml",
                            "[models.checkpoints]\na = \"https://models.example/slow.safetensors\"\n"
                            "[models.lora]\nb = \"https://models.example/slow.safetensors\"\n"
                            "[models.vae]\nc = \"https://models.example/slow.safetensors\"\n");
    std::string command;
    for (const auto& arg : base_args(*server, config, dir / "ws")) command += "'" + arg + "' ";
    auto result =
        run_process({"/usr/bin/script", "-qfec", command + "--jobs 1 2>&1", "/dev/null"}, {{"TERM", "xterm"}});
    INFO(result.out);
    CHECK(result.exit_code == 0);
    // One file at a time: while the first is running, the other two wait,
    // and the total covers all three from the start.
    CHECK(result.out.find("1 active, 2 queued") != std::string::npos);
    CHECK(result.out.find(" / 6.0 MiB") != std::string::npos);
    CHECK(result.out.find("1 done, 1 active, 1 queued") != std::string::npos);
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
    // The totals, under the names the README gives: 3 entries, 1 failed, the installed bytes.
    const auto& totals = report.at("totals");
    CHECK(totals.at("entries") == 3);
    CHECK(totals.at("failed") == 1);
    CHECK(totals.at("bytes") == report.at("entries")[0].at("size").get<std::uint64_t>() +
                                    report.at("entries")[1].at("size").get<std::uint64_t>());
    auto from_file = nlohmann::json::parse(provision_test::read_whole_file(dir / "report.json"));
    CHECK(from_file.at("entries") == report.at("entries"));
    CHECK(from_file.at("totals") == totals);
    CHECK(result.err.empty());  // nothing else on the terminal in JSON mode
}

// ---------------------------------------------------------------------------
// --dry-run's table and redaction of every secret form in every output

namespace {

using provision_test::CivitaiEmulator;
using provision_test::HubEmulator;

const std::string dry_hf_token = "hf_dryRunSecretToken0123456789";
const std::string dry_query_secret = "queryTokenSecret4242";
const std::string dry_header_secret = "headerSecretValue4242";
const std::string dry_userinfo_secret = "userInfoSecret4242";

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// The line of `text` that contains `part` (empty when none does).
std::string line_with(const std::string& text, const std::string& part) {
    std::size_t at = text.find(part);
    if (at == std::string::npos) return {};
    std::size_t start = text.rfind('\n', at);
    start = start == std::string::npos ? 0 : start + 1;
    return text.substr(start, text.find('\n', at) - start);
}

/// A Hub, a CivitAI and a plain file server on loopback, as the CLI reaches them with --connect-to.
struct Services {
    HubEmulator hub;
    CivitaiEmulator civitai;
    std::unique_ptr<LoopbackServer> files = LoopbackServer::https({"models.example"});
    std::string plain = provision_test::test_bytes(30000, 41);
    std::string placed = provision_test::test_bytes(20000, 42);

    Services() {
        hub.add_repo("org/open");
        hub.commit("org/open", {{"open.safetensors", provision_test::HubFile{provision_test::test_bytes(60000, 43)}}});
        hub.add_repo("org/gated", "model", provision_test::HubAccess::gated);
        hub.commit("org/gated",
                   {{"gated.safetensors", provision_test::HubFile{provision_test::test_bytes(50000, 44)}}});
        provision_test::CivitaiVersionSpec version;
        version.id = 58390;
        version.model_id = 58;
        version.files = {provision_test::CivitaiFileSpec{1001, "add_detail.safetensors", "Model", true,
                                                         provision_test::test_bytes(40000, 45), std::nullopt,
                                                         std::nullopt}};
        civitai.add(version);
        provision_test::CivitaiVersionSpec huge;  // announces about a petabyte: no disk has that free
        huge.id = 77;
        huge.model_id = 7;
        huge.files = {provision_test::CivitaiFileSpec{7001, "huge.safetensors", "Model", true,
                                                      provision_test::test_bytes(1000, 46), (1e15 + 1) / 1024,
                                                      std::nullopt}};
        civitai.add(huge);
        for (const char* path : {"/plain.safetensors", "/placed.safetensors", "/private.safetensors"}) {
            std::string route = path;
            files->server().Get(path, [this, route](const httplib::Request& req, httplib::Response& res) {
                files->serve_bytes(res, req, route == "/placed.safetensors" ? placed : plain);
            });
        }
    }

    std::vector<std::string> args(const std::filesystem::path& config, const std::filesystem::path& workspace) const {
        std::vector<std::string> out = {cli,           config.string(),
                                        "--workspace", workspace.string(),
                                        "--cacert",    provision_test::test_ca().ca_cert_path};
        auto rules = hub.connect_to();
        for (const auto& rule : civitai.connect_to()) rules.push_back(rule);
        for (const auto& rule : rules) {
            out.push_back("--connect-to");
            out.push_back(rule.from_host + "::127.0.0.1:" + std::to_string(*rule.to_port));
        }
        out.push_back("--connect-to");
        out.push_back("models.example::127.0.0.1:" + std::to_string(files->port()));
        return out;
    }

    std::uint64_t model_bytes_served() {
        return hub.cdn().bytes_sent() + civitai.storage().bytes_sent() + files->bytes_sent();
    }
};

}  // namespace

TEST_CASE(
    "cli output: --dry-run prints a table of every entry from metadata alone, and exits with the real run's code") {
    Services services;
    TempDir dir;
    std::string placed_sha = provision::detail::sha256_hex(services.placed);
    auto config = dir.write("dry.toml",
                            "[models.checkpoints.open]\nrepo = \"org/open\"\nfile = \"open.safetensors\"\n\n"
                            "[models.vae.gated]\nrepo = \"org/gated\"\nfile = \"gated.safetensors\"\ngated = true\n\n"
                            "[models.lora.tweak]\nversion_id = \"58390\"\n\n"
                            "[models.embeddings.plain]\nurl = \"https://models.example/plain.safetensors\"\n\n"
                            "[models.esrgan.placed]\nurl = \"https://models.example/placed.safetensors\"\nfilename = "
                            "\"placed.safetensors\"\nsha256 = \"" +
                                placed_sha + "\"\n");
    dir.write("ws/sdnext/models/ESRGAN/placed.safetensors",
              services.placed);  // already in place, provable by its digest
    auto args = services.args(config, dir / "ws");
    args.push_back("--dry-run");
    auto result = run_process(args, {{"CIVITAI_TOKEN", CivitaiEmulator::token}});
    INFO(result.out << result.err);
    CHECK(result.exit_code == 3);  // the gated entry has no HF_TOKEN: the real run would fail with 3
    CHECK(has(result.out, "ENTRY"));
    CHECK(has(result.out, "CREDENTIALS"));
    CHECK(has(result.out, "IN PLACE"));
    std::string open = line_with(result.out, "models.checkpoints.open ");
    CHECK(has(open, "huggingface"));
    CHECK(has(open, "sdnext/models/Stable-diffusion/open.safetensors"));
    CHECK(has(open, "58.6 KiB"));
    CHECK(has(open, "HF_TOKEN: not needed"));
    CHECK(has(open, " yes "));  // the Hub's SHA-256
    std::string gated = line_with(result.out, "models.vae.gated ");
    CHECK(has(gated, "HF_TOKEN: needed, MISSING"));
    CHECK(has(gated, "FAILS"));
    std::string tweak = line_with(result.out, "models.lora.tweak ");
    CHECK(has(tweak, "civitai"));
    CHECK(has(tweak, "sdnext/models/Lora/add_detail.safetensors"));
    CHECK(has(tweak, "CIVITAI_TOKEN: set"));
    std::string plain = line_with(result.out, "models.embeddings.plain ");
    CHECK(has(plain, "29.3 KiB"));  // asked for its first byte: the answer gives the size
    // ... and the server named no file, so it is saved under the URL's name.
    CHECK(has(plain, "/plain.safetensors"));
    CHECK_FALSE(has(plain, "chosen by the server"));
    CHECK(has(plain, " no "));
    std::string placed = line_with(result.out, "models.esrgan.placed ");
    CHECK(placed.size() >= 3);
    CHECK(placed.compare(placed.size() - 3, 3, "yes") == 0);
    CHECK(has(result.out, "Would fail:"));
    CHECK(has(line_with(result.out, "models.vae.gated: "), "gated = true"));
    CHECK(has(result.out, "5 entries: 3 to fetch, 1 already in place, 1 would fail"));
    CHECK(has(result.out, "Still to fetch: 127.0 KiB"));
    CHECK(has(result.out, "Free space:"));
    CHECK(has(result.out, "needed for 3 files"));
    CHECK(has(result.out, "exit code 3"));
    // Metadata only: nothing was written under the models folders, and no
    // model byte left any server but the first byte of each plain URL (two).
    CHECK(services.model_bytes_served() <= 2);
    CHECK(services.hub.hub().count("/org/open/resolve/") >= 1);  // it did ask the Hub (metadata)
    CHECK_FALSE(std::filesystem::exists(dir / "ws/sdnext/models/Stable-diffusion"));
    CHECK_FALSE(std::filesystem::exists(dir / "ws/provision.lock"));

    // The same facts for a script: --json's report object.
    args.push_back("--json");
    auto as_json = run_process(args, {{"CIVITAI_TOKEN", CivitaiEmulator::token}});
    CHECK(as_json.exit_code == 3);
    std::string last_line = as_json.out.substr(as_json.out.rfind('\n', as_json.out.size() - 2) + 1);
    auto report = nlohmann::json::parse(last_line);
    CHECK(report.at("event") == "report");
    CHECK(report.at("dry_run") == true);
    REQUIRE(report.at("entries").size() == 5);
    const auto& open_json = report.at("entries")[0];
    CHECK(open_json.at("expected_size") == 60000);
    CHECK(open_json.at("digest_known") == true);
    CHECK(open_json.at("credential") == nlohmann::json{{"name", "HF_TOKEN"}, {"needed", false}, {"present", false}});
    const auto& gated_json = report.at("entries")[1];
    CHECK(gated_json.at("status") == "failed");
    CHECK(gated_json.at("credential").at("needed") == true);
    CHECK(gated_json.at("error").at("kind") == "auth");
    CHECK(report.at("entries")[3].at("expected_size") == 30000);  // from the plain URL's first-byte answer
    CHECK(report.at("entries")[4].at("status") == "present");
    CHECK(services.model_bytes_served() <= 4);  // the first byte of each plain URL, in each of the two runs

    // A disk that cannot hold what would be fetched: a warning, and the real run's exit code 7.
    auto huge = dir.write("huge.toml", "[models.checkpoints.huge]\nversion_id = \"77\"\n");
    auto huge_args = services.args(huge, dir / "ws");
    huge_args.push_back("--dry-run");
    auto short_run = run_process(huge_args, {{"CIVITAI_TOKEN", CivitaiEmulator::token}});
    INFO(short_run.out << short_run.err);
    CHECK(short_run.exit_code == 7);
    CHECK(has(short_run.out, "WARNING: "));
    CHECK(has(short_run.out, " short; free some space"));
    CHECK(services.model_bytes_served() <= 4);  // unchanged: a CivitAI entry needs no probe
}

TEST_CASE("cli output: no secret reaches the terminal, --json, the report, the log file or the lockfile") {
    Services services;
    services.hub.add_token(dry_hf_token, provision_test::HubToken("alice"));
    services.hub.grant("org/gated", "alice");
    // A server that quotes the credentials it was sent in its error page, as some do.
    services.files->server().Get("/echo.safetensors", [](const httplib::Request& req, httplib::Response& res) {
        res.status = 403;
        res.set_content("{\"error\": \"key " + req.get_header_value("Authorization") + " refused\"}",
                        "application/json");
    });
    TempDir dir;
    std::string entries =
        "[models.checkpoints.open]\nrepo = \"org/open\"\nfile = \"open.safetensors\"\n\n"
        "[models.vae.gated]\nrepo = \"org/gated\"\nfile = \"gated.safetensors\"\ngated = true\n\n"
        "[models.lora.tweak]\nversion_id = \"58390\"\n\n"
        "[models.embeddings.query]\nurl = \"https://models.example/plain.safetensors?token=" +
        dry_query_secret +
        "\"\n\n"
        "[models.embeddings.header]\nurl = \"https://models.example/placed.safetensors\"\nauth_header = \"Bearer " +
        dry_header_secret +
        "\"\n\n"
        "[models.esrgan.userinfo]\nurl = \"https://someone:" +
        dry_userinfo_secret + "@models.example/private.safetensors\"\n";
    std::map<std::string, std::string> env = {{"HF_TOKEN", dry_hf_token}, {"CIVITAI_TOKEN", CivitaiEmulator::token}};
    std::vector<std::string> secrets = {dry_hf_token, CivitaiEmulator::token, dry_query_secret, dry_header_secret,
                                        dry_userinfo_secret};
    auto check_clean = [&](const std::string& what, const std::string& text) {
        for (const auto& secret : secrets) {
            INFO(what << " must not contain " << secret);
            CHECK_FALSE(has(text, secret));
        }
    };

    // A successful run: terminal, log and lockfile.
    auto good = dir.write("good.toml", entries);
    auto ok = run_process(services.args(good, dir / "ws"), env);
    INFO(ok.out << ok.err);
    REQUIRE(ok.exit_code == 0);
    check_clean("terminal", ok.out + ok.err);
    std::string lock = provision_test::read_whole_file(dir / "ws/provision.lock");
    CHECK(has(lock, "token=***"));
    check_clean("lockfile", lock);

    // Failing runs, in JSON and as text: every error message redacted too.
    auto bad = dir.write(
        "bad.toml", "[models.lora.echo]\nurl = \"https://models.example/echo.safetensors\"\nauth_header = \"Bearer " +
                        dry_header_secret +
                        "\"\n\n"
                        "[models.lora.gone]\nurl = \"https://someone:" +
                        dry_userinfo_secret + "@models.example/gone.safetensors?token=" + dry_query_secret + "\"\n");
    auto json_args = services.args(bad, dir / "ws");
    json_args.push_back("--json");
    json_args.push_back("--report");
    json_args.push_back((dir / "report.json").string());
    auto json = run_process(json_args, env);
    CHECK(json.exit_code != 0);
    CHECK(has(json.out, "\"event\":\"report\""));
    check_clean("--json", json.out + json.err);
    check_clean("--report", provision_test::read_whole_file(dir / "report.json"));
    auto text = run_process(services.args(bad, dir / "ws"), env);
    CHECK(has(text.err + text.out, "models.lora.gone"));
    check_clean("terminal", text.out + text.err);
    check_clean("log file", provision_test::read_whole_file(dir / "ws/logs/provision.log"));
}

TEST_CASE("cli output: --help lists the lock options, the log file and what exit codes mean under --locked") {
    auto help = run_process({cli, "--help"});
    CHECK(help.exit_code == 0);
    CHECK(help.out.find("--locked") != std::string::npos);
    CHECK(help.out.find("--lock-out") != std::string::npos);
    CHECK(help.out.find("logs/provision.log (appended per run, rotated at 8 MiB") != std::string::npos);
    CHECK(help.out.find("with --locked: upstream moved") != std::string::npos);
    CHECK(help.out.find("free space per filesystem") != std::string::npos);
}

TEST_CASE("cli output: the log file gets a header per run and is rotated past its size, keeping three old logs") {
    auto server = slow_model_server(provision_test::test_bytes(1000, 9));
    TempDir dir;
    auto config = dir.write("c.toml", "[models.lora]\nfast = \"https://models.example/fast.safetensors\"\n");
    auto log = dir / "ws/logs/provision.log";
    dir.write("ws/logs/provision.log", std::string(9u << 20, 'o'));  // past the 8 MiB cap
    dir.write("ws/logs/provision.log.1", "one");
    dir.write("ws/logs/provision.log.2", "two");
    dir.write("ws/logs/provision.log.3", "three");
    auto result = run_process(base_args(*server, config, dir / "ws"));
    REQUIRE(result.exit_code == 0);
    CHECK(std::filesystem::file_size(dir / "ws/logs/provision.log.1") == (9u << 20));
    CHECK(provision_test::read_whole_file(dir / "ws/logs/provision.log.2") == "one");
    CHECK(provision_test::read_whole_file(dir / "ws/logs/provision.log.3") == "two");
    CHECK_FALSE(std::filesystem::exists(dir / "ws/logs/provision.log.4"));
    std::string fresh = provision_test::read_whole_file(log);
    CHECK(fresh.find("---- provision ") != std::string::npos);
    CHECK(fresh.find("run: " + config.string()) != std::string::npos);
    CHECK(fresh.size() < 4096);
    // Appended, not replaced, by the next run; each line starts with a UTC timestamp.
    REQUIRE(run_process(base_args(*server, config, dir / "ws")).exit_code == 0);
    std::string both = provision_test::read_whole_file(log);
    CHECK(both.substr(0, fresh.size()) == fresh);
    std::size_t headers = 0;
    for (std::size_t at = both.find("---- provision "); at != std::string::npos;
         at = both.find("---- provision ", at + 1))
        ++headers;
    CHECK(headers == 2);
    CHECK(both[4] == '-');
    CHECK(both.find("Z ---- provision") == 19);  // "2026-11-27T05:48:58Z ---- provision ..."

    // Within one run the cap holds too (a long retry storm): the logger rotates as it writes.
    provision::detail::LogFile small(dir / "small/provision.log", provision::detail::LogRotation{1000, 2});
    for (int i = 0; i < 100; ++i) small.write("line " + std::to_string(i) + std::string(80, '.'));
    CHECK(std::filesystem::file_size(dir / "small/provision.log") <= 1000);
    CHECK(std::filesystem::exists(dir / "small/provision.log.2"));
    CHECK_FALSE(std::filesystem::exists(dir / "small/provision.log.3"));
    CHECK(provision_test::read_whole_file(dir / "small/provision.log").find("line 99") != std::string::npos);
}

TEST_CASE(
    "cli output: a library caller's Report carries redacted error messages, even when a server quotes the secret") {
    // A CivitAI stand-in that quotes the API key back in its 403 body; the
    // resolver puts the server's words into the message, so only the redactor
    // stands between the key and everything that shows that message.
    auto civitai = LoopbackServer::https({"civitai.com"});
    civitai->server().Get(R"(/api/v1/model-versions/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
        std::string key = req.get_header_value("Authorization");
        key = key.substr(key.find(' ') + 1);
        res.status = 403;
        res.set_content("{\"error\":\"Forbidden\",\"message\":\"API key " + key + " is blocked\"}", "application/json");
    });
    TempDir workspace;
    provision::ProvisionOptions options;
    options.workspace = workspace.path();
    options.http.ca_files = {provision_test::test_ca().ca_cert_path};
    options.http.connect_to = {
        provision::ConnectTo{"civitai.com", std::nullopt, "127.0.0.1", static_cast<std::uint16_t>(civitai->port())}};
    options.credentials.civitai_token = "civitaiQuotedSecret5150";
    options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    std::vector<std::string> event_messages;
    std::mutex events_mutex;
    options.on_event = [&](const provision::Event& event) {
        std::lock_guard<std::mutex> lock(events_mutex);
        event_messages.push_back(event.message);
    };
    provision::ProvisioningSystem system{options};
    auto report = system.provision_from_text("[models.lora.tweak]\nversion_id = \"58390\"\n", "quoted.toml");
    REQUIRE(report.entries.size() == 1);
    const auto& failure = report.entries[0];
    CHECK(failure.status == provision::EntryOutcome::Status::failed);
    CHECK(failure.error.code == provision::errc::auth);
    INFO(failure.error.message);
    CHECK(has(failure.error.message, "API key *** is blocked"));  // the server's words, without the key
    CHECK_FALSE(has(failure.error.message, "civitaiQuotedSecret5150"));
    CHECK(failure.credential == "CIVITAI_TOKEN");
    CHECK(failure.credential_needed);
    CHECK(failure.credential_present);
    for (const auto& message : event_messages) CHECK_FALSE(has(message, "civitaiQuotedSecret5150"));
    CHECK_FALSE(
        has(provision_test::read_whole_file(workspace.path() / "logs/provision.log"), "civitaiQuotedSecret5150"));
}
