// SPDX-License-Identifier: MIT
#include "common.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>

namespace suite_provisioner {  // apart from the suites compiled with it (tests/meson.build)

using provision::EntryOutcome;
using provision::ProvisioningSystem;
using provision::ProvisionOptions;
using provision_test::LoopbackServer;
using provision_test::TempDir;
using provision_test::test_bytes;

namespace {

ProvisionOptions options_for(const TempDir& workspace) {
    ProvisionOptions options;
    options.workspace = workspace.path();
    options.http.ca_files = {provision_test::test_ca().ca_cert_path};
    options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    return options;
}

}  // namespace

TEST_CASE("provisioner: url entries in every config form land in the seed's folders, byte-exact") {
    auto server = LoopbackServer::https();
    std::map<std::string, std::string> files = {
        {"/files/base.safetensors", test_bytes(200000, 1)},
        {"/files/detail.safetensors", test_bytes(150000, 2)},
        {"/files/ae.safetensors", test_bytes(120000, 3)},
        {"/files/clip_l.safetensors", test_bytes(90000, 4)},
    };
    for (const auto& [path, body] : files) {
        const std::string& content = body;
        server->server().Get(path, [&content, &server](const httplib::Request& req, httplib::Response& res) {
            server->serve_bytes(res, req, content);
        });
    }
    std::string config =
        "[models.checkpoints.base]\n"
        "source = \"url\"\n"
        "url = \"" +
        server->url("/files/base.safetensors") +
        "\"\n"
        "filename = \"sdxl-base.safetensors\"\n"
        "\n[models.lora]\n"
        "detail = \"" +
        server->url("/files/detail.safetensors") +
        "\"\n"
        "\n[models.vae.flux-vae]\n"
        "url = \"" +
        server->url("/files/ae.safetensors") +
        "\"\n"
        "sha256 = \"" +
        provision::detail::sha256_hex(files["/files/ae.safetensors"]) +
        "\"\n"
        "\n[models.clip]\n"
        "clip_l = { source = \"url\", url = \"" +
        server->url("/files/clip_l.safetensors") + "\" }\n";
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace)};
    auto report = system.provision_from_text(config, "test.toml");
    INFO(report.config_errors.size());
    for (const auto& entry : report.entries) INFO(entry.key_path << ": " << entry.error.message);
    REQUIRE(report.ok());
    REQUIRE(report.entries.size() == 4);
    auto models = workspace.path() / "sdnext" / "models";
    CHECK(provision_test::read_whole_file(models / "Stable-diffusion/sdxl-base.safetensors") ==
          files["/files/base.safetensors"]);
    CHECK(provision_test::read_whole_file(models / "Lora/detail.safetensors") == files["/files/detail.safetensors"]);
    CHECK(provision_test::read_whole_file(models / "VAE/ae.safetensors") == files["/files/ae.safetensors"]);
    CHECK(provision_test::read_whole_file(models / "text_encoder/clip_l.safetensors") ==
          files["/files/clip_l.safetensors"]);
    for (const auto& entry : report.entries) CHECK(entry.status == EntryOutcome::Status::installed);
    auto log = provision_test::read_whole_file(workspace.path() / "logs" / "provision.log");
    CHECK(log.find("run: test.toml") != std::string::npos);
    CHECK(log.find("done models.lora.detail") != std::string::npos);
}

TEST_CASE("provisioner: at most `jobs` entries download at once") {
    // Each request is held until `jobs` of them are in flight (or 10 s pass),
    // then all go on: so the run must reach `jobs` at once (gate_opened), and
    // a request beyond the bound would show in `peak`. No timing window: the
    // gate waits on a condition, not on a sleep.
    std::mutex mutex;
    std::condition_variable changed;
    int in_flight = 0;
    int peak = 0;
    int wanted = 0;
    bool gate_opened = false;
    auto server = LoopbackServer::https();
    server->server().Get(R"(/slow/(\d+)\.bin)", [&](const httplib::Request&, httplib::Response& res) {
        {
            std::unique_lock<std::mutex> lock(mutex);
            peak = std::max(peak, ++in_flight);
            if (in_flight >= wanted) gate_opened = true;
            changed.notify_all();
            changed.wait_for(lock, std::chrono::seconds(10), [&] { return gate_opened; });
            --in_flight;
        }
        res.set_content(std::string(100, 'x'), "application/octet-stream");
    });
    std::string config = "[models.lora]\n";
    for (int i = 0; i < 12; ++i)
        config += "f" + std::to_string(i) + " = \"" + server->url("/slow/" + std::to_string(i) + ".bin") + "\"\n";
    for (std::size_t jobs : {std::size_t{5}, std::size_t{2}}) {
        CAPTURE(jobs);
        {
            std::lock_guard<std::mutex> lock(mutex);
            peak = 0;
            wanted = static_cast<int>(jobs);
            gate_opened = false;
        }
        TempDir workspace;
        auto options = options_for(workspace);
        options.jobs = jobs;
        ProvisioningSystem system{options};
        auto report = system.provision_from_text(config, "jobs.toml");
        REQUIRE(report.ok());
        std::lock_guard<std::mutex> lock(mutex);
        CHECK(gate_opened);                     // `jobs` requests were in flight together
        CHECK(peak <= static_cast<int>(jobs));  // and never more
    }
    CHECK(ProvisionOptions{}.jobs == 5);
}

