// SPDX-License-Identifier: MIT
#include "common.hpp"
#include "support/engine_fixtures.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>

namespace suite_downloader {  // apart from the suites compiled with it (tests/meson.build)

using provision::Downloader;
using provision::DownloadPlan;
using provision::HttpClient;
using provision_test::fast_options;
using provision_test::files_under;
using provision_test::LoopbackServer;
using provision_test::plan_for;
using provision_test::TempDir;
using provision_test::test_bytes;
using provision_test::trusting_options;

namespace {}  // namespace

TEST_CASE("downloader: installs the exact bytes under the final name, verified") {
    std::string body = test_bytes(3 << 20, 7);
    auto server = LoopbackServer::https();
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

TEST_CASE("downloader: text/plain decides by the body: a binary model installs, a text message is refused") {
    // nginx without its MIME map (and many object stores) label every
    // unknown file text/plain; an error message served the same way is not a model.
    std::string model =
        std::string("\x18\x00\x00\x00\x00\x00\x00\x00", 8) + R"({"__metadata__":{}}     )" + test_bytes(5000, 41);
    auto server = LoopbackServer::https();
    server->server().Get("/plain/model.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        provision_test::ServeOptions as_text;
        as_text.content_type = "text/plain";
        server->serve_bytes(res, req, model, as_text);
    });
    server->server().Get("/denied/model.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("Access denied: this bucket requires a signed request\n", "text/plain; charset=utf-8");
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    Downloader downloader{http, {}};
    auto installed = downloader.download(plan_for(server->url("/plain/model.safetensors"), dir / "Lora"));
    INFO((installed ? std::string() : installed.error().message));
    REQUIRE(installed);
    CHECK(provision_test::read_whole_file(dir / "Lora/model.safetensors") == model);

    auto refused = downloader.download(plan_for(server->url("/denied/model.safetensors"), dir / "VAE"));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == provision::errc::integrity);
    CHECK(refused.error().message.find("sent text (\"Access denied: this bucket requires a signed request") !=
          std::string::npos);
    CHECK(files_under(dir / "VAE").empty());
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
    std::string body = test_bytes(1000, 3);
    auto server = LoopbackServer::https();
    auto disposition = [&](const std::string& header) {
        return [&body, &server, header](const httplib::Request& req, httplib::Response& res) {
            res.set_header("Content-Disposition", header);
            server->serve_bytes(res, req, body);
        };
    };
    server->server().Get("/cd/plain", disposition("attachment; filename=\"plain.safetensors\""));
    server->server().Get(
        "/cd/star",
        disposition("attachment; filename=\"fallback.bin\"; filename*=UTF-8''na%C3%AFve%20lora.safetensors"));
    server->server().Get("/cd/climb", disposition("attachment; filename=\"../../escape.safetensors\""));
    server->server().Get("/cd/abs", disposition("attachment; filename=\"/etc/cron.d/x.bin\""));
    server->server().Get("/cd/dots", disposition("attachment; filename=\"..\""));
    server->server().Get("/cd/control", disposition(std::string("attachment; filename=\"a\x01"
                                                                "b.bin\"")));
    // A name with a literal percent sign: decoded once, as sent (cpp-httplib
    // 0.11 decodes header values itself, and would have made this "aA").
    server->server().Get("/cd/percent", disposition("attachment; filename*=UTF-8''a%2541.safetensors"));
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
    CHECK(name_of("/cd/percent") == "a%41.safetensors");
    CHECK(name_of("/plain/from-url.safetensors") == "from-url.safetensors");
    CHECK(name_of("/cd/plain", "chosen.safetensors") == "chosen.safetensors");
    CHECK_FALSE(std::filesystem::exists(dir / "escape.safetensors"));
    CHECK_FALSE(std::filesystem::exists("/etc/cron.d/x.bin"));
}

TEST_CASE("downloader: a digest mismatch installs nothing and names both digests") {
    std::string body = test_bytes(5000, 9);
    auto server = LoopbackServer::https();
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
    CHECK(result.error().message.find("a second download from scratch gave the same bytes") != std::string::npos);
    CHECK(result.error().message.find("check the entry's sha256") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "Lora/m.safetensors"));
}

