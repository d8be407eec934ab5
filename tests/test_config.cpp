// SPDX-License-Identifier: MIT
// The TOML config parser: every form of the seed's syntax, source inference,
// ${VAR} expansion, and every error with the position and key path it names.
#include "common.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#ifndef PROVISION_SOURCE_DIR
#define PROVISION_SOURCE_DIR "."
#endif

namespace suite_config {  // apart from the suites compiled with it (tests/meson.build)

using provision::Diagnostic;
using provision::Entry;
using provision::EnvLookup;
using provision::Manifest;
using provision::SourceKind;

namespace {

/// Config text written in a raw string that starts with a line break: the
/// break is dropped so the first line of the snippet is line 1.
std::string text_of(const char* raw) {
    std::string text(raw);
    if (!text.empty() && text.front() == '\n') text.erase(0, 1);
    return text;
}

/// An environment holding exactly these variables (never the real one).
EnvLookup env_of(std::map<std::string, std::string> vars) {
    return [vars](const std::string& name) -> std::optional<std::string> {
        auto found = vars.find(name);
        if (found == vars.end()) return std::nullopt;
        return found->second;
    };
}

Manifest parse(const char* raw, const EnvLookup& env = env_of({})) {
    return provision::parse_config(text_of(raw), "config.toml", env);
}

const Entry* find_entry(const Manifest& manifest, const std::string& key_path) {
    for (const auto& entry : manifest.entries)
        if (entry.key_path == key_path) return &entry;
    return nullptr;
}

/// The only diagnostic for a key path; fails the test when there is not exactly one.
Diagnostic only_diagnostic(const Manifest& manifest, const std::string& key_path) {
    std::vector<Diagnostic> found;
    for (const auto& d : manifest.diagnostics)
        if (d.key_path == key_path) found.push_back(d);
    INFO("all diagnostics:\n" << manifest.error_text());
    REQUIRE(found.size() == 1);
    return found.front();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string read_data(const std::string& name) {
    std::ifstream in(std::string(PROVISION_SOURCE_DIR) + "/tests/data/configs/" + name, std::ios::binary);
    REQUIRE_MESSAGE(in, "cannot open tests/data/configs/" << name);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

}  // namespace

// ---------------------------------------------------------------- the forms

TEST_CASE("config: a [models.<category>.<name>] huggingface table fills every field") {
    auto m = parse(R"(
[models.checkpoints.sdxl-base]
source = "huggingface"
repo = "stabilityai/stable-diffusion-xl-base-1.0"
file = "unet/sd_xl_base_1.0.safetensors"
revision = "refs/pr/12"
repo_type = "space"
gated = true
filename = "sdxl.safetensors"
sha256 = "ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789"
description = "the base model"
notes = "from the seed"

[models.vae.defaults]
source = "huggingface"
repo = "madebyollin/sdxl-vae-fp16-fix"
file = "sdxl_vae.safetensors"
)");
    INFO(m.error_text());
    REQUIRE(m.ok());
    REQUIRE(m.entries.size() == 2);
    const Entry& e = m.entries[0];
    CHECK(e.category == "checkpoints");
    CHECK(e.name == "sdxl-base");
    CHECK(e.key_path == "models.checkpoints.sdxl-base");
    CHECK(e.where.file == "config.toml");
    CHECK(e.where.line == 1);
    CHECK(e.where.column == 1);
    CHECK(e.source == SourceKind::huggingface);
    CHECK(e.repo == "stabilityai/stable-diffusion-xl-base-1.0");
    CHECK(e.file == "unet/sd_xl_base_1.0.safetensors");
    CHECK(e.revision == "refs/pr/12");
    CHECK(e.repo_type == "space");
    CHECK(e.gated);
    CHECK(e.filename == "sdxl.safetensors");
    CHECK(e.sha256 == "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    CHECK(e.headers.empty());

    const Entry& d = m.entries[1];
    CHECK(d.where.line == 13);
    CHECK(d.revision == "main");
    CHECK(d.repo_type == "model");
    CHECK_FALSE(d.gated);
    CHECK(d.filename.empty());
    CHECK(d.sha256.empty());
}

TEST_CASE("config: civitai entries take version_id and file_id as integers or digit strings") {
    auto m = parse(R"(
[models.lora.detail-tweaker]
source = "civitai"
version_id = "58390"

[models.lora.as-number]
source = "civitai"
version_id = 128713
file_id = 42
type = "Model"
filename = "detail.safetensors"

[models.embeddings.file-id-string]
source = "civitai"
version_id = 9208
file_id = "10375"
)");
    INFO(m.error_text());
    REQUIRE(m.ok());
    REQUIRE(m.entries.size() == 3);
    CHECK(m.entries[0].source == SourceKind::civitai);
    CHECK(m.entries[0].version_id == "58390");
    CHECK(m.entries[0].file_id.empty());
    CHECK(m.entries[0].file_type.empty());
    CHECK(m.entries[1].version_id == "128713");
    CHECK(m.entries[1].file_id == "42");
    CHECK(m.entries[1].file_type == "Model");
    CHECK(m.entries[1].filename == "detail.safetensors");
    CHECK(m.entries[2].version_id == "9208");
    CHECK(m.entries[2].file_id == "10375");
}

TEST_CASE("config: url entries as tables, inline tables and the simple name = \"https://...\" form") {
    auto m = parse(R"(
[models.vae.table-form]
source = "url"
url = "https://example.com/model.safetensors"
filename = "model.safetensors"

[models.lora]
simple-model = "https://example.com/simple.safetensors"
inline-model = { source = "huggingface", repo = "owner/name", file = "lora.safetensors" }
inline-url = { url = "http://mirror.local:8080/x.pt", sha256 = "0000000000000000000000000000000000000000000000000000000000000000" }
)");
    INFO(m.error_text());
    REQUIRE(m.ok());
    REQUIRE(m.entries.size() == 4);

    const Entry* table = find_entry(m, "models.vae.table-form");
    REQUIRE(table);
    CHECK(table->source == SourceKind::url);
    CHECK(table->url == "https://example.com/model.safetensors");
    CHECK(table->filename == "model.safetensors");

    const Entry* simple = find_entry(m, "models.lora.simple-model");
    REQUIRE(simple);
    CHECK(simple->category == "lora");
    CHECK(simple->name == "simple-model");
    CHECK(simple->source == SourceKind::url);
    CHECK(simple->url == "https://example.com/simple.safetensors");
    CHECK(simple->filename.empty());
    CHECK(simple->where.line == 7);
    CHECK(simple->where.column == 16);  // the value

    const Entry* inline_hf = find_entry(m, "models.lora.inline-model");
    REQUIRE(inline_hf);
    CHECK(inline_hf->source == SourceKind::huggingface);
    CHECK(inline_hf->repo == "owner/name");
    CHECK(inline_hf->file == "lora.safetensors");
    CHECK(inline_hf->where.line == 8);
    CHECK(inline_hf->where.column == 16);  // the '{'

    const Entry* inline_url = find_entry(m, "models.lora.inline-url");
    REQUIRE(inline_url);
    CHECK(inline_url->source == SourceKind::url);
    CHECK(inline_url->url == "http://mirror.local:8080/x.pt");
    CHECK(inline_url->sha256 == std::string(64, '0'));
}

TEST_CASE("config: a [models.<category>] table may come after one of its sub-tables") {
    auto m = parse(R"(
[models.lora.first]
source = "civitai"
version_id = "1"

[models.lora]
second = "https://example.com/second.safetensors"

[models.lora.third]
source = "civitai"
version_id = "3"
)");
    INFO(m.error_text());
    REQUIRE(m.ok());
    REQUIRE(m.entries.size() == 3);
    CHECK(m.entries[0].name == "first");
    CHECK(m.entries[1].name == "second");
    CHECK(m.entries[1].url == "https://example.com/second.safetensors");
    CHECK(m.entries[2].name == "third");
    for (const auto& e : m.entries) CHECK(e.category == "lora");
}

TEST_CASE("config: the source is inferred from repo, version_id or url") {
    auto m = parse(R"(
[models.checkpoints.hf]
repo = "owner/name"
file = "a.safetensors"

[models.lora.civitai]
version_id = 5

[models.vae.url]
url = "https://example.com/v.safetensors"
)");
    INFO(m.error_text());
    REQUIRE(m.ok());
    REQUIRE(m.entries.size() == 3);
    CHECK(m.entries[0].source == SourceKind::huggingface);
    CHECK(m.entries[1].source == SourceKind::civitai);
    CHECK(m.entries[1].version_id == "5");
    CHECK(m.entries[2].source == SourceKind::url);
    CHECK(m.entries[2].url == "https://example.com/v.safetensors");
}

TEST_CASE("config: categories and names are kept verbatim; odd names are quoted in key paths") {
    auto m = parse(R"(
[models.clip.a]
url = "https://example.com/a"

[models.not-a-known-category.b]
url = "https://example.com/b"

[models."My Models"."v1.5 model"]
url = "https://example.com/c"
)");
    INFO(m.error_text());
    REQUIRE(m.ok());
    REQUIRE(m.entries.size() == 3);
    CHECK(m.entries[0].category == "clip");
    CHECK(m.entries[1].category == "not-a-known-category");
    CHECK(m.entries[2].category == "My Models");
    CHECK(m.entries[2].name == "v1.5 model");
    CHECK(m.entries[2].key_path == "models.\"My Models\".\"v1.5 model\"");
}

TEST_CASE("config: entries come out in file order, not key order") {
    auto m = parse(R"(
[models.vae.zeta]
url = "https://example.com/1"

[models.checkpoints.alpha]
url = "https://example.com/2"

[models.vae]
beta = "https://example.com/3"

[models.lora.mid]
url = "https://example.com/4"
)");
    INFO(m.error_text());
    REQUIRE(m.ok());
    std::vector<std::string> urls;
    for (const auto& e : m.entries) urls.push_back(e.url);
    CHECK(urls == std::vector<std::string>{"https://example.com/1", "https://example.com/2", "https://example.com/3",
                                           "https://example.com/4"});
}

TEST_CASE("config: [settings] and [directories] sit beside the models") {
    auto m = parse(R"(
[settings]
layout = "comfyui"

[directories]
lora = "/somewhere"

[models.lora.x]
url = "https://example.com/x"
)");
    INFO(m.error_text());
    CHECK(m.ok());
    CHECK(m.entries.size() == 1);
}

// ---------------------------------------------------------------- headers and ${VAR}

TEST_CASE("config: headers and auth_header expand ${VAR} from the injected environment") {
    auto m = parse(R"(
[models.vae.private]
url = "https://files.example.com/v.safetensors"
headers = { "X-Api-Key" = "${API_KEY}", "X-Plain" = "no variables", "X-Mixed" = "a-${A}-b-${B_2}-c", "X-Literal" = "$${NOT_A_VAR} costs $5" }
auth_header = "Bearer ${MY_TOKEN}"
)",
                   env_of({{"API_KEY", "k-123"}, {"A", "1"}, {"B_2", "2"}, {"MY_TOKEN", "tok en"}}));
    INFO(m.error_text());
    REQUIRE(m.ok());
    REQUIRE(m.entries.size() == 1);
    const auto& headers = m.entries[0].headers;
    REQUIRE(headers.size() == 5);
    // headers in the order written, then Authorization from auth_header
    CHECK(headers[0] == provision::Header{"X-Api-Key", "k-123"});
    CHECK(headers[1] == provision::Header{"X-Plain", "no variables"});
    CHECK(headers[2] == provision::Header{"X-Mixed", "a-1-b-2-c"});
    CHECK(headers[3] == provision::Header{"X-Literal", "${NOT_A_VAR} costs $5"});
    CHECK(headers[4] == provision::Header{"Authorization", "Bearer tok en"});
}

TEST_CASE("config: the seed's literal Authorization header is kept as written") {
    auto m = parse(R"(
[models.vae.model-name]
source = "url"
url = "https://example.com/model.safetensors"
headers = { "Authorization" = "Bearer token" }
)");
    INFO(m.error_text());
    REQUIRE(m.ok());
    REQUIRE(m.entries[0].headers.size() == 1);
    CHECK(m.entries[0].headers[0] == provision::Header{"Authorization", "Bearer token"});
}

TEST_CASE("config: an unset variable fails only its entry, naming the variable and key path, never a secret") {
    // PATH exists in every real environment: its absence here proves the injected lookup is used.
    auto m = parse(R"(
[models.vae.private]
url = "https://files.example.com/v.safetensors"
headers = { "X-Set" = "${SET_SECRET}", "X-Path" = "${PATH}" }
auth_header = "Bearer ${MISSING_TOKEN}"

[models.vae.public]
url = "https://files.example.com/w.safetensors"
)",
                   env_of({{"SET_SECRET", "s3cr3t-value"}}));
    // The config is valid: the machine lacks a variable, as it may lack HF_TOKEN.
    CHECK(m.ok());
    REQUIRE(m.entries.size() == 2);
    const auto& refused = m.entries[0];
    CHECK(contains(refused.unresolved, "models.vae.private.headers.X-Path: environment variable PATH is not set"));
    CHECK(contains(refused.unresolved, "export PATH="));
    CHECK_FALSE(contains(refused.unresolved, "s3cr3t"));
    CHECK(m.entries[1].unresolved.empty());
    // resolve_entry is where it fails, as an auth error, before any request.
    provision::HttpClient http;
    provision::ResolveContext context{http, {}, "https://huggingface.co"};
    auto plan = provision::resolve_entry(refused, context);
    REQUIRE_FALSE(plan);
    CHECK(plan.error().code == provision::errc::auth);
    CHECK(plan.error().message == refused.unresolved);
}

TEST_CASE("config: a config fetched from a URL expands only the variables the operator allows") {
    const char* text = R"(
[models.vae.a]
url = "https://files.example.com/a.safetensors"
headers = { "X-Key" = "${ALLOWED_KEY}" }

[models.vae.b]
url = "https://files.example.com/b.safetensors"
auth_header = "Bearer ${AWS_SECRET_ACCESS_KEY}"
)";
    auto env = env_of({{"ALLOWED_KEY", "k-123456"}, {"AWS_SECRET_ACCESS_KEY", "never-sent-123"}});
    provision::ConfigTrust remote;
    remote.remote = true;
    remote.allowed_variables = {"ALLOWED_KEY"};
    auto m = provision::parse_config(text, "https://configs.example/c.toml", env, remote);
    CHECK(m.ok());
    REQUIRE(m.entries.size() == 2);
    CHECK(m.entries[0].headers == std::vector<provision::Header>{{"X-Key", "k-123456"}});
    CHECK(m.entries[1].headers.empty());
    CHECK(contains(m.entries[1].unresolved, "PROVISION_ALLOW_VARS=AWS_SECRET_ACCESS_KEY"));
    CHECK_FALSE(contains(m.entries[1].unresolved, "never-sent"));
    // The same text from a local file expands both.
    auto local = provision::parse_config(text, "c.toml", env);
    CHECK(local.entries[1].headers == std::vector<provision::Header>{{"Authorization", "Bearer never-sent-123"}});
    CHECK(local.sha256 == provision::detail::sha256_hex(text));
}

TEST_CASE("config: header values that would break the request are refused without echoing them") {
    auto m = parse(R"(
[models.vae.a]
url = "https://example.com/a"
headers = { "X-Multi" = "${MULTI_LINE}" }

[models.vae.b]
url = "https://example.com/b"
headers = { "Bad Name" = "v", "X-Num" = 5, "X-Cr" = "line\r\nInjected: yes" }
auth_header = "Bearer ${UNCLOSED"

[models.vae.c]
url = "https://example.com/c"
headers = { "authorization" = "Bearer one" }
auth_header = "Bearer two"

[models.vae.d]
url = "https://example.com/d"
headers = "Authorization: x"
auth_header = true
)",
                   env_of({{"MULTI_LINE", "hidden-part\nX-Evil: 1"}}));
    CHECK(m.entries.empty());
    INFO(m.error_text());
    auto multi = only_diagnostic(m, "models.vae.a.headers.X-Multi");
    CHECK(multi.where.line == 3);
    CHECK(contains(multi.message, "MULTI_LINE"));
    CHECK(contains(multi.message, "line break"));
    CHECK(only_diagnostic(m, "models.vae.b.headers.\"Bad Name\"").where.line == 7);
    CHECK(contains(only_diagnostic(m, "models.vae.b.headers.X-Num").message, "expected a string, got an integer"));
    CHECK(contains(only_diagnostic(m, "models.vae.b.headers.X-Cr").message, "line break"));
    CHECK(contains(only_diagnostic(m, "models.vae.b.auth_header").message, "not closed"));
    auto twice = only_diagnostic(m, "models.vae.c.auth_header");
    CHECK(twice.where.line == 13);
    CHECK(contains(twice.message, "keep one"));
    CHECK(contains(only_diagnostic(m, "models.vae.d.headers").message, "got a string"));
    CHECK(contains(only_diagnostic(m, "models.vae.d.auth_header").message, "got a boolean"));
    CHECK_FALSE(contains(m.error_text(), "hidden-part"));
    CHECK_FALSE(contains(m.error_text(), "Injected"));
    CHECK_FALSE(contains(m.error_text(), "Bearer one"));
}