TEST_CASE("provisioner: one failed entry never stops the others") {
    auto server = LoopbackServer::https();
    server->server().Get("/ok.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(std::string(5000, 'm'), "application/octet-stream");
    });
    server->server().Get("/login.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("<html>login</html>", "text/html");
    });
    std::string config =
        "[models.lora]\n"
        "a = \"" +
        server->url("/missing.safetensors") +
        "\"\n"
        "b = \"" +
        server->url("/ok.safetensors") +
        "\"\n"
        "c = \"" +
        server->url("/login.safetensors") + "\"\n";
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace)};
    auto report = system.provision_from_text(config, "mixed.toml");
    REQUIRE(report.entries.size() == 3);
    CHECK(report.entries[0].status == EntryOutcome::Status::failed);
    CHECK(report.entries[0].error.code == provision::errc::not_found);
    CHECK(report.entries[1].status == EntryOutcome::Status::installed);
    CHECK(report.entries[2].status == EntryOutcome::Status::failed);
    CHECK(report.entries[2].error.code == provision::errc::integrity);
    CHECK_FALSE(report.ok());
    CHECK(report.exit_code() == 4);
    auto lora = workspace.path() / "sdnext/models/Lora";
    CHECK(std::filesystem::exists(lora / "ok.safetensors"));
    CHECK_FALSE(std::filesystem::exists(lora / "login.safetensors"));
    CHECK_FALSE(std::filesystem::exists(lora / "missing.safetensors"));
}

TEST_CASE("provisioner: an unknown category stops the run before any download, naming the line") {
    auto server = LoopbackServer::https();
    server->server().Get("/x.bin", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("x", "application/octet-stream");
    });
    std::string config = "[models.lora]\nok = \"" + server->url("/x.bin") + "\"\n\n[models.loras.typo]\nurl = \"" +
                         server->url("/x.bin") + "\"\n";
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace)};
    auto report = system.provision_from_text(config, "typo.toml");
    REQUIRE(report.config_errors.size() == 1);
    auto text = report.config_errors[0].str();
    CHECK(text.find("typo.toml:4:") == 0);
    CHECK(text.find("unknown category \"loras\"") != std::string::npos);
    CHECK(text.find("known categories: checkpoints, clip,") != std::string::npos);
    CHECK(report.exit_code() == 2);
    CHECK(server->requests().empty());
}

TEST_CASE("provisioner: dry run fetches no model bytes") {
    auto server = LoopbackServer::https();
    server->server().Get("/x.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("x", "application/octet-stream");
    });
    TempDir workspace;
    auto options = options_for(workspace);
    options.dry_run = true;
    ProvisioningSystem system{options};
    auto report =
        system.provision_from_text("[models.vae]\nv = \"" + server->url("/x.safetensors") + "\"\n", "dry.toml");
    REQUIRE(report.ok());
    REQUIRE(report.entries.size() == 1);
    CHECK(report.entries[0].status == EntryOutcome::Status::planned);
    // One request, for the first byte only: the link works and says its size.
    auto requests = server->requests();
    REQUIRE(requests.size() == 1);
    CHECK(requests[0].header("Range") == "bytes=0-0");
    CHECK(server->bytes_sent() <= 1);
    CHECK_FALSE(std::filesystem::exists(workspace.path() / "sdnext/models/VAE"));
}

