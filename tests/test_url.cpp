// SPDX-License-Identifier: MIT
#include "common.hpp"

namespace suite_url {  // apart from the suites compiled with it (tests/meson.build)

using provision::parse_url;
using provision::resolve_reference;

TEST_CASE("url: parses scheme, host, port, path and query") {
    auto url = parse_url("HTTPS://Example.COM:8443/a/b%20c.safetensors?x=1#frag");
    REQUIRE(url);
    CHECK(url->scheme == "https");
    CHECK(url->host == "example.com");
    CHECK(url->port == 8443);
    CHECK(url->path == "/a/b%20c.safetensors");
    CHECK(url->query == "x=1");
    CHECK(url->fragment == "frag");
    CHECK(url->authority() == "example.com:8443");
    CHECK(url->origin() == "https://example.com:8443");
    CHECK(url->target() == "/a/b%20c.safetensors?x=1");
    CHECK(url->last_segment() == "b c.safetensors");
}

TEST_CASE("url: default ports are implied and left out of the authority") {
    CHECK(parse_url("https://h/x")->port == 443);
    CHECK(parse_url("http://h/x")->port == 80);
    CHECK(parse_url("https://h:443/x")->authority() == "h");
    CHECK(parse_url("http://h")->path == "/");
    CHECK(parse_url("http://[::1]:8080/x")->host == "::1");
    CHECK(parse_url("http://[::1]:8080/x")->authority() == "[::1]:8080");
}

TEST_CASE("url: rejects what is not an http(s) URL, saying why") {
    CHECK(parse_url("ftp://h/x").error().message.find("scheme \"ftp\"") != std::string::npos);
    CHECK(parse_url("file:///etc/passwd").error().message.find("not supported") != std::string::npos);
    CHECK(parse_url("example.com/x").error().message.find("https://") != std::string::npos);
    CHECK(parse_url("https:///x").error().message.find("no host") != std::string::npos);
    CHECK(parse_url("https://h:99999/x").error().message.find("out of range") != std::string::npos);
    CHECK(parse_url("https://h:abc/x").error().message.find("not a number") != std::string::npos);
    CHECK(parse_url("https://h/a b").error().message.find("space") != std::string::npos);
    CHECK(parse_url(" https://h/x").error().message.find("spaces") != std::string::npos);
    CHECK_FALSE(parse_url("https://ho st/x"));
}

TEST_CASE("url: relative references resolve as RFC 3986 says") {
    auto base = parse_url("https://hub.example/org/repo/resolve/main/file.bin?x=1").value();
    CHECK(resolve_reference(base, "/api/renamed/file.bin")->str() == "https://hub.example/api/renamed/file.bin");
    CHECK(resolve_reference(base, "other.bin")->str() == "https://hub.example/org/repo/resolve/main/other.bin");
    CHECK(resolve_reference(base, "../../x")->str() == "https://hub.example/org/repo/x");
    CHECK(resolve_reference(base, "?y=2")->str() == "https://hub.example/org/repo/resolve/main/file.bin?y=2");
    CHECK(resolve_reference(base, "//cdn.example/blob")->str() == "https://cdn.example/blob");
    CHECK(resolve_reference(base, "http://plain.example/z")->str() == "http://plain.example/z");
    CHECK(resolve_reference(base, "/a/./b/../c")->path == "/a/c");
}

TEST_CASE("url: redaction hides user-info and every query value whose parameter is not known to be harmless") {
    auto url = parse_url("https://user:pw@h.example/f?token=abc&keep=1&X-Amz-Signature=s&sig=9&download").value();
    std::string shown = url.redacted();
    CHECK(shown == "https://h.example/f?token=***&keep=***&X-Amz-Signature=***&sig=***&download");
    // Names nobody listed as secret are hidden too: Google Cloud's signed URLs, common token names.
    auto signed_url = parse_url(
                          "https://storage.googleapis.com/b/m.safetensors?X-Goog-Algorithm=GOOG4-RSA-SHA256"
                          "&X-Goog-Credential=svc%40proj.iam&X-Goog-Signature=0a1b2c&hf_token=hf_abcdef")
                          .value();
    CHECK(signed_url.redacted() ==
          "https://storage.googleapis.com/b/m.safetensors?X-Goog-Algorithm=***"
          "&X-Goog-Credential=***&X-Goog-Signature=***&hf_token=***");
    // What identifies a link stays readable: CivitAI's version, Drive's file id, formats.
    CHECK(parse_url("https://civitai.com/api/download/models/12345?type=Model&format=SafeTensor&token=t0k3n")
              ->redacted() == "https://civitai.com/api/download/models/12345?type=Model&format=SafeTensor&token=***");
    CHECK(parse_url("https://drive.google.com/uc?export=download&id=1AbC&confirm=t&uuid=9f")->redacted() ==
          "https://drive.google.com/uc?export=download&id=1AbC&confirm=***&uuid=***");
    CHECK(shown.find("pw") == std::string::npos);
    CHECK(url.str().find("user:pw@") != std::string::npos);  // the real URL keeps it
    CHECK(provision::redact_url("not a url") == "not a url");
}

TEST_CASE("url: percent coding round-trips and encodes path segments separately") {
    CHECK(provision::percent_encode("refs/pr/1") == "refs%2Fpr%2F1");
    CHECK(provision::percent_encode_path("sub dir/a+b.safetensors") == "sub%20dir/a%2Bb.safetensors");
    CHECK(provision::percent_decode("a%20b%2Fc%zz%") == "a b/c%zz%");
    CHECK(provision::percent_decode(provision::percent_encode("ünï cødé/x")) == "ünï cødé/x");
}

TEST_CASE("url: every URL inside free text is shown as redacted() shows it") {
    using provision::detail::SecretRedactor;
    CHECK(SecretRedactor::redact_patterns("GET https://cdn.example/m?X-Goog-Signature=abc123&id=7 answered 403") ==
          "GET https://cdn.example/m?X-Goog-Signature=***&id=7 answered 403");
    CHECK(SecretRedactor::redact_patterns("from \"http://u:p@proxy.example:3128/\" failed") ==
          "from \"http://proxy.example:3128/\" failed");
    // Not a URL we can parse: nothing after its '?' is kept.
    CHECK(SecretRedactor::redact_patterns("odd https://h.example/%zz?hf_token=abcdef").find("abcdef") ==
          std::string::npos);
    CHECK(SecretRedactor::redact_patterns("no url here, only a://") == "no url here, only a://");
    // The sentence's punctuation after a URL is not part of its last value.
    CHECK(SecretRedactor::redact_patterns("(from https://h.example/t?recursive=true&cursor=abc)") ==
          "(from https://h.example/t?recursive=true&cursor=***)");
}

TEST_CASE("url: a URL that does not parse is never echoed with its password or query") {
    auto bad = parse_url("http://proxyuser:s3cretpass@proxy host:3128/?token=abcdef");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("s3cretpass") == std::string::npos);
    CHECK(bad.error().message.find("abcdef") == std::string::npos);
    CHECK(bad.error().message.find("invalid URL \"http://***@proxy host:3128/?***\"") == 0);
    auto proxy = provision::ProxySettings::from_environment([](const std::string& name) -> std::optional<std::string> {
        if (name == "HTTPS_PROXY") return std::string("http://u:hunter2hunter2@[bad:3128");
        return std::nullopt;
    });
    REQUIRE_FALSE(proxy);
    CHECK(proxy.error().message.find("hunter2") == std::string::npos);
    CHECK(proxy.error().message.find("HTTPS_PROXY") == 0);
}

}  // namespace suite_url