TEST_CASE("config: process_environment reads the real environment") {
    ::setenv("PROVISION_CONFIG_TEST_VAR", "from-env", 1);
    auto env = provision::process_environment();
    CHECK(env("PROVISION_CONFIG_TEST_VAR") == std::optional<std::string>("from-env"));
    ::unsetenv("PROVISION_CONFIG_TEST_VAR");
    CHECK_FALSE(env("PROVISION_CONFIG_TEST_VAR").has_value());
}

// ---------------------------------------------------------------- errors

TEST_CASE("config: the issue's example message, exactly") {
    auto m = parse(R"(
# line 1
[models.checkpoints.sdxl-base]
url = "https://example.com/a"

[models.lora.detail-tweaker]
source = "civitai"
version_id = true
)");
    REQUIRE(m.diagnostics.size() == 1);
    CHECK(m.diagnostics[0].str() ==
          "config.toml:7:14: models.lora.detail-tweaker.version_id: expected a number or a string of digits, got a "
          "boolean");
    CHECK(m.entries.size() == 1);  // the valid entry is still listed
    CHECK_FALSE(m.ok());
}

TEST_CASE("config: unknown source names the valid ones") {
    auto m = parse(R"(
[models.lora.a]
source = "hf"
repo = "owner/name"
file = "x.safetensors"

[models.lora.b]
source = "s3"
url = "https://example.com/b"

[models.lora.c]
source = 7
)");
    CHECK(m.entries.empty());
    REQUIRE(m.diagnostics.size() == 3);
    auto a = only_diagnostic(m, "models.lora.a.source");
    CHECK(a.where.line == 2);
    CHECK(a.where.column == 10);
    CHECK(contains(a.message, "unknown source \"hf\""));
    CHECK(contains(a.message, "\"huggingface\", \"civitai\" or \"url\""));
    CHECK(contains(a.message, "did you mean \"huggingface\""));
    auto b = only_diagnostic(m, "models.lora.b.source");
    CHECK(b.where.line == 7);
    CHECK(contains(b.message, "unknown source \"s3\""));
    auto c = only_diagnostic(m, "models.lora.c.source");
    CHECK(c.where.line == 11);
    CHECK(contains(c.message, "got an integer"));
}

