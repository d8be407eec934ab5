// SPDX-License-Identifier: MIT
#include "common.hpp"

namespace suite_file_name {  // apart from the suites compiled with it (tests/meson.build)

using provision::detail::content_disposition_filename;
using provision::detail::join_inside;
using provision::detail::sanitize_file_name;

TEST_CASE("file name: Content-Disposition forms") {
    CHECK(content_disposition_filename("attachment; filename=\"model.safetensors\"") == "model.safetensors");
    CHECK(content_disposition_filename("attachment; filename=model.safetensors") == "model.safetensors");
    CHECK(content_disposition_filename("attachment;filename=\"a \\\"q\\\".bin\"") == "a \"q\".bin");
    CHECK(content_disposition_filename("inline") == std::nullopt);
    // filename*= wins over filename=, in either order
    CHECK(content_disposition_filename(
              "attachment; filename=\"fallback.bin\"; filename*=UTF-8''na%C3%AFve%20lora.safetensors") ==
          "naïve lora.safetensors");
    CHECK(content_disposition_filename("attachment; filename*=UTF-8''first.bin; filename=\"second.bin\"") ==
          "first.bin");
    CHECK(content_disposition_filename("attachment; filename*=iso-8859-1'en'caf%E9.bin") == "café.bin");
    // an unknown charset falls back to the plain form
    CHECK(content_disposition_filename("attachment; filename=\"plain.bin\"; filename*=koi8-r''x") == "plain.bin");
}

TEST_CASE("file name: sanitizing untrusted names") {
    CHECK(sanitize_file_name("model.safetensors") == "model.safetensors");
    CHECK(sanitize_file_name("../../x") == "_.._x");
    CHECK(sanitize_file_name("/abs/path.bin") == "_abs_path.bin");
    CHECK(sanitize_file_name("..") == "");
    CHECK(sanitize_file_name(".") == "");
    CHECK(sanitize_file_name("a/b") == "a_b");
    CHECK(sanitize_file_name("a\\b") == "a_b");
    CHECK(sanitize_file_name(std::string("nul\0here\x01\x1f\x7f.bin", 15)) == "nul_here___.bin");
    CHECK(sanitize_file_name(".hidden.bin") == "hidden.bin");
    CHECK(sanitize_file_name("\xff\xfe bad.bin") == "__ bad.bin");
    CHECK(sanitize_file_name("ünïcode.safetensors") == "ünïcode.safetensors");
    std::string long_name(400, 'x');
    auto cut = sanitize_file_name(long_name + ".safetensors");
    CHECK(cut.size() == 200);
    CHECK(provision::detail::ends_with(cut, ".safetensors"));
}

TEST_CASE("file name: a decoded Content-Disposition cannot escape after sanitizing") {
    auto proposed = content_disposition_filename("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd");
    REQUIRE(proposed);
    CHECK(*proposed == "../../etc/passwd");
    CHECK(sanitize_file_name(*proposed) == "_.._etc_passwd");
}

TEST_CASE("file name: joining relative names inside a folder") {
    CHECK(join_inside("/m/Lora", "x.safetensors").value() == "/m/Lora/x.safetensors");
    CHECK(join_inside("/m/Lora", "sub/dir/x.bin").value() == "/m/Lora/sub/dir/x.bin");
    for (const char* bad : {"", "/etc/passwd", "../x", "a/../../x", "a//b", "./x", "a\\b", "a/\x01"}) {
        CAPTURE(bad);
        auto joined = join_inside("/m/Lora", bad);
        REQUIRE_FALSE(joined);
        CHECK(joined.error().code == provision::errc::unsafe);
    }
}

TEST_CASE("file name: model extensions and document detection") {
    CHECK(provision::detail::is_model_file_name("x.SafeTensors"));
    CHECK(provision::detail::is_model_file_name("x.gguf"));
    CHECK_FALSE(provision::detail::is_model_file_name("config.yaml"));
    CHECK(provision::detail::is_text_content_type("text/html; charset=utf-8"));
    CHECK(provision::detail::is_text_content_type("application/json"));
    CHECK_FALSE(provision::detail::is_text_content_type("application/octet-stream"));
    CHECK(provision::detail::looks_like_html("\n  <!DOCTYPE html><html>"));
    CHECK(provision::detail::looks_like_html("<HTML><body>"));
    CHECK_FALSE(provision::detail::looks_like_html(std::string("\x10\x00\x00\x00\x00\x00\x00\x00{\"", 10)));
}

}  // namespace suite_file_name
