// SPDX-License-Identifier: MIT
#include "common.hpp"
#include "support/engine_fixtures.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"  // test_bytes

#include <condition_variable>
#include <mutex>
#include <thread>

namespace suite_http {  // apart from the suites compiled with it (tests/meson.build)

using provision::ConnectTo;
using provision::HttpClient;
using provision::HttpOptions;
using provision::HttpRequest;
using provision_test::LoopbackServer;
using provision_test::test_ca;
using provision_test::trusting_options;

namespace {

ConnectTo route(const std::string& host, const LoopbackServer& server) {
    return ConnectTo{host, std::nullopt, "127.0.0.1", static_cast<std::uint16_t>(server.port())};
}

HttpRequest get(const std::string& url) {
    HttpRequest request;
    request.url = provision::parse_url(url).value();
    return request;
}

}  // namespace

TEST_CASE("http: TLS verification is on: fails without the CA, passes with --cacert") {
    auto server = LoopbackServer::https();
    server->server().Get("/ok",
                         [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });

    HttpClient untrusting{HttpOptions{}};
    auto refused = untrusting.fetch(get(server->url("/ok")));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == provision::errc::unsafe);  // refused, not retried
    CHECK(refused.error().message.find("not trusted") != std::string::npos);
    CHECK(refused.error().message.find("--cacert") != std::string::npos);

    HttpClient trusting{trusting_options()};
    auto accepted = trusting.fetch(get(server->url("/ok")));
    REQUIRE(accepted);
    CHECK(accepted->status == 200);
    CHECK(accepted->body == "ok");
}

TEST_CASE("http: a certificate for another host is refused even with the right CA") {
    auto server = LoopbackServer::https({"other.test"});
    server->server().Get("/x",
                         [](const httplib::Request&, httplib::Response& res) { res.set_content("x", "text/plain"); });
    auto options = trusting_options();
    options.connect_to.push_back(route("hub.test", *server));
    HttpClient client{options};
    auto result = client.fetch(get(server->url_for("hub.test", "/x")));
    REQUIRE_FALSE(result);
    CHECK(result.error().code == provision::errc::unsafe);
    CHECK(result.error().message.find("is for another host name, not hub.test") != std::string::npos);
}

TEST_CASE("http: --connect-to keeps the original host for TLS names and the Host header") {
    auto server = LoopbackServer::https({"hub.test"});
    server->server().Get("/x", [](const httplib::Request& req, httplib::Response& res) {
        res.set_content(req.get_header_value("Host") + "|" + req.get_header_value("User-Agent"), "text/plain");
    });
    auto options = trusting_options();
    options.connect_to.push_back(route("hub.test", *server));
    HttpClient client{options};
    auto result = client.fetch(get(server->url_for("hub.test", "/x")));
    REQUIRE(result);
    CHECK(result->body == "hub.test:" + std::to_string(server->port()) + "|provision/" PROVISION_VERSION_STRING);
}

TEST_CASE("http: --connect-to rules follow curl's semantics") {
    auto rule = ConnectTo::parse("huggingface.co:443:127.0.0.1:8443").value();
    CHECK(rule.matches(provision::parse_url("https://huggingface.co/x").value()));
    CHECK_FALSE(rule.matches(provision::parse_url("http://huggingface.co/x").value()));  // port 80
    CHECK_FALSE(rule.matches(provision::parse_url("https://civitai.com/x").value()));
    auto any_host = ConnectTo::parse(":443:127.0.0.1:").value();
    CHECK(any_host.matches(provision::parse_url("https://civitai.com/x").value()));
    CHECK_FALSE(any_host.to_port);
    auto any_port = ConnectTo::parse("h.test::[::1]:9").value();
    CHECK(any_port.matches(provision::parse_url("http://h.test:1234/").value()));
    CHECK(any_port.to_host == "::1");
    for (const char* bad : {"a:b:c", "h:port:x:1", "h:1:x:70000", "h:1:x:1:extra"}) {
        CAPTURE(bad);
        auto parsed = ConnectTo::parse(bad);
        REQUIRE_FALSE(parsed);
        CHECK(parsed.error().message.find("HOST1:PORT1:HOST2:PORT2") != std::string::npos);
    }
}