TEST_CASE("config: unknown keys name the keys allowed for that source") {
    auto m = parse(R"(
[models.lora.a]
source = "civitai"
modelId = "123"
version_id = "456"

[models.checkpoints.b]
repo = "owner/name"
file = "b.safetensors"
url = "https://example.com/b"
headers = { X = "y" }
colour = "blue"
)");
    CHECK(m.entries.empty());
    INFO(m.error_text());
    REQUIRE(m.diagnostics.size() == 2);
    auto model_id = only_diagnostic(m, "models.lora.a.modelId");
    CHECK(model_id.where.line == 3);
    CHECK(model_id.where.column == 1);  // the key
    CHECK(contains(model_id.message, "unknown key \"modelId\" for source \"civitai\""));
    CHECK(contains(
        model_id.message,
        "allowed keys: source, version_id, model_id, url, air, file_id, type, filename, sha256, description, notes"));
    CHECK(contains(model_id.message, "write model_id"));
    // without an explicit source, repo and url together leave the source undecided
    auto b = only_diagnostic(m, "models.checkpoints.b");
    CHECK(b.where.line == 6);
    CHECK(contains(b.message, "cannot tell the source"));

    auto explicit_source = parse(R"(
[models.checkpoints.b]
source = "huggingface"
repo = "owner/name"
file = "b.safetensors"
headers = { X = "y" }
colour = "blue"
)");
    INFO(explicit_source.error_text());
    REQUIRE(explicit_source.diagnostics.size() == 2);
    auto headers = only_diagnostic(explicit_source, "models.checkpoints.b.headers");
    CHECK(headers.where.line == 5);
    CHECK(contains(
        headers.message,
        "allowed keys: source, repo, file, files, include, exclude, revision, repo_type, gated, filename, sha256"));
    CHECK(contains(headers.message, "belongs to source = \"url\""));
    CHECK(only_diagnostic(explicit_source, "models.checkpoints.b.colour").where.line == 6);
}