TEST_CASE("provisioner: a dry run fails a dead or refused plain URL with the download's explanation") {
    auto server = LoopbackServer::https();
    server->server().Get("/login.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("<!DOCTYPE html><html><body>Sign in</body></html>", "text/html");
    });
    server->server().Get("/private.safetensors",
                         [](const httplib::Request&, httplib::Response& res) { res.status = 403; });
    server->server().Get("/ok.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, std::string(70000, 'm'));
    });
    TempDir workspace;
    auto options = options_for(workspace);
    options.dry_run = true;
    ProvisioningSystem system{options};
    auto report = system.provision_from_text("[models.lora]\nmissing = \"" + server->url("/missing.safetensors") +
                                                 "\"\n" + "login = \"" + server->url("/login.safetensors") + "\"\n" +
                                                 "private = \"" + server->url("/private.safetensors") + "\"\n" +
                                                 "ok = \"" + server->url("/ok.safetensors") + "\"\n",
                                             "dry.toml");
    REQUIRE(report.entries.size() == 4);
    CHECK(report.entries[0].error.code == provision::errc::not_found);
    CHECK(report.entries[0].error.message.find("models.lora.missing") != std::string::npos);
    CHECK(report.entries[1].error.code == provision::errc::integrity);
    CHECK(report.entries[1].error.message.find("web page") != std::string::npos);
    CHECK(report.entries[2].error.code == provision::errc::auth);
    CHECK(report.entries[3].status == EntryOutcome::Status::planned);
    CHECK(report.entries[3].bytes == 70000);
    CHECK(report.exit_code() == 4);
    CHECK(server->bytes_sent() <= 1);
}

TEST_CASE("provisioner: a config from a URL, synchronously and through a future") {
    std::string model = test_bytes(4096, 11);
    std::string config;  // the server's handler reads it: declared first, it outlives the server
    auto server = LoopbackServer::https();
    config = "[models.embeddings]\nneg = \"" + server->url("/neg.pt") + "\"\n";
    server->server().Get("/config.toml", [&](const httplib::Request&, httplib::Response& res) {
        res.set_content(config, "text/plain");
    });
    server->server().Get("/page.toml", [&](const httplib::Request&, httplib::Response& res) {
        res.set_content("<!DOCTYPE html><html>GitHub blob view</html>", "text/html");
    });
    server->server().Get(
        "/neg.pt", [&](const httplib::Request& req, httplib::Response& res) { server->serve_bytes(res, req, model); });
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace)};
    auto report = system.provision_from_url_async(server->url("/config.toml")).get();
    REQUIRE(report.ok());
    CHECK(provision_test::read_whole_file(workspace.path() / "sdnext/models/embeddings/neg.pt") == model);

    auto page = system.provision_from_url(server->url("/page.toml"));
    REQUIRE(page.fatal);
    CHECK(page.fatal->message.find("web page, not a TOML file") != std::string::npos);
    auto missing = system.provision_from_url(server->url("/nothing.toml"));
    REQUIRE(missing.fatal);
    CHECK(missing.exit_code() == 4);
    auto from_file = system.provision_from_file(workspace.path() / "no-such.toml");
    REQUIRE(from_file.fatal);
    CHECK(from_file.fatal->message.find("no such file") != std::string::npos);
}

TEST_CASE("provisioner: an exception escaping a thread of the library fails its entry, and the others finish") {
    // A host's event handler that throws runs on the library's threads: before
    // run_guarded, the exception reached std::terminate and ended the program.
    std::string body_a = test_bytes(100000, 5), body_b = test_bytes(100000, 6);
    auto server = LoopbackServer::https();
    server->server().Get("/a.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, body_a);
    });
    server->server().Get("/b.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, body_b);
    });
    TempDir workspace;
    auto options = options_for(workspace);
    options.jobs = 2;
    options.on_event = [](const provision::Event& event) {
        if (event.kind == provision::EventKind::plan && event.key_path == "models.lora.throws")
            throw std::runtime_error("the host's handler broke");
    };
    ProvisioningSystem system{options};
    auto report = system.provision_from_text("[models.lora]\nthrows = \"" + server->url("/a.safetensors") +
                                                 "\"\nfine = \"" + server->url("/b.safetensors") + "\"\n",
                                             "test.toml");
    REQUIRE(report.entries.size() == 2);
    CHECK(report.entries[0].status == EntryOutcome::Status::failed);
    CHECK(report.entries[0].error.code == provision::errc::internal);
    CHECK(report.entries[0].error.message == "models.lora.throws: unexpected failure: the host's handler broke");
    CHECK(report.entries[1].status == EntryOutcome::Status::installed);
    CHECK(provision_test::read_whole_file(workspace.path() / "sdnext/models/Lora/b.safetensors") == body_b);
    CHECK(report.exit_code() == 70);
}

}  // namespace suite_provisioner
