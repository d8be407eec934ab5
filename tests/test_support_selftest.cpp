// SPDX-License-Identifier: MIT
// provision tests: proves the test fixtures themselves behave, using a plain
// cpp-httplib client, so a failure elsewhere can be trusted to be ours.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>

#include "support/loopback_server.hpp"
#include "support/run_process.hpp"
#include "support/test_ca.hpp"

namespace suite_support_selftest {  // apart from the suites compiled with it (tests/meson.build)

using provision_test::LoopbackServer;
using provision_test::test_ca;

namespace {

std::unique_ptr<httplib::SSLClient> trusting_client(const LoopbackServer& server,
                                                    const std::string& host = "127.0.0.1") {
    auto client = std::make_unique<httplib::SSLClient>(host, server.port());
    client->enable_server_certificate_verification(true);
    client->set_ca_cert_path(test_ca().ca_cert_path);
    client->set_connection_timeout(5);
    client->set_read_timeout(5);
    return client;
}

std::string pattern_body(std::size_t size) {
    std::string body(size, '\0');
    for (std::size_t i = 0; i < size; ++i) body[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
    return body;
}

}  // namespace

TEST_CASE("support: TLS verifies against the test CA and only against it") {
    auto server = LoopbackServer::https();
    server->server().Get("/hello",
                         [](const httplib::Request&, httplib::Response& res) { res.set_content("hi", "text/plain"); });
    CHECK(server->url("/hello") == "https://127.0.0.1:" + std::to_string(server->port()) + "/hello");

    SUBCASE("trusting the test CA, by IP and by the name localhost") {
        for (const std::string host : {"127.0.0.1", "localhost"}) {
            CAPTURE(host);
            auto client = trusting_client(*server, host);
            auto result = client->Get("/hello");
            REQUIRE(result);
            CHECK(result->status == 200);
            CHECK(result->body == "hi");
        }
        CHECK(server->count("/hello") == 2);
    }
    SUBCASE("without the test CA the system store rejects it") {
        httplib::SSLClient client("127.0.0.1", server->port());
        client.enable_server_certificate_verification(true);
        auto result = client.Get("/hello");
        CHECK_FALSE(result);
        CHECK(result.error() == httplib::Error::SSLServerVerification);
        CHECK(server->count() == 0);
    }
}

TEST_CASE("support: a real host name routed to the loopback server verifies by that name") {
    auto server = LoopbackServer::https({"huggingface.co"});
    server->server().Get("/ok",
                         [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });
    CHECK(server->url_for("huggingface.co", "/ok") ==
          "https://huggingface.co:" + std::to_string(server->port()) + "/ok");

    auto routed = trusting_client(*server, "huggingface.co");
    routed->set_hostname_addr_map({{"huggingface.co", "127.0.0.1"}});
    auto good = routed->Get("/ok");
    REQUIRE(good);
    CHECK(good->body == "ok");
    CHECK(server->requests().at(0).header("Host").find("huggingface.co") == 0);

    // The same certificate presented to a client that asked for another host.
    auto wrong_host = trusting_client(*server, "127.0.0.1");
    auto bad = wrong_host->Get("/ok");
    CHECK_FALSE(bad);
    CHECK(bad.error() == httplib::Error::SSLServerVerification);
}

TEST_CASE("support: expired and self-signed certificates fail verification") {
    SUBCASE("expired, though signed by the test CA") {
        auto server = LoopbackServer::https({"localhost", "127.0.0.1"}, /*expired=*/true);
        auto result = trusting_client(*server)->Get("/");
        CHECK_FALSE(result);
        CHECK(result.error() == httplib::Error::SSLServerVerification);
    }
    SUBCASE("self-signed") {
        auto server = LoopbackServer::https_with(test_ca().self_signed({"localhost", "127.0.0.1"}));
        auto result = trusting_client(*server)->Get("/");
        CHECK_FALSE(result);
        CHECK(result.error() == httplib::Error::SSLServerVerification);
    }
}

TEST_CASE("support: issued leaves are cached per name list") {
    auto first = test_ca().issue({"a.example", "127.0.0.1"});
    auto again = test_ca().issue({"a.example", "127.0.0.1"});
    auto other = test_ca().issue({"b.example"});
    auto expired = test_ca().issue({"a.example", "127.0.0.1"}, true);
    CHECK(first.cert_path == again.cert_path);
    CHECK(first.cert_path != other.cert_path);
    CHECK(first.cert_path != expired.cert_path);
}

TEST_CASE("support: serve_bytes honours Range and counts what it serves") {
    const std::string body = pattern_body(300000);  // several provider chunks
    auto server = LoopbackServer::http();
    server->server().Get(
        "/blob", [&](const httplib::Request& req, httplib::Response& res) { server->serve_bytes(res, req, body); });
    httplib::Client client("127.0.0.1", server->port());
    CHECK(server->url("blob") == "http://127.0.0.1:" + std::to_string(server->port()) + "/blob");

    SUBCASE("whole body") {
        auto result = client.Get("/blob?x=1");
        REQUIRE(result);
        CHECK(result->status == 200);
        CHECK(result->get_header_value("Accept-Ranges") == "bytes");
        CHECK_FALSE(result->has_header("Content-Range"));
        CHECK(result->body == body);
        CHECK(server->bytes_sent() == body.size());
        REQUIRE(server->requests().size() == 1);
        CHECK(server->requests()[0].target == "/blob?x=1");
        CHECK(server->requests()[0].path == "/blob");
        CHECK(server->requests()[0].method == "GET");
    }
    SUBCASE("bytes=a-b") {
        auto result = client.Get("/blob", {{"Range", "bytes=100-199"}});
        REQUIRE(result);
        CHECK(result->status == 206);
        CHECK(result->get_header_value("Content-Range") == "bytes 100-199/300000");
        CHECK(result->body == body.substr(100, 100));
        CHECK(server->bytes_sent() == 100);
        CHECK(server->requests()[0].header("Range") == "bytes=100-199");
    }
    SUBCASE("bytes=a- and an end past the body are clamped") {
        auto open = client.Get("/blob", {{"Range", "bytes=299000-"}});
        REQUIRE(open);
        CHECK(open->status == 206);
        CHECK(open->get_header_value("Content-Range") == "bytes 299000-299999/300000");
        CHECK(open->body == body.substr(299000));
        auto past = client.Get("/blob", {{"Range", "bytes=299990-400000"}});
        REQUIRE(past);
        CHECK(past->status == 206);
        CHECK(past->body == body.substr(299990));
        CHECK(server->bytes_sent() == 1000 + 10);
    }
    SUBCASE("a range starting past the end is 416") {
        auto result = client.Get("/blob", {{"Range", "bytes=300000-"}});
        REQUIRE(result);
        CHECK(result->status == 416);
        CHECK(result->get_header_value("Content-Range") == "bytes */300000");
        CHECK(server->bytes_sent() == 0);
    }
    SUBCASE("HEAD sends the length but no body bytes") {
        auto result = client.Head("/blob");
        REQUIRE(result);
        CHECK(result->status == 200);
        CHECK(result->get_header_value("Content-Length") == "300000");
        CHECK(server->bytes_sent() == 0);
        CHECK(server->count("/blob") == 1);
    }
}

TEST_CASE("support: abort_after cuts a transfer mid-way") {
    const std::string body = pattern_body(200000);
    auto server = LoopbackServer::http();
    server->server().Get("/cut", [&](const httplib::Request& req, httplib::Response& res) {
        provision_test::ServeOptions options;
        options.abort_after = 70000;
        server->serve_bytes(res, req, body, options);
    });
    httplib::Client client("127.0.0.1", server->port());
    std::string received;
    auto result = client.Get("/cut", [&](const char* data, std::size_t length) {
        received.append(data, length);
        return true;
    });
    CHECK_FALSE(result);
    CHECK(received.size() == 70000);
    CHECK(received == body.substr(0, 70000));
    CHECK(server->bytes_sent() == 70000);
}

TEST_CASE("support: many servers in one process, each with its own log") {
    auto a = LoopbackServer::http();
    auto b = LoopbackServer::https();
    CHECK(a->port() != b->port());
    a->server().Get("/a", [](const httplib::Request&, httplib::Response& res) { res.set_content("A", "text/plain"); });
    httplib::Client client(a->origin());
    REQUIRE(client.Get("/a"));
    CHECK(a->count() == 1);
    CHECK(b->count() == 0);
}

// The CLI-driven suites trust run_process to notice a sanitizer report in the
// child: ASan's exit status (1) is one a test may expect from provision. The
// first case must fail (should_fail turns that into a pass); the second shows
// the environment the check relies on reaches the child.
TEST_CASE("support: run_process fails the test when the child reports a sanitizer error" * doctest::should_fail()) {
    auto result = provision_test::run_process(
        {"/bin/sh", "-c", "echo 'SUMMARY: AddressSanitizer: heap-use-after-free x.cpp:1 in f' >&2; exit 1"});
    CHECK(result.exit_code == 1);  // what a test of a failing run would accept
}

TEST_CASE("support: run_process passes the sanitizer settings on to the child") {
    // The runtime read its options at start-up: changing them here affects children only.
    const char* before = std::getenv("TSAN_OPTIONS");
    const std::string saved = before ? before : "";
    ::setenv("TSAN_OPTIONS", "selftest=1", 1);
    auto result = provision_test::run_process({"/bin/sh", "-c", "printf %s \"$TSAN_OPTIONS\""});
    auto overridden =
        provision_test::run_process({"/bin/sh", "-c", "printf %s \"$TSAN_OPTIONS\""}, {{"TSAN_OPTIONS", "mine"}});
    if (before) ::setenv("TSAN_OPTIONS", saved.c_str(), 1);
    else ::unsetenv("TSAN_OPTIONS");
    CHECK(result.out == "selftest=1");
    CHECK(overridden.out == "mine");
}

TEST_CASE("support: a spawned child starts with default signals, so writing to a closed pipe kills it") {
    // This test program ignores SIGPIPE (cpp-httplib's servers do that for
    // the whole process) and blocks nothing; ignore it here explicitly and
    // block SIGTERM too, so the test holds whatever ran before it.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction before {};
    sigaction(SIGPIPE, &ignore, &before);
    sigset_t term, mask_before;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, &mask_before);

    int pipe_ends[2];
    REQUIRE(::pipe(pipe_ends) == 0);
    ::close(pipe_ends[0]);  // nobody will ever read: the child's first write raises SIGPIPE
    int err = ::open("/dev/null", O_WRONLY);
    pid_t writer = provision_test::spawn_process({"/bin/echo", "hello"}, {}, pipe_ends[1], err);
    ::close(pipe_ends[1]);
    ::close(err);
    int status = 0;
    ::waitpid(writer, &status, 0);
    CHECK(provision_test::signal_of(status) == SIGPIPE);

    // And the mask is empty: a blocked SIGTERM would leave this sleeper alive.
    int out = ::open("/dev/null", O_WRONLY);
    pid_t sleeper = provision_test::spawn_process({"/bin/sleep", "30"}, {}, out, out);
    ::close(out);
    ::kill(sleeper, SIGTERM);
    ::waitpid(sleeper, &status, 0);
    CHECK(provision_test::signal_of(status) == SIGTERM);

    pthread_sigmask(SIG_SETMASK, &mask_before, nullptr);
    sigaction(SIGPIPE, &before, nullptr);
}

}  // namespace suite_support_selftest