TEST_CASE("config: wrong value types say what was expected and what was found") {
    auto m = parse(R"(
[models.checkpoints.a]
repo = 5
file = ["x"]
gated = "yes"
revision = 1.5
filename = false
sha256 = 1979-05-27

[models.lora.b]
version_id = 12.5
file_id = true
type = 3
description = 1
)");
    CHECK(m.entries.empty());
    INFO(m.error_text());
    CHECK(m.diagnostics.size() == 10);
    auto repo = only_diagnostic(m, "models.checkpoints.a.repo");
    CHECK(repo.where.line == 2);
    CHECK(repo.where.column == 8);  // the value
    CHECK(repo.message == "expected a string, got an integer");
    CHECK(only_diagnostic(m, "models.checkpoints.a.file").message == "expected a string, got an array");
    CHECK(only_diagnostic(m, "models.checkpoints.a.gated").message == "expected true or false, got a string");
    CHECK(only_diagnostic(m, "models.checkpoints.a.revision").message ==
          "expected a string, got a floating-point number");
    CHECK(only_diagnostic(m, "models.checkpoints.a.filename").message == "expected a string, got a boolean");
    CHECK(only_diagnostic(m, "models.checkpoints.a.sha256").message == "expected a string, got a date");
    auto version = only_diagnostic(m, "models.lora.b.version_id");
    CHECK(version.where.line == 10);
    CHECK(version.message == "expected a number or a string of digits, got a floating-point number");
    CHECK(only_diagnostic(m, "models.lora.b.file_id").message ==
          "expected a number or a string of digits, got a boolean");
    CHECK(only_diagnostic(m, "models.lora.b.type").where.line == 12);
    CHECK(only_diagnostic(m, "models.lora.b.description").where.line == 13);
}

TEST_CASE("config: bad version ids, repo ids, repo types and digests") {
    auto m = parse(R"(
[models.lora.a]
version_id = "https://civitai.com/models/1?modelVersionId=2"

[models.lora.b]
version_id = -3

[models.lora.c]
version_id = ""

[models.checkpoints.d]
repo = "gpt2"
file = "model.safetensors"
repo_type = "models"

[models.checkpoints.e]
repo = "https://huggingface.co/owner/name"
file = "x.safetensors"
sha256 = "abc"

[models.checkpoints.f]
repo = "owner/name"
file = "x.safetensors"
revision = "has space"
sha256 = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
)");
    CHECK(m.entries.empty());
    INFO(m.error_text());
    CHECK(m.diagnostics.size() == 9);
    CHECK(contains(only_diagnostic(m, "models.lora.a.version_id").message, "modelVersionId"));
    CHECK(contains(only_diagnostic(m, "models.lora.b.version_id").message, "positive"));
    CHECK(only_diagnostic(m, "models.lora.c.version_id").where.line == 8);
    auto repo = only_diagnostic(m, "models.checkpoints.d.repo");
    CHECK(repo.where.line == 11);
    CHECK(contains(repo.message, "\"owner/name\""));
    CHECK(contains(only_diagnostic(m, "models.checkpoints.d.repo_type").message, "singular: \"model\""));
    CHECK(contains(only_diagnostic(m, "models.checkpoints.e.repo").message, "not its URL"));
    auto digest = only_diagnostic(m, "models.checkpoints.e.sha256");
    CHECK(digest.where.line == 18);
    CHECK(contains(digest.message, "64 hexadecimal characters, got 3 characters"));
    CHECK(contains(only_diagnostic(m, "models.checkpoints.f.sha256").message, "not all hexadecimal"));
    CHECK(only_diagnostic(m, "models.checkpoints.f.revision").where.line == 23);
}

