// SPDX-License-Identifier: MIT
#include "common.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"

using provision::DownloadPlan;
using provision::Downloader;
using provision::HttpClient;
using provision_test::LoopbackServer;
using provision_test::TempDir;
using provision_test::test_bytes;

namespace {

provision::HttpOptions trusting_options() {
    provision::HttpOptions options;
    options.ca_files = {provision_test::test_ca().ca_cert_path};
    return options;
}

DownloadPlan plan_for(const std::string& url, const std::filesystem::path& folder, const std::string& name = "") {
    DownloadPlan plan;
    plan.key_path = "models.lora.test";
    plan.url = provision::parse_url(url).value();
    plan.folder = folder;
    plan.file_name = name;
    return plan;
}

/// Every regular file under a folder, relative names sorted.
std::vector<std::string> files_under(const std::filesystem::path& folder) {
    std::vector<std::string> names;
    if (!std::filesystem::exists(folder)) return names;
    for (const auto& item : std::filesystem::recursive_directory_iterator(folder))
        if (item.is_regular_file()) names.push_back(std::filesystem::relative(item.path(), folder).string());
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace

TEST_CASE("downloader: installs the exact bytes under the final name, verified") {
    auto server = LoopbackServer::https();
    std::string body = test_bytes(3 << 20, 7);
    server->server().Get("/m/model.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, body);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    Downloader downloader{http, {}};
    auto plan = plan_for(server->url("/m/model.safetensors"), dir / "Lora", "model.safetensors");
    plan.sha256 = provision::detail::sha256_hex(body);
    auto installed = downloader.download(plan);
    REQUIRE(installed);
    CHECK(installed->path == dir / "Lora" / "model.safetensors");
    CHECK(installed->size == body.size());
    CHECK(installed->sha256 == plan.sha256);
    CHECK(provision_test::read_whole_file(installed->path) == body);
    CHECK(files_under(dir.path()) == std::vector<std::string>{"Lora/model.safetensors"});

    // A second run finds the verified file and fetches nothing.
    auto served_before = server->requests().size();
    auto again = downloader.download(plan);
    REQUIRE(again);
    CHECK(again->already_present);
    CHECK(server->requests().size() == served_before);
}

TEST_CASE("downloader: an HTML page where a model was expected is an error and nothing is installed") {
    auto server = LoopbackServer::https();
    server->server().Get("/page/model.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("<!DOCTYPE html><html><body>Please log in</body></html>", "text/html; charset=utf-8");
    });
    server->server().Get("/sniffed/model.ckpt", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("\n<html><body>Sign in</body></html>", "application/octet-stream");
    });
    server->server().Get("/json/model.gguf", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(R"({"error":"Unauthorized"})", "application/json");
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    Downloader downloader{http, {}};
    for (const char* path : {"/page/model.safetensors", "/sniffed/model.ckpt", "/json/model.gguf"}) {
        CAPTURE(path);
        auto result = downloader.download(plan_for(server->url(path), dir / "Lora"));
        REQUIRE_FALSE(result);
        CHECK(result.error().code == provision::errc::integrity);
        CHECK(result.error().message.find("models.lora.test") != std::string::npos);
    }
    CHECK(files_under(dir.path()).empty());
}

TEST_CASE("downloader: a text file that is not a model is fine") {
    auto server = LoopbackServer::https();
    server->server().Get("/cfg/model.yaml", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("model: {}\n", "text/yaml");
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    Downloader downloader{http, {}};
    auto result = downloader.download(plan_for(server->url("/cfg/model.yaml"), dir / "VAE"));
    REQUIRE(result);
    CHECK(provision_test::read_whole_file(dir / "VAE/model.yaml") == "model: {}\n");
}

TEST_CASE("downloader: the file name comes from filename, then Content-Disposition, then the URL") {
    auto server = LoopbackServer::https();
    std::string body = test_bytes(1000, 3);
    auto disposition = [&](const std::string& header) {
        return [&body, &server, header](const httplib::Request& req, httplib::Response& res) {
            res.set_header("Content-Disposition", header);
            server->serve_bytes(res, req, body);
        };
    };
    server->server().Get("/cd/plain", disposition("attachment; filename=\"plain.safetensors\""));
    server->server().Get("/cd/star", disposition("attachment; filename=\"fallback.bin\"; filename*=UTF-8''na%C3%AFve%20lora.safetensors"));
    server->server().Get("/cd/climb", disposition("attachment; filename=\"../../escape.safetensors\""));
    server->server().Get("/cd/abs", disposition("attachment; filename=\"/etc/cron.d/x.bin\""));
    server->server().Get("/cd/dots", disposition("attachment; filename=\"..\""));
    server->server().Get("/cd/control", disposition(std::string("attachment; filename=\"a\x01" "b.bin\"")));
    server->server().Get("/plain/from-url.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, body);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    Downloader downloader{http, {}};
    auto name_of = [&](const std::string& path, const std::string& configured = "") {
        auto result = downloader.download(plan_for(server->url(path), dir / "Lora", configured));
        REQUIRE(result);
        CHECK(provision_test::read_whole_file(result->path) == body);
        CHECK(result->path.parent_path() == dir / "Lora");
        return result->path.filename().string();
    };
    CHECK(name_of("/cd/plain") == "plain.safetensors");
    CHECK(name_of("/cd/star") == "naïve lora.safetensors");
    CHECK(name_of("/cd/climb") == "_.._escape.safetensors");
    CHECK(name_of("/cd/abs") == "_etc_cron.d_x.bin");
    CHECK(name_of("/cd/dots") == "dots");  // nothing usable: the URL's last segment
    CHECK(name_of("/cd/control") == "a_b.bin");
    CHECK(name_of("/plain/from-url.safetensors") == "from-url.safetensors");
    CHECK(name_of("/cd/plain", "chosen.safetensors") == "chosen.safetensors");
    CHECK_FALSE(std::filesystem::exists(dir / "escape.safetensors"));
    CHECK_FALSE(std::filesystem::exists("/etc/cron.d/x.bin"));
}

TEST_CASE("downloader: a digest mismatch installs nothing and names both digests") {
    auto server = LoopbackServer::https();
    std::string body = test_bytes(5000, 9);
    server->server().Get("/m.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, body);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    Downloader downloader{http, {}};
    auto plan = plan_for(server->url("/m.safetensors"), dir / "Lora");
    plan.sha256 = std::string(64, 'a');
    auto result = downloader.download(plan);
    REQUIRE_FALSE(result);
    CHECK(result.error().code == provision::errc::integrity);
    CHECK(result.error().message.find(plan.sha256) != std::string::npos);
    CHECK(result.error().message.find(provision::detail::sha256_hex(body)) != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "Lora/m.safetensors"));
}

TEST_CASE("downloader: a body cut short leaves nothing under the final name") {
    auto server = LoopbackServer::https();
    std::string body = test_bytes(1 << 20, 5);
    server->server().Get("/cut.safetensors", [&](const httplib::Request&, httplib::Response& res) {
        res.set_content_provider(body.size(), "application/octet-stream",
                                 [&](std::size_t offset, std::size_t, httplib::DataSink& sink) {
                                     if (offset >= body.size() / 2) return false;  // drop the connection halfway
                                     sink.write(body.data() + offset, 64 * 1024);
                                     return true;
                                 });
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    Downloader downloader{http, {}};
    auto result = downloader.download(plan_for(server->url("/cut.safetensors"), dir / "Lora"));
    REQUIRE_FALSE(result);
    CHECK(result.error().code == provision::errc::network);
    CHECK_FALSE(std::filesystem::exists(dir / "Lora/cut.safetensors"));
}

TEST_CASE("downloader: HTTP errors become the plan's explanation") {
    auto server = LoopbackServer::https();
    server->server().Get("/gone.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.status = 404;
        res.set_content("Not Found", "text/plain");
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    Downloader downloader{http, {}};
    provision::Entry entry;
    entry.key_path = "models.vae.missing";
    entry.url = server->url("/gone.safetensors");
    provision::ResolveContext context{http, {}};
    auto plan = provision::resolve_entry(entry, context);
    REQUIRE(plan);
    plan->folder = dir / "VAE";
    auto result = downloader.download(plan.value());
    REQUIRE_FALSE(result);
    CHECK(result.error().code == provision::errc::not_found);
    CHECK(result.error().message.find("models.vae.missing") != std::string::npos);
    CHECK(result.error().message.find("HTTP 404") != std::string::npos);
    CHECK(files_under(dir.path()).empty());
}