TEST_CASE("downloader: a body cut short leaves nothing under the final name") {
    std::string body = test_bytes(1 << 20, 5);
    auto server = LoopbackServer::https();
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
    Downloader downloader{http, fast_options()};  // the server cuts every retry at the same byte: give up quickly
    auto result = downloader.download(plan_for(server->url("/cut.safetensors"), dir / "Lora"));
    REQUIRE_FALSE(result);
    CHECK(result.error().code == provision::errc::network);
    CHECK(result.error().message.find("gave up after") != std::string::npos);
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

// ---------------------------------------------------------------------------
// The engine: segments, retries, stalls, verification, records, locks.

namespace {

/// Collects events (the downloader reports on its calling thread; tests may
/// read from another one).
struct EventLog {
    std::mutex mutex;
    std::vector<provision::Event> events;
    std::function<void(const provision::Event&)> also;

    provision::EventHandler handler() {
        return [this](const provision::Event& event) {
            {
                std::lock_guard<std::mutex> lock(mutex);
                events.push_back(event);
            }
            if (also) also(event);
        };
    }
    std::vector<std::string> messages(provision::EventKind kind) {
        std::lock_guard<std::mutex> lock(mutex);
        std::vector<std::string> out;
        for (const auto& event : events)
            if (event.kind == kind) out.push_back(event.message);
        return out;
    }
    bool any(provision::EventKind kind, const std::string& needle) {
        for (const auto& message : messages(kind))
            if (message.find(needle) != std::string::npos) return true;
        return false;
    }
};

std::size_t ranged_requests(const LoopbackServer& server, const std::string& path) {
    std::size_t count = 0;
    for (const auto& request : server.requests())
        if (request.path == path && request.has_header("Range")) ++count;
    return count;
}

std::size_t requests_for(const LoopbackServer& server, const std::string& path) {
    std::size_t count = 0;
    for (const auto& request : server.requests())
        if (request.path == path) ++count;
    return count;
}

}  // namespace

TEST_CASE("engine: a file comes over several connections, byte-exact, and nothing but it is left") {
    // The first response waits after its first chunk until a second request has
    // arrived, so the connections overlap however slow the machine is (a rate
    // limit alone was not enough under TSan). An engine that never opens a
    // second connection leaves it waiting the full 30 s and peak_active at 1.
    std::mutex arrivals_mutex;
    std::condition_variable arrived;
    int requests_seen = 0;
    auto body = std::make_shared<const std::string>(test_bytes(6 << 20, 17));
    auto server = LoopbackServer::https();
    server->server().Get("/big.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        {
            std::lock_guard<std::mutex> lock(arrivals_mutex);
            ++requests_seen;
        }
        arrived.notify_all();
        provision_test::ServeOptions options;
        options.bytes_per_second = 24 << 20;  // slow enough that the connections overlap
        options.after_first_chunk = [&] {
            std::unique_lock<std::mutex> lock(arrivals_mutex);
            arrived.wait_for(lock, std::chrono::seconds(30), [&] { return requests_seen >= 2; });
        };
        server->serve_bytes(res, req, body, options);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    Downloader downloader{http, fast_options(4)};
    auto plan = plan_for(server->url("/big.safetensors"), dir / "Lora", "big.safetensors");
    plan.sha256 = provision::detail::sha256_hex(*body);
    plan.size = body->size();
    auto installed = downloader.download(plan);
    REQUIRE(installed);
    CHECK(installed->sha256 == plan.sha256);
    CHECK(provision_test::read_whole_file(dir / "Lora/big.safetensors") == *body);
    CHECK(server->peak_active() >= 2);
    // At most 4 connections; the server may still be writing into one that a
    // split piece's first owner just closed while its replacement starts.
    CHECK(server->peak_active() <= 5);
    CHECK(ranged_requests(*server, "/big.safetensors") >= 4);
    // Each byte is sent once, except what a split piece's first owner read
    // past its new end before it stopped.
    CHECK(server->bytes_sent() >= body->size());
    CHECK(server->bytes_sent() < body->size() + (2u << 20));
    CHECK(files_under(dir.path()) == std::vector<std::string>{"Lora/big.safetensors"});
}

TEST_CASE("engine: a server without Range support gets one stream") {
    auto body = std::make_shared<const std::string>(test_bytes(3 << 20, 18));
    auto server = LoopbackServer::https();
    server->server().Get("/plain.bin", [&](const httplib::Request& req, httplib::Response& res) {
        provision_test::ServeOptions options;
        options.ignore_range = true;
        server->serve_bytes(res, req, body, options);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    Downloader downloader{http, fast_options(4)};
    auto installed = downloader.download(plan_for(server->url("/plain.bin"), dir / "VAE"));
    REQUIRE(installed);
    CHECK(provision_test::read_whole_file(dir / "VAE/plain.bin") == *body);
    CHECK(requests_for(*server, "/plain.bin") == 1);
    CHECK(server->peak_active() == 1);
    CHECK(server->bytes_sent() == body->size());
}

TEST_CASE("engine: connections dropped at chosen offsets continue where they broke, each byte served once") {
    auto body = std::make_shared<const std::string>(test_bytes(2 << 20, 19));
    std::atomic<int> served{0};
    auto server = LoopbackServer::https();
    server->server().Get("/drop.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        provision_test::ServeOptions options;
        int number = served++;
        if (number < 3)
            options.abort_after = 300000u + 1000u * static_cast<unsigned>(number);  // three drops, then good answers
        server->serve_bytes(res, req, body, options);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    EventLog log;
    auto options = fast_options(1);  // one connection: the accounting is exact
    options.on_event = log.handler();
    Downloader downloader{http, options};
    auto plan = plan_for(server->url("/drop.safetensors"), dir / "Lora", "drop.safetensors");
    plan.sha256 = provision::detail::sha256_hex(*body);
    auto installed = downloader.download(plan);
    REQUIRE(installed);
    CHECK(provision_test::read_whole_file(dir / "Lora/drop.safetensors") == *body);
    CHECK(server->bytes_sent() == body->size());  // nothing fetched twice
    auto retries = log.messages(provision::EventKind::retry);
    CHECK(retries.size() == 3);  // each retry reported once, with its reason
    for (const auto& message : retries) {
        CAPTURE(message);
        CHECK((message.find("closed") != std::string::npos || message.find("broke") != std::string::npos));
        CHECK(message.find("models.lora.test") != std::string::npos);
    }
    // The requests after each drop start where the drop left off.
    std::vector<std::string> ranges;
    for (const auto& request : server->requests()) ranges.push_back(request.header("Range"));
    REQUIRE(ranges.size() == 4);
    CHECK(ranges[1].find("bytes=300000-") == 0);
    CHECK(ranges[2].find("bytes=601000-") == 0);
    CHECK(ranges[3].find("bytes=903000-") == 0);
}

TEST_CASE("engine: a stalled connection is dropped and its bytes fetched again") {
    auto body = std::make_shared<const std::string>(test_bytes(1 << 20, 20));
    std::atomic<int> served{0};
    auto server = LoopbackServer::https();
    server->server().Get("/stall.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        provision_test::ServeOptions options;
        if (served++ == 0) {
            options.stall_at = 400000;  // the first answer goes silent here
            options.stall_for = std::chrono::milliseconds(1500);
        }
        server->serve_bytes(res, req, body, options);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    EventLog log;
    auto options = fast_options(1);
    options.stall_timeout = std::chrono::milliseconds(300);
    options.on_event = log.handler();
    Downloader downloader{http, options};
    auto installed = downloader.download(plan_for(server->url("/stall.safetensors"), dir / "Lora"));
    REQUIRE(installed);
    CHECK(provision_test::read_whole_file(dir / "Lora/stall.safetensors") == *body);
    CHECK(log.any(provision::EventKind::retry, "stalled"));
    bool refetched = false;  // the bytes from the silent point on were asked for again
    for (const auto& request : server->requests())
        refetched = refetched || request.header("Range").find("bytes=400000-") == 0;
    CHECK(refetched);
}

TEST_CASE("engine: 5xx and 408 are retried, other 4xx are not, and a server that never recovers fails the file") {
    auto body = std::make_shared<const std::string>(test_bytes(100000, 21));
    std::atomic<int> flaky{0};
    auto server = LoopbackServer::https();
    server->server().Get("/flaky.bin", [&](const httplib::Request& req, httplib::Response& res) {
        int number = flaky++;
        if (number == 0) res.status = 503;
        else if (number == 1) res.status = 408;
        else if (number == 2) res.status = 500;
        else server->serve_bytes(res, req, body);
    });
    server->server().Get("/forbidden.bin", [](const httplib::Request&, httplib::Response& res) { res.status = 403; });
    server->server().Get("/gone.bin", [](const httplib::Request&, httplib::Response& res) { res.status = 410; });
    server->server().Get("/down.bin", [](const httplib::Request&, httplib::Response& res) { res.status = 502; });
    TempDir dir;
    HttpClient http{trusting_options()};
    EventLog log;
    auto options = fast_options(2);
    options.on_event = log.handler();
    Downloader downloader{http, options};

    auto flaky_result = downloader.download(plan_for(server->url("/flaky.bin"), dir / "VAE"));
    REQUIRE(flaky_result);
    CHECK(provision_test::read_whole_file(dir / "VAE/flaky.bin") == *body);
    CHECK(requests_for(*server, "/flaky.bin") == 4);
    CHECK(log.any(provision::EventKind::retry, "HTTP 503"));
    CHECK(log.any(provision::EventKind::retry, "HTTP 408"));

    for (const char* path : {"/forbidden.bin", "/gone.bin"}) {
        CAPTURE(path);
        auto result = downloader.download(plan_for(server->url(path), dir / "VAE"));
        REQUIRE_FALSE(result);
        CHECK(requests_for(*server, path) == 1);  // never retried
    }
    auto down = downloader.download(plan_for(server->url("/down.bin"), dir / "VAE"));
    REQUIRE_FALSE(down);
    CHECK(down.error().code == provision::errc::network);
    CHECK(down.error().message.find("HTTP 502") != std::string::npos);
    CHECK(down.error().message.find("gave up after 4 attempts") != std::string::npos);
    CHECK(requests_for(*server, "/down.bin") == 4);  // the first try and max_attempts (3) retries
    CHECK(files_under(dir.path()) == std::vector<std::string>{"VAE/flaky.bin"});
}

TEST_CASE("engine: 429 waits as long as Retry-After or RateLimit says") {
    auto body = std::make_shared<const std::string>(test_bytes(50000, 22));
    std::mutex mutex;
    std::map<std::string, std::vector<std::chrono::steady_clock::time_point>> seen;
    auto server = LoopbackServer::https();
    auto limited = [&](const std::string& header, const std::string& value) {
        return [&, header, value](const httplib::Request& req, httplib::Response& res) {
            std::size_t number;
            {
                std::lock_guard<std::mutex> lock(mutex);
                seen[req.path].push_back(std::chrono::steady_clock::now());
                number = seen[req.path].size();
            }
            if (number == 1) {
                res.status = 429;
                res.set_header(header, value);
                return;
            }
            server->serve_bytes(res, req, body);
        };
    };
    server->server().Get("/seconds.bin", limited("Retry-After", "1"));
    server->server().Get("/ratelimit.bin", limited("RateLimit", "\"resolvers\";r=0;t=1"));
    TempDir dir;
    HttpClient http{trusting_options()};
    EventLog log;
    auto options = fast_options(1);  // backoff alone would wait about 1 ms
    options.on_event = log.handler();
    Downloader downloader{http, options};
    for (const char* path : {"/seconds.bin", "/ratelimit.bin"}) {
        CAPTURE(path);
        auto result = downloader.download(plan_for(server->url(path), dir / "VAE"));
        REQUIRE(result);
        std::lock_guard<std::mutex> lock(mutex);
        REQUIRE(seen[path].size() == 2);
        CHECK(seen[path][1] - seen[path][0] >= std::chrono::milliseconds(950));
    }
    CHECK(log.any(provision::EventKind::retry, "HTTP 429"));
    CHECK(log.any(provision::EventKind::retry, "in 1 s"));
}

TEST_CASE("engine: wrong bytes get one fresh download, then a failure naming both digests") {
    auto good = std::make_shared<const std::string>(test_bytes(400000, 23));
    auto bad = std::make_shared<const std::string>(test_bytes(400000, 24));
    std::atomic<int> once{0};
    auto server = LoopbackServer::https();
    server->server().Get("/once.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        // Every answer of the first download is wrong, the second download's right.
        bool first_download = once++ < 1;
        server->serve_bytes(res, req, first_download ? bad : good);
    });
    server->server().Get("/always.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, bad);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    EventLog log;
    auto options = fast_options(1);
    options.on_event = log.handler();
    Downloader downloader{http, options};

    auto once_plan = plan_for(server->url("/once.safetensors"), dir / "Lora", "once.safetensors");
    once_plan.sha256 = provision::detail::sha256_hex(*good);
    auto fixed = downloader.download(once_plan);
    REQUIRE(fixed);
    CHECK(provision_test::read_whole_file(dir / "Lora/once.safetensors") == *good);
    CHECK(log.any(provision::EventKind::retry, "SHA-256 mismatch"));

    REQUIRE(server->wait_until_idle());
    auto before = server->bytes_sent();
    auto always_plan = plan_for(server->url("/always.safetensors"), dir / "Lora", "always.safetensors");
    always_plan.sha256 = provision::detail::sha256_hex(*good);
    auto result = downloader.download(always_plan);
    REQUIRE_FALSE(result);
    CHECK(result.error().code == provision::errc::integrity);
    CHECK(result.error().message.find("expected " + always_plan.sha256) != std::string::npos);
    CHECK(result.error().message.find("got " + provision::detail::sha256_hex(*bad)) != std::string::npos);
    CHECK(server->bytes_sent() - before == 2 * bad->size());                              // exactly one fresh download
    CHECK(files_under(dir.path()) == std::vector<std::string>{"Lora/once.safetensors"});  // no .part, no state
}

TEST_CASE("engine: the install record makes a re-run free; a changed file or source is replaced") {
    auto body = std::make_shared<const std::string>(test_bytes(300000, 25));
    auto changed = std::make_shared<const std::string>(test_bytes(200000, 26));
    auto server = LoopbackServer::https();
    server->server().Get("/rec.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, body);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    auto options = fast_options(2);
    options.registry = std::make_shared<provision::InstallRegistry>(dir / "ws/.provision/installed.json");
    Downloader downloader{http, options};
    auto plan = plan_for(server->url("/rec.safetensors"), dir / "Lora",
                         "rec.safetensors");  // no digest: only the record can vouch
    plan.identity = "url:" + plan.url.redacted();
    auto first = downloader.download(plan);
    REQUIRE(first);
    CHECK_FALSE(first->already_present);
    auto target = dir / "Lora/rec.safetensors";
    auto record = options.registry->find(target);
    REQUIRE(record);
    CHECK(record->sha256 == provision::detail::sha256_hex(*body));
    CHECK(record->identity == plan.identity);
    CHECK(record->stamp.size == body->size());
    auto json = provision_test::read_whole_file(dir / "ws/.provision/installed.json");
    CHECK(json.find("\"provision-installed\"") != std::string::npos);

    // A re-run: a stat, no request, no byte read.
    auto requests = server->requests().size();
    auto again = Downloader{http, options}.download(plan);
    REQUIRE(again);
    CHECK(again->already_present);
    CHECK(again->sha256 == record->sha256);
    CHECK(server->requests().size() == requests);

    // The record is shared through the file: another registry object sees it.
    auto other_options = options;
    other_options.registry = std::make_shared<provision::InstallRegistry>(dir / "ws/.provision/installed.json");
    auto check = Downloader{http, other_options}.check(plan);
    CHECK(check.present);

    // Corrupted in place keeping size and mtime: only --verify notices.
    {
        struct stat info {};
        REQUIRE(::stat(target.c_str(), &info) == 0);
        int fd = ::open(target.c_str(), O_WRONLY);
        REQUIRE(::pwrite(fd, "XXXX", 4, 1000) == 4);
        ::close(fd);
        timespec times[2] = {info.st_atim, info.st_mtim};
        REQUIRE(::utimensat(AT_FDCWD, target.c_str(), times, 0) == 0);
    }
    CHECK(Downloader{http, options}.check(plan).present);
    auto verify_options = options;
    verify_options.verify = true;
    auto verified = Downloader{http, verify_options}.download(plan);
    REQUIRE(verified);
    CHECK_FALSE(verified->already_present);
    CHECK(provision_test::read_whole_file(target) == *body);
    CHECK(server->requests().size() > requests);

    // A file touched since it was recorded is fetched again.
    requests = server->requests().size();
    std::filesystem::last_write_time(target, std::filesystem::last_write_time(target) + std::chrono::seconds(5));
    auto touched = Downloader{http, options}.download(plan);
    REQUIRE(touched);
    CHECK_FALSE(touched->already_present);
    CHECK(server->requests().size() > requests);

    // The same bytes under a new identity (a new commit that did not touch
    // the file) are not fetched again; the record follows the new identity.
    requests = server->requests().size();
    auto same_bytes = plan;
    same_bytes.identity = "hf:model/acme/x@newcommit:rec.safetensors";
    same_bytes.sha256 = provision::detail::sha256_hex(*body);
    auto kept = Downloader{http, options}.download(same_bytes);
    REQUIRE(kept);
    CHECK(kept->already_present);
    CHECK(server->requests().size() == requests);
    CHECK(options.registry->find(target)->identity == same_bytes.identity);

    // A changed source (another identity) replaces the file atomically.
    server->server().Get("/rec-v2.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, changed);
    });
    auto plan2 = plan_for(server->url("/rec-v2.safetensors"), dir / "Lora", "rec.safetensors");
    plan2.identity = "url:" + plan2.url.redacted();
    auto replaced = Downloader{http, options}.download(plan2);
    REQUIRE(replaced);
    CHECK_FALSE(replaced->already_present);
    CHECK(provision_test::read_whole_file(target) == *changed);
    CHECK(options.registry->find(target)->identity == plan2.identity);
    CHECK(files_under(dir / "Lora") == std::vector<std::string>{"rec.safetensors"});
}

TEST_CASE("engine: a target locked elsewhere waits, and a holder in this very process is not called another process") {
    auto body = std::make_shared<const std::string>(test_bytes(100000, 27));
    auto server = LoopbackServer::https();
    server->server().Get("/locked.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, body);
    });
    TempDir dir;
    std::filesystem::create_directories(dir / "Lora");
    long holder = 0;
    auto held = provision::detail::FileLock::try_acquire(dir / "Lora/locked.safetensors.lock", holder);
    REQUIRE(held);
    REQUIRE(held->held());
    HttpClient http{trusting_options()};
    EventLog log;
    std::atomic<bool> waiting{false};
    log.also = [&](const provision::Event& event) {
        if (event.kind == provision::EventKind::message && event.message.find("waiting") != std::string::npos)
            waiting = true;
    };
    auto options = fast_options(2);
    options.on_event = log.handler();
    Downloader downloader{http, options};
    auto plan = plan_for(server->url("/locked.safetensors"), dir / "Lora", "locked.safetensors");
    std::optional<provision::Result<provision::InstalledFile>> result;
    std::thread worker([&] { result = downloader.download(plan); });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!waiting && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(waiting.load());
    CHECK(server->requests().empty());  // nothing is fetched while someone else holds the file
    // The holder is this very process (the test took the lock itself): the
    // message must not call it another provision process.
    CHECK(log.any(provision::EventKind::message, "being downloaded by another entry of this run"));
    CHECK_FALSE(log.any(provision::EventKind::message, "another provision process"));
    held->release();
    worker.join();
    REQUIRE(result);
    REQUIRE(*result);
    CHECK(provision_test::read_whole_file(dir / "Lora/locked.safetensors") == *body);
    CHECK_FALSE(std::filesystem::exists(dir / "Lora/locked.safetensors.lock"));
}

TEST_CASE("engine: cancelling stops promptly during a backoff and during a stall") {
    auto body = std::make_shared<const std::string>(test_bytes(1 << 20, 28));
    auto server = LoopbackServer::https();
    server->server().Get("/busy.bin", [](const httplib::Request&, httplib::Response& res) {
        res.status = 503;
        res.set_header("Retry-After", "60");
    });
    server->server().Get("/silent.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        provision_test::ServeOptions options;
        options.stall_at = 100000;
        options.stall_for = std::chrono::milliseconds(1500);
        server->serve_bytes(res, req, body, options);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    for (const char* path : {"/busy.bin", "/silent.safetensors"}) {
        CAPTURE(path);
        std::atomic<bool> cancel{false};
        auto options = fast_options(1);
        options.stall_timeout = std::chrono::seconds(60);  // only the cancel can end this
        options.cancel = &cancel;
        Downloader downloader{http, options};
        // The stalled download is cancelled once its first bytes are on disk
        // with a resume state (a fixed 300 ms was too short under TSan on a
        // busy machine); promptness is measured from the cancel.
        const bool wait_for_state = std::string(path) == "/silent.safetensors";
        std::atomic<std::int64_t> cancelled_at{0};
        std::thread canceller([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
            while (wait_for_state && !std::filesystem::exists(dir / "VAE/silent.safetensors.part.state") &&
                   std::chrono::steady_clock::now() < deadline)
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            cancelled_at = std::chrono::steady_clock::now().time_since_epoch().count();
            cancel = true;
        });
        auto result = downloader.download(plan_for(server->url(path), dir / "VAE"));
        auto ended = std::chrono::steady_clock::now();
        canceller.join();
        REQUIRE_FALSE(result);
        CHECK(result.error().code == provision::errc::cancelled);
        auto took =
            ended - std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(cancelled_at.load()));
        CHECK(took < std::chrono::seconds(5));  // not the 60 s Retry-After or stall timeout
    }
    // The stalled download had bytes: its .part and state stay for the next run.
    CHECK(std::filesystem::exists(dir / "VAE/silent.safetensors.part"));
    CHECK(std::filesystem::exists(dir / "VAE/silent.safetensors.part.state"));
    CHECK_FALSE(std::filesystem::exists(dir / "VAE/silent.safetensors"));
}

TEST_CASE("engine: the global connection cap holds over several files") {
    auto body = std::make_shared<const std::string>(test_bytes(2 << 20, 29));
    auto server = LoopbackServer::https();
    server->server().Get(R"(/capped/(\d)\.bin)", [&](const httplib::Request& req, httplib::Response& res) {
        provision_test::ServeOptions options;
        options.bytes_per_second = 8 << 20;
        server->serve_bytes(res, req, body, options);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    auto options = fast_options(4);
    options.min_segment_size = 512 * 1024;  // pieces too small to split: no connection is cut short
    options.connection_budget = std::make_shared<provision::ConnectionBudget>(3);
    Downloader downloader{http, options};
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int i = 0; i < 3; ++i)
        threads.emplace_back([&, i] {
            auto plan = plan_for(server->url("/capped/" + std::to_string(i) + ".bin"), dir / "VAE");
            plan.size = body->size();
            if (downloader.download(plan)) ++ok;
        });
    for (auto& thread : threads) thread.join();
    CHECK(ok.load() == 3);
    CHECK(server->peak_active() <= 3);
    CHECK(options.connection_budget->in_use() == 0);
    for (int i = 0; i < 3; ++i)
        CHECK(provision_test::read_whole_file(dir / ("VAE/" + std::to_string(i) + ".bin")) == *body);
}

TEST_CASE("engine: an idle connection takes over the second half of a slow piece") {
    auto body = std::make_shared<const std::string>(test_bytes(2 << 20, 30));
    const std::uint64_t slow_piece = (2u << 20) - 128 * 1024;  // the last 128 KiB piece
    auto server = LoopbackServer::https();
    server->server().Get("/tail.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        provision_test::ServeOptions options;
        if (req.get_header_value("Range").find("bytes=" + std::to_string(slow_piece) + "-") == 0)
            options.bytes_per_second = 64 * 1024;  // this connection would need 2 s for its piece
        server->serve_bytes(res, req, body, options);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    Downloader downloader{http, fast_options(2)};
    auto plan = plan_for(server->url("/tail.safetensors"), dir / "Lora", "tail.safetensors");
    plan.size = body->size();
    plan.sha256 = provision::detail::sha256_hex(*body);
    auto installed = downloader.download(plan);
    REQUIRE(installed);
    CHECK(provision_test::read_whole_file(dir / "Lora/tail.safetensors") == *body);
    bool taken_over = false;
    for (const auto& request : server->requests()) {
        auto range = request.header("Range");
        auto begin = range.empty() ? 0 : std::stoull(range.substr(6));
        if (begin > slow_piece) taken_over = true;  // a request starting inside the slow piece
    }
    CHECK(taken_over);
}

}  // namespace suite_downloader