TEST_CASE("config: a missing required key points at the entry's table") {
    auto m = parse(R"(
[models.checkpoints.no-file]
source = "huggingface"
repo = "owner/name"

[models.lora]
inline = { source = "civitai", filename = "x.safetensors" }

[models.vae.no-url]
source = "url"
filename = "x.safetensors"

[models.vae.nothing]
filename = "x.safetensors"
)");
    CHECK(m.entries.empty());
    INFO(m.error_text());
    REQUIRE(m.diagnostics.size() == 4);
    auto file = only_diagnostic(m, "models.checkpoints.no-file");
    CHECK(file.where.line == 1);
    CHECK(file.where.column == 1);
    CHECK(contains(file.message, "missing required key \"file\""));
    auto inline_missing = only_diagnostic(m, "models.lora.inline");
    CHECK(inline_missing.where.line == 6);
    CHECK(inline_missing.where.column == 10);
    CHECK(contains(inline_missing.message, "missing required key \"version_id\""));
    auto url = only_diagnostic(m, "models.vae.no-url");
    CHECK(url.where.line == 8);
    CHECK(contains(url.message, "missing required key \"url\""));
    auto nothing = only_diagnostic(m, "models.vae.nothing");
    CHECK(nothing.where.line == 12);
    CHECK(contains(nothing.message, "missing \"source\""));
}

TEST_CASE("config: empty or unsafe file names are refused") {
    auto m = parse(R"(
[models.lora]
a = { url = "https://example.com/a", filename = "" }
b = { url = "https://example.com/b", filename = "../../etc/passwd" }
c = { url = "https://example.com/c", filename = ".." }
d = { url = "https://example.com/d", filename = "dir\\x.safetensors" }
e = { url = "https://example.com/e", filename = "bad\u0007bell" }
f = { url = "https://example.com/f", filename = "fine name (1).safetensors" }
)");
    INFO(m.error_text());
    CHECK(m.diagnostics.size() == 5);
    CHECK(contains(only_diagnostic(m, "models.lora.a.filename").message, "empty"));
    auto b = only_diagnostic(m, "models.lora.b.filename");
    CHECK(b.where.line == 3);
    CHECK(b.where.column == 49);
    CHECK(contains(b.message, "'/'"));
    CHECK(only_diagnostic(m, "models.lora.c.filename").where.line == 4);
    CHECK(only_diagnostic(m, "models.lora.d.filename").where.line == 5);
    CHECK(contains(only_diagnostic(m, "models.lora.e.filename").message, "control character"));
    REQUIRE(m.entries.size() == 1);
    CHECK(m.entries[0].filename == "fine name (1).safetensors");
}

TEST_CASE("config: a Hugging Face file may have folders but must stay inside the repo") {
    auto m = parse(R"(
[models.checkpoints]
ok = { repo = "o/n", file = "a/b/c.safetensors" }
absolute = { repo = "o/n", file = "/etc/passwd" }
dotdot = { repo = "o/n", file = "a/../../x" }
empty-segment = { repo = "o/n", file = "a//b" }
trailing = { repo = "o/n", file = "a/" }
backslash = { repo = "o/n", file = "a\\b" }
control = { repo = "o/n", file = "a\tb" }
empty = { repo = "o/n", file = "" }
)");
    INFO(m.error_text());
    CHECK(m.diagnostics.size() == 7);
    REQUIRE(m.entries.size() == 1);
    CHECK(m.entries[0].file == "a/b/c.safetensors");
    auto absolute = only_diagnostic(m, "models.checkpoints.absolute.file");
    CHECK(absolute.where.line == 3);
    CHECK(contains(absolute.message, "leading '/'"));
    CHECK(contains(only_diagnostic(m, "models.checkpoints.dotdot.file").message, ".."));
    CHECK(contains(only_diagnostic(m, "models.checkpoints.empty-segment.file").message, "empty folder name"));
    CHECK(contains(only_diagnostic(m, "models.checkpoints.trailing.file").message, "empty folder name"));
    CHECK(contains(only_diagnostic(m, "models.checkpoints.backslash.file").message, "'\\'"));
    CHECK(contains(only_diagnostic(m, "models.checkpoints.control.file").message, "control character"));
    CHECK(contains(only_diagnostic(m, "models.checkpoints.empty.file").message, "empty"));
}

TEST_CASE("config: only http and https URLs are accepted, and URLs are not echoed") {
    auto m = parse(R"(
[models.vae.ftp]
url = "ftp://example.com/x.safetensors"

[models.lora]
local = "file:///etc/passwd"
not-a-url = "stabilityai/sdxl"
spaced = "https://example.com/a b?token=SECRET123"
ok = "http://example.com/ok"
)");
    INFO(m.error_text());
    CHECK(m.diagnostics.size() == 4);
    auto ftp = only_diagnostic(m, "models.vae.ftp.url");
    CHECK(ftp.where.line == 2);
    CHECK(ftp.where.column == 7);
    CHECK(contains(ftp.message, "\"ftp\" is not supported"));
    auto local = only_diagnostic(m, "models.lora.local");
    CHECK(local.where.line == 5);
    CHECK(contains(local.message, "https://"));
    CHECK(only_diagnostic(m, "models.lora.not-a-url").where.line == 6);
    CHECK(only_diagnostic(m, "models.lora.spaced").where.line == 7);
    CHECK_FALSE(contains(m.error_text(), "SECRET123"));
    REQUIRE(m.entries.size() == 1);
    CHECK(m.entries[0].url == "http://example.com/ok");
}

TEST_CASE("config: models, categories and entries of the wrong kind") {
    auto not_table = parse(R"(
models = "everything"
)");
    REQUIRE(not_table.diagnostics.size() == 1);
    CHECK(not_table.diagnostics[0].key_path == "models");
    CHECK(not_table.diagnostics[0].where.line == 1);
    CHECK(not_table.diagnostics[0].where.column == 10);
    CHECK(contains(not_table.diagnostics[0].message, "got a string"));

    auto m = parse(R"(
[models]
lora = "https://example.com/x"
vae = [1, 2]

[models.checkpoints]
number = 5
list = ["https://example.com/a"]
good = "https://example.com/good"

[[models.embeddings]]
url = "https://example.com/e"
)");
    INFO(m.error_text());
    CHECK(m.diagnostics.size() == 5);
    CHECK(only_diagnostic(m, "models.lora").where.line == 2);
    CHECK(contains(only_diagnostic(m, "models.lora").message, "expected a table of models"));
    CHECK(only_diagnostic(m, "models.vae").where.line == 3);
    auto number = only_diagnostic(m, "models.checkpoints.number");
    CHECK(number.where.line == 6);
    CHECK(number.where.column == 10);
    CHECK(contains(number.message, "expected a table (with source, repo, url, ...) or a URL string, got an integer"));
    CHECK(contains(only_diagnostic(m, "models.checkpoints.list").message, "got an array"));
    CHECK(only_diagnostic(m, "models.embeddings").where.line == 10);
    REQUIRE(m.entries.size() == 1);
    CHECK(m.entries[0].name == "good");
}