TEST_CASE("http: relative redirects are resolved against the request URL") {
    auto server = LoopbackServer::https();
    server->server().Get("/dir/start", [](const httplib::Request&, httplib::Response& res) {
        res.status = 302;
        res.set_header("Location", "next?x=1");
    });
    server->server().Get("/dir/next", [](const httplib::Request& req, httplib::Response& res) {
        res.set_content("reached " + req.get_param_value("x"), "text/plain");
    });
    HttpClient client{trusting_options()};
    auto result = client.fetch(get(server->url("/dir/start")));
    REQUIRE(result);
    CHECK(result->status == 200);
    CHECK(result->body == "reached 1");
    REQUIRE(result->redirects.size() == 1);
    CHECK(result->url.path == "/dir/next");
}

TEST_CASE("http: credentials and user headers never follow a redirect to another host") {
    std::string cdn_url;  // each read by the other server's handler: both outlive the servers
    std::string hub_back;
    auto cdn = LoopbackServer::https({"cdn.test"});
    cdn_url = cdn->url_for("cdn.test", "/blob");
    auto hub = LoopbackServer::https({"hub.test"});
    hub_back = hub->url_for("hub.test", "/back");
    hub->server().Get("/file", [&](const httplib::Request&, httplib::Response& res) {
        res.status = 302;
        res.set_header("Location", cdn_url);
    });
    cdn->server().Get("/blob", [&](const httplib::Request&, httplib::Response& res) {
        res.status = 307;
        res.set_header("Location", hub_back);  // and back to the original host
    });
    hub->server().Get("/back",
                      [](const httplib::Request&, httplib::Response& res) { res.set_content("done", "text/plain"); });

    auto options = trusting_options();
    options.connect_to = {route("hub.test", *hub), route("cdn.test", *cdn)};
    HttpClient client{options};
    auto request = get(hub->url_for("hub.test", "/file"));
    request.scoped_headers = {{"Authorization", "Bearer hf_secret"}, {"X-User", "mine"}};
    request.headers = {{"Range", "bytes=0-"}};
    auto result = client.fetch(request);
    REQUIRE(result);
    CHECK(result->body == "done");

    auto hub_requests = hub->requests();
    auto cdn_requests = cdn->requests();
    REQUIRE(hub_requests.size() == 2);
    REQUIRE(cdn_requests.size() == 1);
    CHECK(hub_requests[0].header("Authorization") == "Bearer hf_secret");
    CHECK(hub_requests[0].header("X-User") == "mine");
    CHECK(cdn_requests[0].header("Authorization").empty());
    CHECK(cdn_requests[0].header("X-User").empty());
    CHECK(cdn_requests[0].header("Range") == "bytes=0-");  // unscoped headers do travel
    // once dropped, never re-sent, even back on the original host
    CHECK(hub_requests[1].header("Authorization").empty());
}

TEST_CASE("http: a redirect from https to http is refused") {
    auto plain = LoopbackServer::http();
    plain->server().Get("/x",
                        [](const httplib::Request&, httplib::Response& res) { res.set_content("x", "text/plain"); });
    std::string target = plain->url("/x");
    auto secure = LoopbackServer::https();
    secure->server().Get("/start", [&](const httplib::Request&, httplib::Response& res) {
        res.status = 301;
        res.set_header("Location", target);
    });
    HttpClient client{trusting_options()};
    auto result = client.fetch(get(secure->url("/start")));
    REQUIRE_FALSE(result);
    CHECK(result.error().code == provision::errc::unsafe);
    CHECK(result.error().message.find("https to http") != std::string::npos);
    CHECK(plain->requests().empty());
}

