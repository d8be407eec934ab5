// SPDX-License-Identifier: MIT
#include "common.hpp"
#include "support/forward_proxy.hpp"
#include "support/loopback_server.hpp"

namespace suite_proxy {  // apart from the suites compiled with it (tests/meson.build)

using provision::ProxySettings;
using provision_test::ForwardProxy;
using provision_test::LoopbackServer;

namespace {

provision::EnvLookup env_of(std::map<std::string, std::string> values) {
    return [values](const std::string& name) -> std::optional<std::string> {
        auto found = values.find(name);
        if (found == values.end()) return std::nullopt;
        return found->second;
    };
}

provision::Url url(const std::string& text) { return provision::parse_url(text).value(); }

}  // namespace

TEST_CASE("proxy: variables are read in both cases, lower case first") {
    auto settings =
        ProxySettings::from_environment(env_of({{"HTTPS_PROXY", "http://upper:1"},
                                                {"https_proxy", "http://lower:2"},
                                                {"HTTP_PROXY", "plain.proxy:3128"},
                                                {"NO_PROXY", " localhost, .internal.example ,10.0.0.7,*.x"}}));
    REQUIRE(settings);
    CHECK(settings->https->host == "lower");
    CHECK(settings->http->str() == "http://plain.proxy:3128/");
    CHECK(settings->no_proxy == std::vector<std::string>{"localhost", ".internal.example", "10.0.0.7", "*.x"});
    auto none = ProxySettings::from_environment(env_of({}));
    REQUIRE(none);
    CHECK_FALSE(none->for_url(url("https://huggingface.co/x")));
}

TEST_CASE("proxy: unusable values are errors naming the variable") {
    auto tls_proxy = ProxySettings::from_environment(env_of({{"HTTPS_PROXY", "https://p:443"}}));
    REQUIRE_FALSE(tls_proxy);
    CHECK(tls_proxy.error().message.find("HTTPS_PROXY: only http:// proxies") == 0);
    auto garbage = ProxySettings::from_environment(env_of({{"http_proxy", "http://p:notaport"}}));
    REQUIRE_FALSE(garbage);
    CHECK(garbage.error().message.find("http_proxy: ") == 0);
}

TEST_CASE("proxy: NO_PROXY matches hosts, domain suffixes, ports and *") {
    ProxySettings settings;
    settings.https = url("http://proxy:3128");
    settings.no_proxy = {"example.com", ".corp.test", "10.1.2.3", "mirror.test:8443", "[::1]"};
    CHECK_FALSE(settings.for_url(url("https://example.com/x")));
    CHECK_FALSE(settings.for_url(url("https://cdn.example.com/x")));
    CHECK(settings.for_url(url("https://badexample.com/x")));
    CHECK_FALSE(settings.for_url(url("https://corp.test/x")));
    CHECK_FALSE(settings.for_url(url("https://a.b.corp.test/x")));
    CHECK_FALSE(settings.for_url(url("https://10.1.2.3/x")));
    CHECK_FALSE(settings.for_url(url("https://mirror.test:8443/x")));
    CHECK(settings.for_url(url("https://mirror.test/x")));
    CHECK_FALSE(settings.for_url(url("https://[::1]/x")));
    CHECK(settings.for_url(url("https://huggingface.co/x")));
    CHECK_FALSE(settings.for_url(url("http://huggingface.co/x")));  // no http proxy set
    settings.no_proxy = {"*"};
    CHECK_FALSE(settings.for_url(url("https://huggingface.co/x")));
}

TEST_CASE("proxy: https goes through a CONNECT tunnel with proxy credentials, TLS still verified end to end") {
    auto hub = LoopbackServer::https({"hub.test"});
    hub->server().Get(
        "/file", [](const httplib::Request&, httplib::Response& res) { res.set_content("via tunnel", "text/plain"); });
    std::string target = "hub.test:" + std::to_string(hub->port());
    ForwardProxy proxy({{target, hub->port()}});
    provision::HttpOptions options;
    options.ca_files = {provision_test::test_ca().ca_cert_path};
    options.proxy.https = url("http://user:s3cret@127.0.0.1:" + std::to_string(proxy.port()));
    provision::HttpClient client{options};
    provision::HttpRequest request;
    request.url = url("https://" + target + "/file");
    auto result = client.fetch(request);
    REQUIRE(result);
    CHECK(result->body == "via tunnel");
    auto seen = proxy.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].request_line == "CONNECT " + target + " HTTP/1.1");
    CHECK(seen[0].proxy_authorization == "Basic dXNlcjpzM2NyZXQ=");
    REQUIRE(hub->requests().size() == 1);
    // proxy credentials stay with the proxy: the origin must never see them
    CHECK(hub->requests()[0].header("Proxy-Authorization").find("Basic") == std::string::npos);

    // The tunnel does not weaken TLS: a server certificate for another name is still refused.
    auto impostor = LoopbackServer::https({"other.test"});
    std::string impostor_target = "hub.test:" + std::to_string(impostor->port());
    ForwardProxy bad_proxy({{impostor_target, impostor->port()}});
    options.proxy.https = url("http://user:s3cret@127.0.0.1:" + std::to_string(bad_proxy.port()));
    provision::HttpClient misled{options};
    request.url = url("https://" + impostor_target + "/file");
    auto refused = misled.fetch(request);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message.find("is for another host name") != std::string::npos);
    CHECK(refused.error().message.find("through the proxy 127.0.0.1:") != std::string::npos);
    CHECK(refused.error().message.find("s3cret") == std::string::npos);
}

TEST_CASE("proxy: plain http goes through the proxy in absolute form; NO_PROXY bypasses it") {
    auto plain = LoopbackServer::http();
    plain->server().Get(
        "/f", [](const httplib::Request&, httplib::Response& res) { res.set_content("plain", "text/plain"); });
    std::string target = "mirror.test:" + std::to_string(plain->port());
    ForwardProxy proxy({{target, plain->port()}});
    provision::HttpOptions options;
    options.proxy.http = url(proxy.url());
    options.proxy.https = url(proxy.url());
    provision::HttpClient client{options};
    provision::HttpRequest request;
    request.url = url("http://" + target + "/f");
    auto result = client.fetch(request);
    REQUIRE(result);
    CHECK(result->body == "plain");
    REQUIRE(proxy.seen().size() == 1);
    CHECK(proxy.seen()[0].request_line == "GET http://" + target + "/f HTTP/1.1");

    options.proxy.no_proxy = {"127.0.0.1"};
    provision::HttpClient bypassing{options};
    request.url = url(plain->url("/f"));
    auto direct = bypassing.fetch(request);
    REQUIRE(direct);
    CHECK(direct->body == "plain");
    CHECK(proxy.seen().size() == 1);  // the proxy saw nothing more
}

}  // namespace suite_proxy