TEST_CASE("config: top-level keys other than models are errors") {
    auto m = parse(R"(
title = "my models"

[checkpoints.sdxl]
url = "https://example.com/x"

[models.lora.ok]
url = "https://example.com/ok"
)");
    INFO(m.error_text());
    REQUIRE(m.diagnostics.size() == 2);
    auto title = only_diagnostic(m, "title");
    CHECK(title.where.line == 1);
    CHECK(contains(title.message, "unknown top-level key \"title\""));
    auto checkpoints = only_diagnostic(m, "checkpoints");
    CHECK(checkpoints.where.line == 3);
    CHECK(contains(checkpoints.message, "did you mean [models.checkpoints.<name>]"));
    CHECK(m.entries.size() == 1);
}

TEST_CASE("config: a config without models is an error") {
    for (const char* raw :
         {"", "# only a comment\n", "[models]\n", "[models.lora]\n[settings]\nlayout = \"forge\"\n"}) {
        CAPTURE(raw);
        auto m = provision::parse_config(raw, "config.toml", env_of({}));
        REQUIRE(m.diagnostics.size() == 1);
        CHECK(m.diagnostics[0].key_path == "models");
        CHECK(contains(m.diagnostics[0].message, "no models listed"));
        CHECK(m.entries.empty());
    }
}

TEST_CASE("config: a TOML syntax error is one diagnostic with toml++'s position") {
    auto m = parse(R"(
[models.lora.a]
url = "https://example.com/a"
version_id =
)");
    REQUIRE(m.diagnostics.size() == 1);
    CHECK(m.diagnostics[0].where.file == "config.toml");
    CHECK(m.diagnostics[0].where.line == 3);
    CHECK(m.diagnostics[0].where.column > 1);
    CHECK(m.diagnostics[0].key_path.empty());
    CHECK_FALSE(m.diagnostics[0].message.empty());
    CHECK(m.entries.empty());

    auto duplicate = parse(R"(
[models.lora.a]
url = "https://example.com/a"
[models.lora.a]
url = "https://example.com/b"
)");
    REQUIRE(duplicate.diagnostics.size() == 1);
    CHECK(duplicate.diagnostics[0].where.line == 3);
}

TEST_CASE("config: malformed TOML that makes toml++ 3.3 assert is a diagnostic, not an abort") {
    struct Case {
        const char* text;
        int line;
        int column;
    };
    const Case cases[] = {
        {"[=a]\n", 1, 2},
        {"[models.lora.a]\nurl = \"https://e/x\"\n[ .a]\n", 3, 3},
        {"[[[a]]]\n", 1, 3},
        {"[[=\n", 1, 3},
        {"[#\n", 1, 2},
        {"[\nmodels.x]\n", 1, 2},
        {"a = [}]\n", 1, 6},
        {"a = [\n  1,\n  }]\n", 3, 3},
        {"a = [1,\xE2\x80\xA8]\n", 1, 8},
        {"a = 1979-05-27 1\n", 1, 16},
        {"a = [1979-05-27 1]\n", 1, 17},
        {"x = { b =1979-05-27 1 }\n", 1, 21},
        {"a = 1979-05-27Tx\n", 1, 16},
        {"a = [1, 1979-05-27T{]\n", 1, 20},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        auto m = provision::parse_config(c.text, "config.toml", env_of({}));
        REQUIRE(m.diagnostics.size() == 1);
        CHECK(m.diagnostics[0].where.line == c.line);
        CHECK(m.diagnostics[0].where.column == c.column);
        CHECK(m.diagnostics[0].key_path.empty());
        CHECK(m.entries.empty());
    }
}

TEST_CASE("config: header-like text inside strings, arrays and comments is valid TOML") {
    auto m = parse(R"(
# [=not a header] in a comment
[settings]
title = """
[=inside a multi-line string]
[[[also inside]]]
"""
lit = '''
[.inside a literal string]
'''''
arr = [
  [{a = 1}],
  [+1, -2],
  ["]", '[', """
[=x]
"""],
  1979-05-27, 1979-05-27 07:32:00,
]
tbl = { k = [
[{}]
] }
"quoted key" = "a\"[=b"
dates = { 1979-05-27Tx = 1979-05-27T07:32:00Z, 1979-05-27 = 07:32:00 }

[models.lora.x]
url = "https://example.com/x"
[ models . "q" . 'r' ]
url = "https://example.com/y"
)");
    INFO(m.error_text());
    // The document parses: the only complaints are about the made-up settings keys.
    for (const auto& diagnostic : m.diagnostics) CHECK(contains(diagnostic.message, "unknown setting"));
    REQUIRE(m.entries.size() == 2);
    CHECK(m.entries[1].category == "q");
    CHECK(m.entries[1].name == "r");
}

TEST_CASE("config: every error of a file is reported, in file order") {
    auto m = parse(R"(
stray = 1

[models.checkpoints.a]
source = "huggingface"
repo = "not a repo"
sha256 = "short"

[models.lora.b]
source = "civitai"
version_id = false
extra = 1

[models.vae.c]
source = "url"
url = "ftp://x/y"
filename = "a/b"

[models.vae.good]
url = "https://example.com/good"

[extra]
x = 1
)");
    INFO(m.error_text());
    std::vector<std::pair<int, std::string>> got;
    for (const auto& d : m.diagnostics) got.emplace_back(d.where.line, d.key_path);
    std::vector<std::pair<int, std::string>> expected{
        {1, "stray"},
        {3, "models.checkpoints.a"},  // missing "file": reported at the table
        {5, "models.checkpoints.a.repo"},
        {6, "models.checkpoints.a.sha256"},
        {10, "models.lora.b.version_id"},
        {11, "models.lora.b.extra"},
        {15, "models.vae.c.url"},
        {16, "models.vae.c.filename"},
        {21, "extra"},
    };
    CHECK(got == expected);
    REQUIRE(m.entries.size() == 1);
    CHECK(m.entries[0].name == "good");
    // error_text() is one line per diagnostic, each starting with file:line:column
    std::istringstream lines(m.error_text());
    std::string line;
    std::size_t count = 0;
    while (std::getline(lines, line)) {
        CHECK(line.rfind("config.toml:", 0) == 0);
        ++count;
    }
    CHECK(count == expected.size());
}