TEST_CASE("http: at most 10 redirects are followed") {
    auto server = LoopbackServer::https();
    server->server().Get(R"(/hop/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
        res.status = 302;
        res.set_header("Location", "/hop/" + std::to_string(std::stoi(req.matches[1]) + 1));
    });
    HttpClient client{trusting_options()};
    auto result = client.fetch(get(server->url("/hop/0")));
    REQUIRE_FALSE(result);
    CHECK(result.error().message.find("too many redirects (more than 10)") != std::string::npos);
    CHECK(server->requests().size() == 11);

    server->server().Get("/loop", [](const httplib::Request&, httplib::Response& res) {
        res.status = 308;
        res.set_header("Location", "/loop");
    });
    auto loop = client.fetch(get(server->url("/loop")));
    REQUIRE_FALSE(loop);
    CHECK(loop.error().message.find("too many redirects") != std::string::npos);
}

TEST_CASE("http: relative_only stops at an absolute redirect and returns it") {
    auto server = LoopbackServer::https();
    server->server().Get("/old", [](const httplib::Request&, httplib::Response& res) {
        res.status = 307;
        res.set_header("Location", "/new");
    });
    server->server().Get("/new", [](const httplib::Request&, httplib::Response& res) {
        res.status = 302;
        res.set_header("Location", "https://cdn.example/signed?X-Amz-Signature=abc");
    });
    HttpClient client{trusting_options()};
    auto request = get(server->url("/old"));
    request.method = "HEAD";
    request.redirects = provision::RedirectPolicy::relative_only;
    auto result = client.fetch(request);
    REQUIRE(result);
    CHECK(result->status == 302);
    CHECK(result->url.path == "/new");
    CHECK(result->header("location") == "https://cdn.example/signed?X-Amz-Signature=abc");
}

TEST_CASE("http: a server that goes quiet hits the idle timeout, not a hang") {
    // The server stays silent until the client has given up (or 10 s pass),
    // so the bound below is far from both the 300 ms timeout and the stall:
    // a sanitizer build's slow handshake cannot make it fail, a client that
    // waits for the answer always does.
    std::mutex mutex;
    std::condition_variable released;
    bool client_done = false;
    auto server = LoopbackServer::https();
    server->server().Get("/slow", [&](const httplib::Request&, httplib::Response& res) {
        std::unique_lock<std::mutex> lock(mutex);
        released.wait_for(lock, std::chrono::seconds(10), [&] { return client_done; });
        res.set_content("late", "text/plain");
    });
    auto options = trusting_options();
    options.idle_timeout = std::chrono::milliseconds(300);
    HttpClient client{options};
    auto started = std::chrono::steady_clock::now();
    auto result = client.fetch(get(server->url("/slow")));
    auto took = std::chrono::steady_clock::now() - started;
    {
        std::lock_guard<std::mutex> lock(mutex);
        client_done = true;
    }
    released.notify_all();
    REQUIRE_FALSE(result);
    CHECK(result.error().message.find("no data for") != std::string::npos);
    CHECK(took < std::chrono::seconds(5));
}

TEST_CASE("http: connection refused is explained") {
    std::uint16_t closed_port = 0;
    {
        auto server = LoopbackServer::http();
        closed_port = static_cast<std::uint16_t>(server->port());
    }
    HttpClient client{HttpOptions{}};
    auto result = client.fetch(get("http://127.0.0.1:" + std::to_string(closed_port) + "/x"));
    REQUIRE_FALSE(result);
    CHECK(result.error().message.find("could not connect to 127.0.0.1:" + std::to_string(closed_port)) !=
          std::string::npos);
}

TEST_CASE("http: a signed storage link in Location reaches the storage host with its escapes intact") {
    // cpp-httplib 0.11 percent-decodes header values; the client re-encodes
    // Location so the signature the storage host checks still matches. These
    // are the escapes real presigned R2/S3/B2 links carry.
    const std::string signed_query =
        "response-content-disposition=attachment%3B%20filename%3D%22add%20detail.safetensors%22"
        "&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20240101%2Fauto%2Fs3%2Faws4_request"
        "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=9f86d081884c7d65";
    std::string target = "/models/add%20detail.safetensors?" + signed_query;
    auto storage = LoopbackServer::https({"storage.test"});
    std::string location = storage->url_for("storage.test", target);
    auto api = LoopbackServer::https({"api.test"});
    api->server().Get("/download", [&](const httplib::Request&, httplib::Response& res) {
        res.status = 307;
        res.set_header("Location", location);
    });
    storage->server().Get(R"(/models/.*)", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("model bytes", "application/octet-stream");
    });
    auto options = trusting_options();
    options.connect_to = {route("api.test", *api), route("storage.test", *storage)};
    HttpClient client{options};
    auto result = client.fetch(get(api->url_for("api.test", "/download")));
    REQUIRE(result);
    CHECK(result->body == "model bytes");
    auto seen = storage->requests();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].target == target);
}