TEST_CASE("config: a config URL given as origin is redacted in messages") {
    auto m = provision::parse_config("[models.lora.a]\nversion_id = true\n", "https://example.com/c.toml?token=abc123",
                                     env_of({}));
    REQUIRE(m.diagnostics.size() == 1);
    CHECK_FALSE(contains(m.error_text(), "abc123"));
    CHECK(contains(m.diagnostics[0].str(), "https://example.com/c.toml?token=***:2:14: "));
}

TEST_CASE("config: is_safe_filename") {
    CHECK(provision::is_safe_filename("model.safetensors"));
    CHECK(provision::is_safe_filename("名前 with spaces.ckpt"));
    CHECK(provision::is_safe_filename(".hidden"));
    CHECK(provision::is_safe_filename(std::string(255, 'a')));
    CHECK_FALSE(provision::is_safe_filename(std::string(256, 'a')));
    CHECK_FALSE(provision::is_safe_filename(""));
    CHECK_FALSE(provision::is_safe_filename("."));
    CHECK_FALSE(provision::is_safe_filename(".."));
    CHECK_FALSE(provision::is_safe_filename("a/b"));
    CHECK_FALSE(provision::is_safe_filename("a\\b"));
    CHECK_FALSE(provision::is_safe_filename(std::string("a\0b", 3)));
    CHECK_FALSE(provision::is_safe_filename("a\nb"));
    CHECK_FALSE(provision::is_safe_filename("a\x1f"));
    CHECK_FALSE(provision::is_safe_filename("a\x7f"));
}

// ---------------------------------------------------------------- the seed's examples

TEST_CASE("config: the seed's example configs parse") {
    SUBCASE("minimal") {
        auto m = provision::parse_config(read_data("minimal.toml"), "minimal.toml", env_of({}));
        INFO(m.error_text());
        REQUIRE(m.ok());
        REQUIRE(m.entries.size() == 2);
        CHECK(m.entries[0].key_path == "models.checkpoints.sdxl-base");
        CHECK(m.entries[0].where.str() == "minimal.toml:3:1");
        CHECK(m.entries[1].source == SourceKind::civitai);
        CHECK(m.entries[1].version_id == "58390");
    }
    SUBCASE("flux") {
        auto m = provision::parse_config(read_data("flux.toml"), "flux.toml", env_of({}));
        INFO(m.error_text());
        REQUIRE(m.ok());
        REQUIRE(m.entries.size() == 5);
        CHECK(m.entries[0].gated);
        CHECK(m.entries[1].category == "vae");
        CHECK(m.entries[1].file == "ae.safetensors");
        for (std::size_t i = 2; i < 5; ++i) CHECK(m.entries[i].category == "text_encoder");
        for (const auto& e : m.entries) CHECK(e.source == SourceKind::huggingface);
    }
    SUBCASE("mixed: every source and form") {
        auto m = provision::parse_config(read_data("mixed.toml"), "mixed.toml", env_of({{"EXAMPLE_TOKEN", "t"}}));
        INFO(m.error_text());
        REQUIRE(m.ok());
        REQUIRE(m.entries.size() == 11);
        std::vector<std::string> names;
        for (const auto& e : m.entries) names.push_back(e.category + "/" + e.name);
        CHECK(names == std::vector<std::string>{"checkpoints/sdxl-base", "vae/sdxl-vae", "lora/model-name",
                                                "embeddings/easynegative", "vae/model-name", "checkpoints/gdrive-model",
                                                "lora/another-model", "lora/simple-model", "lora/inline-model",
                                                "clip/clip_l", "controlnet/canny"});
        int counts[3] = {0, 0, 0};
        for (const auto& e : m.entries) ++counts[static_cast<int>(e.source)];
        CHECK(counts[static_cast<int>(SourceKind::huggingface)] == 4);
        CHECK(counts[static_cast<int>(SourceKind::civitai)] == 2);
        CHECK(counts[static_cast<int>(SourceKind::url)] == 5);
        CHECK(m.entries.back().headers == std::vector<provision::Header>{{"Authorization", "Bearer t"}});
        CHECK(m.entries[1].sha256 == "63aeecb90ff7a1c1b1d7a1e7b1d6a9e1c4d1f2a3b4c5d6e7f8091a2b3c4d5e6f");
    }
    SUBCASE("mixed without the token in the environment") {
        // Only the entry that needs the token cannot run; the config is valid.
        auto m = provision::parse_config(read_data("mixed.toml"), "mixed.toml", env_of({}));
        CHECK(m.ok());
        REQUIRE(m.entries.size() == 11);
        CHECK(contains(m.entries.back().unresolved, "models.controlnet.canny.auth_header"));
        for (std::size_t i = 0; i + 1 < m.entries.size(); ++i) CHECK(m.entries[i].unresolved.empty());
    }
}

// ---------------------------------------------------------------- hostile input