TEST_CASE("http: the own reader keeps a connection alive and replaces one the server has closed") {
    const std::string body = provision_test::test_bytes(300 * 1024, 7);
    auto server = LoopbackServer::https();
    server->server().Get("/blob", [&](const httplib::Request&, httplib::Response& res) {
        res.set_content(body, "application/octet-stream");
    });
    HttpClient client{trusting_options()};
    for (int i = 0; i < 3; ++i) {
        auto result = client.fetch(get(server->url("/blob")));
        REQUIRE(result);
        CHECK(result->body == body);
    }
    auto seen = server->requests();
    REQUIRE(seen.size() == 3);
    CHECK(seen[1].remote_port == seen[0].remote_port);
    CHECK(seen[2].remote_port == seen[0].remote_port);

    // The test server drops connections idle for a second; the pooled one is
    // then dead, and the request goes out again on a new connection.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    auto after_idle = client.fetch(get(server->url("/blob")));
    REQUIRE_MESSAGE(after_idle, (after_idle ? std::string() : after_idle.error().message));
    CHECK(after_idle->body == body);
    seen = server->requests();
    REQUIRE(seen.size() == 4);
    CHECK(seen[3].remote_port != seen[0].remote_port);
}

TEST_CASE("http: the own reader understands every way HTTP/1.1 frames a body") {
    using provision_test::RawLoopbackServer;
    RawLoopbackServer server([](int fd, const std::string& head) {
        std::string target = head.substr(4, head.find(' ', 4) - 4);
        std::string answer;
        if (target == "/chunked") {
            answer =
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                "5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\n\r\n";
        } else if (target == "/until-close") {
            answer = "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\nbytes until the end";
        } else if (target == "/interim") {
            answer =
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfinal";
        } else if (target == "/folded") {
            answer =
                "HTTP/1.1 200 OK\r\nX-Long: first\r\n  second\r\n \t \r\nContent-Length: 2\r\nConnection: "
                "close\r\n\r\nok";
        } else if (target == "/not-http") {
            answer = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
        } else if (target == "/two-lengths") {
            answer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
        } else if (target == "/short") {
            answer = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this";
        } else if (target == "/chunk-cut") {
            answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly";
        }
        RawLoopbackServer::send_all(fd, answer);
    });
    HttpClient client{HttpOptions{}};
    auto fetch = [&](const std::string& path) { return client.fetch(get(server.url(path))); };

    auto chunked = fetch("/chunked");
    REQUIRE(chunked);
    CHECK(chunked->body == "hello world");
    auto until_close = fetch("/until-close");
    REQUIRE(until_close);
    CHECK(until_close->body == "bytes until the end");
    auto interim = fetch("/interim");
    REQUIRE(interim);
    CHECK(interim->status == 200);
    CHECK(interim->body == "final");
    auto folded = fetch("/folded");
    REQUIRE(folded);
    CHECK(folded->header("x-long") == "first second");
    CHECK(folded->body == "ok");

    for (const char* path : {"/not-http", "/two-lengths"}) {
        CAPTURE(path);
        auto refused = fetch(path);
        REQUIRE_FALSE(refused);
        CHECK(refused.error().message.find("is not valid HTTP/1.1") != std::string::npos);
    }
    for (const char* path : {"/short", "/chunk-cut"}) {
        CAPTURE(path);
        auto cut = fetch(path);
        REQUIRE_FALSE(cut);
        CHECK(cut.error().code == provision::errc::network);
        CHECK(cut.error().message.find("broke while reading") != std::string::npos);
    }
}

}  // namespace suite_http