TEST_CASE("config: hostile input gives diagnostics, never a crash") {
    SUBCASE("invalid UTF-8") {
        auto m =
            provision::parse_config("[models.lora.a]\nurl = \"https://example.com/\xff\xfe\"\n", "c.toml", env_of({}));
        CHECK_FALSE(m.ok());
        CHECK(m.entries.empty());
    }
    SUBCASE("NUL bytes") {
        auto m =
            provision::parse_config(std::string("[models.lora.a]\nurl = \"https://e\0x\"\n", 35), "c.toml", env_of({}));
        CHECK_FALSE(m.ok());
    }
    SUBCASE("deep nesting") {
        std::string deep = "models = " + std::string(5000, '[') + std::string(5000, ']') + "\n";
        auto m = provision::parse_config(deep, "c.toml", env_of({}));
        CHECK_FALSE(m.ok());
        std::string tables = "x = " + std::string(5000, '{');
        CHECK_FALSE(provision::parse_config(tables, "c.toml", env_of({})).ok());
    }
    SUBCASE("huge values are cut in messages") {
        std::string huge(1 << 20, 'x');
        auto m = provision::parse_config(
            "[models.lora.a]\nversion_id = \"" + huge + "\"\nfilename = \"" + huge + "\"\n", "c.toml", env_of({}));
        REQUIRE(m.diagnostics.size() == 2);
        CHECK(m.error_text().size() < 2000);
    }
    SUBCASE("mutations of a valid config") {
        const std::string base = read_data("mixed.toml");
        auto env = env_of({{"EXAMPLE_TOKEN", "t"}});
        std::uint32_t state = 12345;
        auto next = [&] { return state = state * 1664525u + 1013904223u; };
        std::size_t rejected = 0;
        for (int round = 0; round < 300; ++round) {
            std::string text = base;
            for (int k = 0; k < 4; ++k) {
                std::size_t at = next() % text.size();
                switch (next() % 3) {
                case 0: text[at] = static_cast<char>(next() & 0xff); break;
                case 1: text.erase(at, next() % 8); break;
                default: text.insert(at, 1, "\"[]{}=.\n$"[next() % 9]); break;
                }
            }
            auto m = provision::parse_config(text, "fuzz.toml", env);
            if (!m.ok()) ++rejected;
            for (const auto& d : m.diagnostics) CHECK_FALSE(d.message.empty());
        }
        CHECK(rejected > 0);
    }
}

// ---------------------------------------------------------------- multi-file Hugging Face entries

TEST_CASE("config: files, include and exclude select several files of a Hugging Face repo") {
    auto m = parse(R"(
[models.checkpoints.sdxl]
repo = "stabilityai/stable-diffusion-xl-base-1.0"
files = ["unet/diffusion_pytorch_model.fp16.safetensors", "unet/config.json"]

[models.vae.flux]
repo = "black-forest-labs/FLUX.1-dev"
include = ["vae/*", "*.json"]
exclude = ["model_index.json"]
)");
    INFO(m.error_text());
    REQUIRE(m.ok());
    REQUIRE(m.entries.size() == 2);
    CHECK(m.entries[0].files ==
          std::vector<std::string>{"unet/diffusion_pytorch_model.fp16.safetensors", "unet/config.json"});
    CHECK(m.entries[0].file.empty());
    CHECK(m.entries[0].is_multi_file());
    CHECK(m.entries[1].include == std::vector<std::string>{"vae/*", "*.json"});
    CHECK(m.entries[1].exclude == std::vector<std::string>{"model_index.json"});
    CHECK(m.entries[1].is_multi_file());
}

TEST_CASE("config: wrong multi-file selections are explained at the key") {
    auto m = parse(R"(
[models.a.wrong-type]
repo = "o/n"
files = "model.safetensors"

[models.a.empty]
repo = "o/n"
include = []

[models.a.both]
repo = "o/n"
file = "x.safetensors"
files = ["y.safetensors"]

[models.a.mixed]
repo = "o/n"
files = ["y.safetensors"]
include = ["*"]

[models.a.exclude-only]
repo = "o/n"
exclude = ["*.bin"]

[models.a.bad-item]
repo = "o/n"
files = ["ok.json", 3, "../up.json", "ok.json"]

[models.a.renamed]
repo = "o/n"
include = ["*"]
filename = "x.safetensors"

[models.a.nothing]
repo = "o/n"
)");
    auto wrong_type = only_diagnostic(m, "models.a.wrong-type.files");
    CHECK(wrong_type.where.str() == "config.toml:3:9");
    CHECK(contains(wrong_type.message, "expected an array of strings"));
    CHECK(contains(wrong_type.message, "for one file write file = \"...\""));
    CHECK(contains(only_diagnostic(m, "models.a.empty.include").message, "the list is empty"));
    CHECK(contains(only_diagnostic(m, "models.a.both.files").message, "\"file\" and \"files\" cannot be combined"));
    CHECK(
        contains(only_diagnostic(m, "models.a.mixed.include").message, "\"files\" and \"include\" cannot be combined"));
    CHECK(contains(only_diagnostic(m, "models.a.exclude-only.exclude").message, "exclude needs include"));
    CHECK(contains(only_diagnostic(m, "models.a.bad-item.files[1]").message, "expected a string, got an integer"));
    CHECK(contains(only_diagnostic(m, "models.a.bad-item.files[2]").message, "\"..\""));
    CHECK(contains(only_diagnostic(m, "models.a.bad-item.files[3]").message, "listed twice"));
    CHECK(contains(only_diagnostic(m, "models.a.renamed.filename").message, "keeps the repo's names"));
    auto nothing = only_diagnostic(m, "models.a.nothing");
    CHECK(contains(nothing.message, "missing required key \"file\""));
    CHECK(contains(nothing.message, "include = [\"*\"] for the whole repo"));
    CHECK(m.entries.empty());
}

// ---------------------------------------------------------------- examples/configs

TEST_CASE("config: every example in examples/configs parses, and its categories exist in its layout") {
    const auto folder = std::filesystem::path(PROVISION_SOURCE_DIR) / "examples" / "configs";
    std::size_t checked = 0;
    for (const auto& item : std::filesystem::directory_iterator(folder)) {
        if (item.path().extension() != ".toml") continue;
        CAPTURE(item.path().filename().string());
        std::ifstream in(item.path(), std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        auto m =
            provision::parse_config(text.str(), item.path().filename().string(), env_of({{"WORKSPACE", "/workspace"}}));
        INFO(m.error_text());
        REQUIRE(m.ok());
        CHECK(m.entries.size() >= 5);
        auto layout =
            provision::Layout::by_name(m.settings.layout.empty() ? "sdnext" : m.settings.layout, "/workspace");
        REQUIRE(layout);
        for (const auto& [category, target] : m.settings.directories) layout->add(category, target);
        for (const auto& entry : m.entries) {
            CAPTURE(entry.key_path);
            if (entry.category != "auto") CHECK(layout->folder_for(entry.category));
            if (entry.source == SourceKind::huggingface) CHECK((!entry.file.empty() || entry.is_multi_file()));
            if (entry.source == SourceKind::civitai) CHECK((!entry.version_id.empty() || !entry.model_id.empty()));
        }
        ++checked;
    }
    CHECK(checked >= 2);  // comfyui.toml and flux.toml at least
}

}  // namespace suite_config
