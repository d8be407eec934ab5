// SPDX-License-Identifier: MIT
#include "common.hpp"
#include "support/hf_emulator.hpp"
#include "support/run_process.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <chrono>
#include <thread>
#include <vector>

namespace suite_huggingface {  // apart from the suites compiled with it (tests/meson.build)

using provision::DownloadPlan;
using provision::Entry;
using provision::EntryOutcome;
using provision::errc;
using provision::HttpClient;
using provision::ProvisioningSystem;
using provision::ProvisionOptions;
using provision::ResolveContext;
using provision_test::HubAccess;
using provision_test::HubEmulator;
using provision_test::HubFile;
using provision_test::HubStorage;
using provision_test::HubToken;
using provision_test::TempDir;
using provision_test::test_bytes;

namespace hf = provision::sources::hf;

namespace {

const std::string token = "hf_emulatorTokenDoNotLeak0123456789";

Entry hf_entry(const std::string& repo, const std::string& file,
               const std::string& key_path = "models.checkpoints.test") {
    Entry entry;
    entry.source = provision::SourceKind::huggingface;
    entry.category = "checkpoints";
    entry.name = "test";
    entry.key_path = key_path;
    entry.repo = repo;
    entry.file = file;
    return entry;
}

/// An HttpClient routed to the emulator and a context carrying (or not) the token.
struct Resolver {
    HttpClient http;
    ResolveContext context;
    Resolver(const HubEmulator& hub, const std::string& hf_token,
             const std::string& endpoint = "https://huggingface.co")
        : http(hub.http_options()), context{http, credentials(hf_token), endpoint} {}
    static provision::Credentials credentials(const std::string& hf_token) {
        provision::Credentials credentials;
        credentials.hf_token = hf_token;
        return credentials;
    }
    provision::Result<DownloadPlan> resolve(const Entry& entry) { return provision::resolve_entry(entry, context); }
};

ProvisionOptions options_for(const TempDir& workspace, const HubEmulator& hub, const std::string& hf_token) {
    ProvisionOptions options;
    options.workspace = workspace.path();
    options.http = hub.http_options();
    options.credentials.hf_token = hf_token;
    options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    return options;
}

std::string hf_config(const std::string& key, const std::string& repo, const std::string& file,
                      const std::string& extra = "") {
    return "[models." + key + "]\nsource = \"huggingface\"\nrepo = \"" + repo + "\"\nfile = \"" + file + "\"\n" +
           extra + "\n";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<provision_test::RecordedRequest> requests_with_method(provision_test::LoopbackServer& server,
                                                                  const std::string& method) {
    std::vector<provision_test::RecordedRequest> out;
    for (const auto& request : server.requests())
        if (request.method == method) out.push_back(request);
    return out;
}

/// GETs a plan's URL the way the downloader does (plan headers, scoped headers, redirects followed).
provision::Result<provision::HttpResponse> fetch_plan(HttpClient& http, const DownloadPlan& plan,
                                                      std::vector<provision::Header> extra = {}) {
    provision::HttpRequest request;
    request.url = plan.url;
    request.headers = plan.headers;
    for (auto& header : extra) request.headers.push_back(header);
    request.scoped_headers = plan.scoped_headers;
    return http.fetch(request);
}

}  // namespace

// ---------------------------------------------------------------------------
// small functions

TEST_CASE("huggingface: resolve URLs follow the Hub's encoding, including its awful-filename test vector") {
    CHECK(hf::resolve_url("https://huggingface.co", "model", "gpt2", "main",
                          "subfolder/to?/awful?filename%you:should,never.give") ==
          "https://huggingface.co/gpt2/resolve/main/subfolder/to%3F/awful%3Ffilename%25you%3Ashould%2Cnever.give");
    // the revision is one segment: every '/' is encoded
    CHECK(hf::resolve_url("https://huggingface.co", "model", "org/name", "refs/pr/1", "a b/c.safetensors") ==
          "https://huggingface.co/org/name/resolve/refs%2Fpr%2F1/a%20b/c.safetensors");
    CHECK(hf::resolve_url("https://huggingface.co/", "dataset", "org/data", "v1.0", "train/x.parquet") ==
          "https://huggingface.co/datasets/org/data/resolve/v1.0/train/x.parquet");
    CHECK(hf::resolve_url("https://mirror.test/hf//", "space", "org/app", "main", "app.py") ==
          "https://mirror.test/hf/spaces/org/app/resolve/main/app.py");
    CHECK(hf::endpoint_base("") == "https://huggingface.co");
    CHECK(hf::repo_page_url("dataset", "org/data") == "https://huggingface.co/datasets/org/data");
}

TEST_CASE("huggingface: ETags are normalised and classified") {
    std::string sha256(64, 'a');
    std::string sha1(40, 'b');
    CHECK(hf::normalize_etag("\"" + sha256 + "\"") == sha256);
    CHECK(hf::normalize_etag("W/\"" + sha1 + "\"") == sha1);
    CHECK(hf::normalize_etag("  \"ABCDEF0123\" ") == "abcdef0123");
    CHECK(hf::normalize_etag(sha1) == sha1);
    CHECK(hf::normalize_etag("\"mirror-Tag\"") == "mirror-Tag");
    CHECK(hf::classify_etag(sha256) == hf::EtagKind::sha256);
    CHECK(hf::classify_etag(sha1) == hf::EtagKind::git_sha1);
    CHECK(hf::classify_etag("mirror-tag") == hf::EtagKind::opaque);
    CHECK(hf::classify_etag(std::string(64, 'g')) == hf::EtagKind::opaque);
}

TEST_CASE("huggingface: git blob SHA-1 matches git's own test vector (toolkit and emulator alike)") {
    const std::string expected = "b45ef6fec89518d314f546fd6c3025367b721684";  // git hash-object of "Hello, World!"
    CHECK(provision_test::git_blob_sha1_of("Hello, World!") == expected);
    auto hasher = provision::detail::Hasher::git_blob_sha1(13);
    hasher.update("Hello, World!", 13);
    CHECK(hasher.hex_digest() == expected);
}

TEST_CASE("huggingface: RateLimit, RateLimit-Policy and Retry-After are read") {
    provision::HttpResponse response;
    response.status = 429;
    response.headers = {{"RateLimit", "\"api\";r=0;t=42"},
                        {"RateLimit-Policy", "\"fixed window\";\"api\";q=500;w=300"}};
    auto info = hf::parse_rate_limit(response);
    CHECK(info.bucket == "api");
    CHECK(info.remaining == 0u);
    CHECK(info.reset_seconds == 42u);
    CHECK(info.quota == 500u);
    CHECK(info.window_seconds == 300u);

    provision::HttpResponse plain;
    plain.status = 429;
    plain.headers = {{"Retry-After", "17"}};
    plain.url = provision::parse_url("https://huggingface.co/o/n/resolve/main/f").value();
    CHECK(hf::parse_rate_limit(plain).retry_after == 17u);
    hf::FileRef ref{"models.lora.x", "o/n", "model", "main", "f", "https://huggingface.co", false};
    auto error = hf::explain_hub_answer(ref, plain);
    CHECK(error.code == errc::rate_limited);
    CHECK(contains(error.message, "run again in 17 s"));
    CHECK(contains(error.message, "HF_TOKEN"));
}

TEST_CASE("huggingface: metadata prefers the linked headers, and a redirect's Content-Length is not the file's size") {
    hf::FileRef ref{"models.lora.x", "o/n", "model", "main", "f.bin", "https://huggingface.co", false};
    std::string sha256(64, 'a');
    std::string commit(40, 'c');
    provision::HttpResponse redirect;
    redirect.status = 302;
    redirect.url = provision::parse_url("https://huggingface.co/o/n/resolve/main/f.bin").value();
    redirect.headers = {{"X-Repo-Commit", commit},
                        {"ETag", "\"" + std::string(40, 'b') + "\""},
                        {"X-Linked-Etag", "\"" + sha256 + "\""},
                        {"Content-Length", "1097"},
                        {"Location", "https://cdn-lfs.hf.co/x?Signature=s"}};
    auto metadata = hf::read_file_metadata(ref, redirect);
    REQUIRE(metadata);
    CHECK(metadata->commit == commit);
    CHECK(metadata->etag == sha256);
    CHECK_FALSE(metadata->size);  // 1097 is the redirect body
    CHECK(metadata->location == "https://cdn-lfs.hf.co/x?Signature=s");
    redirect.headers.push_back({"X-Linked-Size", "123456789012"});
    CHECK(hf::read_file_metadata(ref, redirect)->size == 123456789012u);

    provision::HttpResponse direct;
    direct.status = 200;
    direct.url = redirect.url;
    direct.headers = {
        {"X-Repo-Commit", commit}, {"ETag", "W/\"" + std::string(40, 'b') + "\""}, {"Content-Length", "42"}};
    metadata = hf::read_file_metadata(ref, direct);
    REQUIRE(metadata);
    CHECK(metadata->etag == std::string(40, 'b'));
    CHECK(metadata->size == 42u);
    CHECK_FALSE(metadata->location);

    direct.headers = {{"X-Repo-Commit", commit}, {"Content-Length", "42"}};
    auto no_etag = hf::read_file_metadata(ref, direct);
    REQUIRE_FALSE(no_etag);
    CHECK(contains(no_etag.error().message, "no ETag"));
    CHECK(contains(no_etag.error().message, "models.lora.x"));
}

TEST_CASE("huggingface: pinning a resolve URL to the commit replaces only the revision segment") {
    auto url =
        provision::parse_url("https://huggingface.co/resolve/resolve/resolve/refs%2Fpr%2F3/resolve/a%20b.bin").value();
    auto pinned = hf::pin_to_commit(url, "resolve/a b.bin", std::string(40, 'c'));
    REQUIRE(pinned);
    CHECK(pinned->path == "/resolve/resolve/resolve/" + std::string(40, 'c') + "/resolve/a%20b.bin");
    CHECK_FALSE(hf::pin_to_commit(provision::parse_url("https://huggingface.co/x/y.bin").value(), "y.bin", "c"));
}

TEST_CASE("huggingface: a commit header that is not a commit hash is never pinned into the URL") {
    // Found by fuzz_huggingface: "X-Repo-Commit: ." made /resolve/./vae/x, which
    // a server reads as /resolve/vae/x: another file than the one asked for.
    auto url = provision::parse_url("https://huggingface.co/o/n/resolve/main/vae/x.safetensors").value();
    for (const std::string& commit : std::vector<std::string>{".", "..", "", "main", std::string(39, 'a'),
                                                              std::string(40, 'g'), std::string(40, 'a') + "/.."}) {
        CAPTURE(commit);
        CHECK_FALSE(hf::pin_to_commit(url, "vae/x.safetensors", commit));
    }
    auto pinned = hf::pin_to_commit(url, "vae/x.safetensors", std::string(40, 'A'));
    REQUIRE(pinned);
    CHECK(pinned->path == "/o/n/resolve/" + std::string(40, 'A') + "/vae/x.safetensors");
}

// ---------------------------------------------------------------------------
// resolving against the emulated Hub

TEST_CASE(
    "huggingface: an LFS file resolves to the signed CDN link with the linked metadata, and the token stays on the "
    "Hub") {
    HubEmulator hub;
    std::string content = test_bytes(300000, 11);
    hub.add_repo("stabilityai/sdxl");
    std::string commit = hub.commit("stabilityai/sdxl", {{"unet/model.safetensors", HubFile{content}}});
    hub.add_token(token, HubToken{"alice"});
    Resolver resolver(hub, token);

    auto plan = resolver.resolve(hf_entry("stabilityai/sdxl", "unet/model.safetensors"));
    REQUIRE_MESSAGE(plan, plan.error().message);
    CHECK(plan->url.host == "cdn-lfs.hf.co");
    CHECK(plan->scoped_headers.empty());
    CHECK(plan->headers.empty());
    CHECK(plan->size == content.size());  // X-Linked-Size, not the redirect body's Content-Length
    CHECK(plan->sha256 == provision_test::sha256_of(content));
    CHECK(plan->git_sha1.empty());
    CHECK(plan->validator == plan->sha256);
    CHECK(plan->file_name == "unet/model.safetensors");
    CHECK(plan->identity == "hf:model/stabilityai/sdxl@" + commit + ":unet/model.safetensors");
    CHECK(plan->key_path == "models.checkpoints.test");

    // one HEAD, with the token and identity encoding, on the resolve URL; nothing to the CDN yet
    auto heads = hub.hub().requests();
    REQUIRE(heads.size() == 1);
    CHECK(heads[0].method == "HEAD");
    CHECK(heads[0].target == "/stabilityai/sdxl/resolve/main/unet/model.safetensors");
    CHECK(heads[0].header("Authorization") == "Bearer " + token);
    CHECK(heads[0].header("Accept-Encoding") == "identity");
    CHECK(hub.cdn().requests().empty());

    // the CDN serves the link (and byte ranges of it) without any Authorization header
    auto whole = fetch_plan(resolver.http, plan.value());
    REQUIRE(whole);
    CHECK(whole->status == 200);
    CHECK(whole->body == content);
    auto range = fetch_plan(resolver.http, plan.value(), {{"Range", "bytes=1000-1999"}});
    REQUIRE(range);
    CHECK(range->status == 206);
    CHECK(range->body == content.substr(1000, 1000));
    for (const auto& request : hub.cdn().requests()) CHECK_FALSE(request.has_header("Authorization"));
}

TEST_CASE(
    "huggingface: a small git file is fetched from the Hub pinned to the commit, with its git SHA-1 and the token") {
    HubEmulator hub;
    std::string json = "{\"_class_name\": \"StableDiffusionXLPipeline\"}\n";
    hub.add_repo("org/pipe");
    std::string commit =
        hub.commit("org/pipe", {{"model_index.json", HubFile(json, HubStorage::git).with_weak_etag()}});
    hub.add_token(token, HubToken{"alice"});
    Resolver resolver(hub, token);

    auto plan = resolver.resolve(hf_entry("org/pipe", "model_index.json"));
    REQUIRE_MESSAGE(plan, plan.error().message);
    CHECK(plan->url.str() == "https://huggingface.co/org/pipe/resolve/" + commit + "/model_index.json");
    CHECK(plan->git_sha1 == provision_test::git_blob_sha1_of(json));  // from a weak W/"..." ETag
    CHECK(plan->sha256.empty());
    CHECK(plan->size == json.size());
    REQUIRE(plan->scoped_headers.size() == 1);
    CHECK(plan->scoped_headers[0] == provision::Header{"Authorization", "Bearer " + token});
    CHECK(plan->identity == "hf:model/org/pipe@" + commit + ":model_index.json");

    // Moving main afterwards does not change what the plan downloads.
    hub.commit("org/pipe", {{"model_index.json", HubFile{"{}", HubStorage::git}}});
    auto got = fetch_plan(resolver.http, plan.value());
    REQUIRE(got);
    CHECK(got->status == 200);
    CHECK(got->body == json);
    CHECK(hub.hub().requests().back().header("Authorization") == "Bearer " + token);
}

TEST_CASE("huggingface: Xet-backed files go to cas-bridge.xethub.hf.co without the token") {
    HubEmulator hub;
    std::string content = test_bytes(120000, 5);
    hub.add_repo("black-forest-labs/FLUX.1-dev", "model", HubAccess::gated);
    hub.commit("black-forest-labs/FLUX.1-dev", {{"ae.safetensors", HubFile{content, HubStorage::xet}}});
    hub.grant("black-forest-labs/FLUX.1-dev", "alice");
    hub.add_token(token, HubToken{"alice"});
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, hub, token)};
    auto report = system.provision_from_text(
        hf_config("vae.flux-vae", "black-forest-labs/FLUX.1-dev", "ae.safetensors", "gated = true"), "flux.toml");
    REQUIRE(report.entries.size() == 1);
    INFO(report.entries[0].error.message);
    REQUIRE(report.ok());
    CHECK(provision_test::read_whole_file(workspace.path() / "sdnext/models/VAE/ae.safetensors") == content);

    auto cdn = hub.cdn().requests();
    REQUIRE_FALSE(cdn.empty());
    for (const auto& request : cdn) {
        CHECK(request.header("Host") == "cas-bridge.xethub.hf.co");
        CHECK_FALSE(request.has_header("Authorization"));
    }
    // Every Hub request (whoami and the metadata HEAD) carried the token.
    auto hub_requests = hub.hub().requests();
    REQUIRE(hub_requests.size() == 2);
    CHECK(hub_requests[0].target == "/api/whoami-v2");
    for (const auto& request : hub_requests) CHECK(request.header("Authorization") == "Bearer " + token);
}

TEST_CASE("huggingface: end to end, files keep their folders under the category folder unless filename is given") {
    HubEmulator hub;
    std::string unet = test_bytes(400000, 1);
    std::string config = "{\"a\": 1}\n";
    hub.add_repo("org/sdxl");
    hub.commit("org/sdxl", {{"unet/diffusion_pytorch_model.safetensors", HubFile{unet}},
                            {"unet/config.json", HubFile{config, HubStorage::git}}});
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, hub, "")};
    std::string toml = hf_config("checkpoints.unet", "org/sdxl", "unet/diffusion_pytorch_model.safetensors") +
                       hf_config("checkpoints.unet-config", "org/sdxl", "unet/config.json") +
                       hf_config("lora.renamed", "org/sdxl", "unet/diffusion_pytorch_model.safetensors",
                                 "filename = \"flat.safetensors\"");
    auto report = system.provision_from_text(toml, "sdxl.toml");
    for (const auto& entry : report.entries) INFO(entry.key_path << ": " << entry.error.message);
    REQUIRE(report.ok());
    auto models = workspace.path() / "sdnext/models";
    CHECK(provision_test::read_whole_file(models / "Stable-diffusion/unet/diffusion_pytorch_model.safetensors") ==
          unet);
    CHECK(provision_test::read_whole_file(models / "Stable-diffusion/unet/config.json") == config);
    CHECK(provision_test::read_whole_file(models / "Lora/flat.safetensors") == unet);
    // anonymous: no Authorization anywhere, and no whoami request without gated entries
    for (const auto& request : hub.hub().requests()) CHECK_FALSE(request.has_header("Authorization"));
    CHECK(hub.hub().count("/api/") == 0);
}

TEST_CASE(
    "huggingface: wrong bytes are caught by the SHA-256 (LFS) and by the git SHA-1 (small files); nothing is "
    "installed") {
    HubEmulator hub;
    std::string good = test_bytes(50000, 2);
    std::string bad = good;
    bad[25000] ^= 0x40;  // same size, one bit off
    std::string json = "{\"x\": 1}\n";
    hub.add_repo("org/broken");
    hub.commit("org/broken", {{"model.safetensors", HubFile(good).serving(bad)},
                              {"config.json", HubFile(json, HubStorage::git).serving("{\"x\": 2}\n")}});
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, hub, "")};
    auto report = system.provision_from_text(hf_config("checkpoints.model", "org/broken", "model.safetensors") +
                                                 hf_config("checkpoints.config", "org/broken", "config.json"),
                                             "broken.toml");
    REQUIRE(report.entries.size() == 2);
    CHECK(report.entries[0].status == EntryOutcome::Status::failed);
    CHECK(report.entries[0].error.code == errc::integrity);
    CHECK(contains(report.entries[0].error.message, "SHA-256"));
    CHECK(report.entries[1].status == EntryOutcome::Status::failed);
    CHECK(report.entries[1].error.code == errc::integrity);
    CHECK(contains(report.entries[1].error.message, "git SHA-1"));
    auto folder = workspace.path() / "sdnext/models/Stable-diffusion";
    CHECK_FALSE(std::filesystem::exists(folder / "model.safetensors"));
    CHECK_FALSE(std::filesystem::exists(folder / "config.json"));
    CHECK(report.exit_code() == provision::exit_code(errc::integrity));
}

TEST_CASE(
    "huggingface: renamed repos and letter-case differences follow the Hub's relative redirects, with the token") {
    HubEmulator hub;
    std::string content = test_bytes(20000, 3);
    hub.add_repo("NewOrg/Model");
    std::string commit = hub.commit("NewOrg/Model", {{"m.safetensors", HubFile{content}}});
    hub.rename("oldorg/model", "NewOrg/Model");
    hub.add_token(token, HubToken{"alice"});
    Resolver resolver(hub, token);

    for (const char* repo : {"oldorg/model", "neworg/model"}) {
        CAPTURE(repo);
        auto plan = resolver.resolve(hf_entry(repo, "m.safetensors"));
        REQUIRE_MESSAGE(plan, plan.error().message);
        CHECK(plan->url.host == "cdn-lfs.hf.co");
        CHECK(plan->sha256 == provision_test::sha256_of(content));
        CHECK(contains(plan->identity, commit));
    }
    auto requests = hub.hub().requests();
    REQUIRE(requests.size() == 4);
    CHECK(requests[0].target == "/oldorg/model/resolve/main/m.safetensors");
    CHECK(requests[1].target == "/NewOrg/Model/resolve/main/m.safetensors");
    CHECK(requests[2].target == "/neworg/model/resolve/main/m.safetensors");
    CHECK(requests[3].target == "/NewOrg/Model/resolve/main/m.safetensors");
    for (const auto& request : requests) {
        CHECK(request.method == "HEAD");
        CHECK(request.header("Authorization") == "Bearer " + token);  // private renamed repos need it on every hop
    }

    // A renamed repo's small file is pinned on the canonical path.
    hub.commit("NewOrg/Model", {{"config.json", HubFile{"{}", HubStorage::git}}});
    auto small = resolver.resolve(hf_entry("oldorg/model", "config.json"));
    REQUIRE_MESSAGE(small, small.error().message);
    CHECK(small->url.path.find("/NewOrg/Model/resolve/") == 0);
}

TEST_CASE("huggingface: revisions are sent encoded (refs/pr/N, tags, commits) and repo types get their prefix") {
    HubEmulator hub;
    std::string v1 = test_bytes(1000, 4);
    std::string pr = test_bytes(1200, 5);
    hub.add_repo("org/m");
    std::string first = hub.commit("org/m", {{"w.bin", HubFile{v1}}}, "v1.0");
    hub.commit("org/m", {{"w.bin", HubFile{pr}}}, "refs/pr/7");
    hub.add_repo("org/data", "dataset");
    hub.commit("org/data", {{"train/part 1.parquet", HubFile{v1}}}, "main", "dataset");
    hub.add_repo("org/app", "space");
    hub.commit("org/app", {{"weights.bin", HubFile{pr}}}, "main", "space");
    Resolver resolver(hub, "");

    auto entry = hf_entry("org/m", "w.bin");
    entry.revision = "refs/pr/7";
    auto plan = resolver.resolve(entry);
    REQUIRE_MESSAGE(plan, plan.error().message);
    CHECK(plan->sha256 == provision_test::sha256_of(pr));
    CHECK(hub.hub().requests().back().target == "/org/m/resolve/refs%2Fpr%2F7/w.bin");

    entry.revision = first;
    plan = resolver.resolve(entry);
    REQUIRE_MESSAGE(plan, plan.error().message);
    CHECK(plan->sha256 == provision_test::sha256_of(v1));

    auto dataset = hf_entry("org/data", "train/part 1.parquet");
    dataset.repo_type = "dataset";
    plan = resolver.resolve(dataset);
    REQUIRE_MESSAGE(plan, plan.error().message);
    CHECK(hub.hub().requests().back().target == "/datasets/org/data/resolve/main/train/part%201.parquet");
    CHECK(plan->identity.find("hf:dataset/org/data@") == 0);

    auto space = hf_entry("org/app", "weights.bin");
    space.repo_type = "space";
    plan = resolver.resolve(space);
    REQUIRE_MESSAGE(plan, plan.error().message);
    CHECK(hub.hub().requests().back().target == "/spaces/org/app/resolve/main/weights.bin");
}

TEST_CASE("huggingface: HF_ENDPOINT points every Hub request (and the token) at the mirror") {
    HubEmulator hub({"hf-mirror.test"});
    std::string content = test_bytes(5000, 6);
    hub.add_repo("org/m");
    hub.commit("org/m", {{"config.json", HubFile{content, HubStorage::git}}});
    hub.add_token(token, HubToken{"alice"});
    Resolver resolver(hub, token, "https://hf-mirror.test/");
    auto plan = resolver.resolve(hf_entry("org/m", "config.json"));
    REQUIRE_MESSAGE(plan, plan.error().message);
    CHECK(plan->url.host == "hf-mirror.test");
    CHECK(plan->scoped_headers.size() == 1);  // the download is on the mirror itself
    auto requests = hub.hub().requests();
    REQUIRE(requests.size() == 1);
    CHECK(requests[0].header("Host") == "hf-mirror.test");
    CHECK(requests[0].target == "/org/m/resolve/main/config.json");

    Resolver broken(hub, token, "not a url");
    auto refused = broken.resolve(hf_entry("org/m", "config.json"));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == errc::usage);
    CHECK(contains(refused.error().message, "HF_ENDPOINT"));
}

// ---------------------------------------------------------------------------
// errors: each names the entry, what it asked for and what to do

namespace {

struct ErrorCase {
    const char* name;
    std::string token;
    Entry entry;
    errc code;
    std::vector<std::string> must_mention;
};

}  // namespace

TEST_CASE("huggingface: every Hub error gets its own message naming the entry and the fix, with the request id") {
    HubEmulator hub;
    hub.add_repo("org/public");
    hub.commit("org/public", {{"model.safetensors", HubFile{test_bytes(100, 1)}}});
    hub.add_repo("org/gated", "model", HubAccess::gated);
    hub.commit("org/gated", {{"model.safetensors", HubFile{test_bytes(100, 2)}}});
    hub.add_repo("org/private", "model", HubAccess::private_repo);
    hub.commit("org/private", {{"model.safetensors", HubFile{test_bytes(100, 3)}}});
    hub.add_repo("org/banned", "model", HubAccess::disabled);
    hub.commit("org/banned", {{"model.safetensors", HubFile{test_bytes(100, 4)}}});
    hub.add_token(token, HubToken{"alice"});
    const std::string revoked = "hf_revokedTokenAlsoSecret42";

    auto with_revision = [](Entry entry, const std::string& revision) {
        entry.revision = revision;
        return entry;
    };
    std::vector<ErrorCase> cases = {
        {"gated, anonymous",
         "",
         hf_entry("org/gated", "model.safetensors", "models.vae.gated-anon"),
         errc::auth,
         {"models.vae.gated-anon", "org/gated", "gated", "HF_TOKEN is not set", "https://huggingface.co/org/gated",
          "https://huggingface.co/settings/tokens", "HTTP 401"}},
        {"gated, not approved",
         token,
         hf_entry("org/gated", "model.safetensors", "models.vae.gated-pending"),
         errc::auth,
         {"models.vae.gated-pending", "org/gated", "not been granted access", "accept its terms",
          "https://huggingface.co/org/gated", "HTTP 403"}},
        {"private or missing, anonymous",
         "",
         hf_entry("org/private", "model.safetensors", "models.lora.private"),
         errc::not_found,
         {"models.lora.private", "org/private", "not found", "private", "set HF_TOKEN", "repo_type", "HTTP 401"}},
        {"missing, with token",
         token,
         hf_entry("org/nothing", "model.safetensors", "models.lora.nothing"),
         errc::not_found,
         {"models.lora.nothing", "org/nothing", "not found, or the account of HF_TOKEN cannot see it", "HTTP 404"}},
        {"missing file",
         "",
         hf_entry("org/public", "unet/missing.safetensors", "models.lora.nofile"),
         errc::not_found,
         {"models.lora.nofile", "\"unet/missing.safetensors\"", "org/public", "revision \"main\"", "(commit ",
          "https://huggingface.co/org/public/tree/main", "case-sensitive"}},
        {"missing revision",
         "",
         with_revision(hf_entry("org/public", "model.safetensors", "models.lora.norev"), "v9"),
         errc::not_found,
         {"models.lora.norev", "org/public", "no revision \"v9\"", "refs/pr/N", "40-character commit",
          "https://huggingface.co/org/public/tree/main"}},
        {"invalid token",
         revoked,
         hf_entry("org/public", "model.safetensors", "models.lora.badtoken"),
         errc::auth,
         {"models.lora.badtoken", "rejected HF_TOKEN as invalid", "https://huggingface.co/settings/tokens",
          "HTTP 401"}},
        {"disabled repo",
         "",
         hf_entry("org/banned", "model.safetensors", "models.lora.banned"),
         errc::not_found,
         {"models.lora.banned", "org/banned", "disabled", "remove the entry", "HTTP 403"}},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        Resolver resolver(hub, c.token);
        auto plan = resolver.resolve(c.entry);
        REQUIRE_FALSE(plan);
        const auto& error = plan.error();
        INFO(error.message);
        CHECK(error.code == c.code);
        for (const auto& part : c.must_mention) {
            CAPTURE(part);
            CHECK(contains(error.message, part));
        }
        CHECK(contains(error.message, "request id " + hub.request_ids().back()));
        CHECK_FALSE(contains(error.message, token));
        CHECK_FALSE(contains(error.message, revoked));
    }
}

TEST_CASE("huggingface: a 429 says which quota, when to retry and that a token helps") {
    HubEmulator hub;
    hub.add_repo("org/m");
    hub.commit("org/m", {{"a.bin", HubFile{"x"}}});
    hub.set_rate_limited(true);
    Resolver resolver(hub, "");
    auto plan = resolver.resolve(hf_entry("org/m", "a.bin", "models.lora.busy"));
    REQUIRE_FALSE(plan);
    CHECK(plan.error().code == errc::rate_limited);
    for (const char* part : {"models.lora.busy", "\"resolvers\" quota of 3000 requests per 300 s", "run again in 55 s",
                             "HF_TOKEN", "HTTP 429", "\"a.bin\" from org/m"}) {
        CAPTURE(part);
        CHECK(contains(plan.error().message, part));
    }
    CHECK(contains(plan.error().message, hub.request_ids().back()));
}

TEST_CASE("huggingface: an answer without X-Repo-Commit is blamed on whatever sits between us and the Hub") {
    // A captive portal or proxy that answers for huggingface.co with its own page.
    auto portal = provision_test::LoopbackServer::https({"huggingface.co"});
    portal->server().Get(R"(/.*)", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("<html><body>Please accept the terms of use of this Wi-Fi</body></html>", "text/html");
    });
    provision::HttpOptions options;
    options.ca_files = {provision_test::test_ca().ca_cert_path};
    options.connect_to = {
        provision::ConnectTo{"huggingface.co", std::nullopt, "127.0.0.1", static_cast<std::uint16_t>(portal->port())}};
    HttpClient http{options};
    provision::Credentials credentials;
    credentials.hf_token = token;
    ResolveContext context{http, credentials};
    auto plan = provision::resolve_entry(hf_entry("org/m", "model.safetensors", "models.vae.portal"), context);
    REQUIRE_FALSE(plan);
    CHECK(plan.error().code == errc::network);
    for (const char* part :
         {"models.vae.portal", "did not come from Hugging Face", "X-Repo-Commit", "proxy", "captive portal"}) {
        CAPTURE(part);
        CHECK(contains(plan.error().message, part));
    }
    CHECK_FALSE(contains(plan.error().message, token));
}

TEST_CASE("huggingface: a redirect to plain http is refused, and the config's sha256 must agree with the Hub's") {
    std::string digest(64, 'd');
    auto fake = provision_test::LoopbackServer::https({"huggingface.co"});
    fake->server().Get(R"(/.*)", [&](const httplib::Request&, httplib::Response& res) {
        res.status = 302;
        res.set_header("X-Repo-Commit", std::string(40, 'c'));
        res.set_header("X-Linked-Etag", "\"" + digest + "\"");
        res.set_header("X-Linked-Size", "10");
        res.set_header("Location", "http://cdn-lfs.hf.co/repos/x?Signature=s");
    });
    provision::HttpOptions options;
    options.ca_files = {provision_test::test_ca().ca_cert_path};
    options.connect_to = {
        provision::ConnectTo{"huggingface.co", std::nullopt, "127.0.0.1", static_cast<std::uint16_t>(fake->port())}};
    HttpClient http{options};
    ResolveContext context{http, {}};
    auto plan = provision::resolve_entry(hf_entry("org/m", "m.bin", "models.lora.downgrade"), context);
    REQUIRE_FALSE(plan);
    CHECK(plan.error().code == errc::unsafe);
    CHECK(contains(plan.error().message, "models.lora.downgrade"));
    CHECK(contains(plan.error().message, "unencrypted"));

    HubEmulator hub;
    hub.add_repo("org/m");
    std::string content = test_bytes(100, 9);
    hub.commit("org/m", {{"m.bin", HubFile{content}}});
    Resolver resolver(hub, "");
    auto entry = hf_entry("org/m", "m.bin", "models.lora.pinned");
    entry.sha256 = std::string(64, 'e');
    auto conflict = resolver.resolve(entry);
    REQUIRE_FALSE(conflict);
    CHECK(conflict.error().code == errc::integrity);
    CHECK(contains(conflict.error().message, entry.sha256));
    CHECK(contains(conflict.error().message, provision_test::sha256_of(content)));
    entry.sha256 = provision_test::sha256_of(content);
    CHECK(resolver.resolve(entry));
}

// ---------------------------------------------------------------------------
// expiring links: explain and refresh

TEST_CASE("huggingface: an expired CDN link is explained, and refresh gets a fresh link for the same commit") {
    HubEmulator hub;
    std::string first = test_bytes(80000, 21);
    hub.add_repo("org/m");
    std::string commit = hub.commit("org/m", {{"big.safetensors", HubFile{first}}});
    hub.add_token(token, HubToken{"alice"});
    Resolver resolver(hub, token);
    auto plan = resolver.resolve(hf_entry("org/m", "big.safetensors", "models.checkpoints.big"));
    REQUIRE_MESSAGE(plan, plan.error().message);
    REQUIRE(plan->explain);
    REQUIRE(plan->refresh);

    hub.expire_signed_links();
    // the branch moves on meanwhile: a resumed download must still get the first file
    hub.commit("org/m", {{"big.safetensors", HubFile{test_bytes(80000, 22)}}});
    // and the Hub has closed the idle connection the first request left in the
    // client's pool (the loopback server keeps idle connections for one second)
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));

    auto expired = fetch_plan(resolver.http, plan.value(), {{"Range", "bytes=40000-"}});
    REQUIRE(expired);
    CHECK(expired->status == 403);
    auto explained = plan->explain(expired.value());
    CHECK(explained.code == errc::network);
    for (const char* part : {"models.checkpoints.big", "\"big.safetensors\" from org/m",
                             "cdn-lfs.hf.co answered HTTP 403", "expire", "run again"}) {
        CAPTURE(part);
        CHECK(contains(explained.message, part));
    }

    auto fresh = plan->refresh();
    REQUIRE_MESSAGE(fresh, fresh.error().message);
    CHECK(fresh->url.str() != plan->url.str());
    CHECK(fresh->sha256 == plan->sha256);
    CHECK(fresh->identity == plan->identity);
    CHECK(hub.hub().requests().back().target == "/org/m/resolve/" + commit + "/big.safetensors");
    CHECK(hub.hub().requests().back().header("Authorization") == "Bearer " + token);
    auto resumed = fetch_plan(resolver.http, fresh.value(), {{"Range", "bytes=40000-"}});
    REQUIRE(resumed);
    CHECK(resumed->status == 206);
    CHECK(resumed->body == first.substr(40000));
    for (const auto& request : hub.cdn().requests()) CHECK_FALSE(request.has_header("Authorization"));
    // the refreshed plan can refresh again
    REQUIRE(fresh->refresh);
    CHECK(fresh->refresh());
}

TEST_CASE("huggingface: download-time answers from the Hub itself use the Hub's wording") {
    HubEmulator hub;
    hub.add_repo("org/m");
    hub.commit("org/m", {{"config.json", HubFile{"{}", HubStorage::git}}});
    hub.add_token(token, HubToken{"alice"});
    Resolver resolver(hub, token);
    auto plan = resolver.resolve(hf_entry("org/m", "config.json", "models.vae.cfg"));
    REQUIRE_MESSAGE(plan, plan.error().message);
    // the token is revoked between the metadata request and the download
    Resolver revoked(hub, "hf_nowRevoked");
    auto answer = fetch_plan(revoked.http, [&] {
        auto copy = plan.value();
        copy.scoped_headers = {{"Authorization", "Bearer hf_nowRevoked"}};
        return copy;
    }());
    REQUIRE(answer);
    CHECK(answer->status == 401);
    auto error = plan->explain(answer.value());
    CHECK(error.code == errc::auth);
    CHECK(contains(error.message, "models.vae.cfg"));
    CHECK(contains(error.message, "rejected HF_TOKEN as invalid"));
}

// ---------------------------------------------------------------------------
// gated entries: the up-front token check

TEST_CASE("huggingface: without HF_TOKEN, gated entries fail up front with their reason while the others run") {
    HubEmulator hub;
    std::string open = test_bytes(3000, 31);
    hub.add_repo("org/open");
    hub.commit("org/open", {{"open.safetensors", HubFile{open}}});
    hub.add_repo("org/gated", "model", HubAccess::gated);
    hub.commit("org/gated", {{"g.safetensors", HubFile{test_bytes(3000, 32)}}});
    TempDir workspace;
    auto options = options_for(workspace, hub, "");
    std::vector<provision::Event> messages;
    std::mutex events_mutex;
    options.on_event = [&](const provision::Event& event) {
        std::lock_guard<std::mutex> lock(events_mutex);
        if (event.kind == provision::EventKind::message) messages.push_back(event);
    };
    ProvisioningSystem system{options};
    auto report =
        system.provision_from_text(hf_config("checkpoints.gated", "org/gated", "g.safetensors", "gated = true") +
                                       hf_config("checkpoints.open", "org/open", "open.safetensors"),
                                   "gated.toml");
    REQUIRE(report.entries.size() == 2);
    const auto& gated = report.entries[0];
    CHECK(gated.key_path == "models.checkpoints.gated");
    CHECK(gated.category == "checkpoints");
    CHECK(gated.source == provision::SourceKind::huggingface);
    CHECK(gated.status == EntryOutcome::Status::failed);
    CHECK(gated.error.code == errc::auth);
    for (const char* part : {"models.checkpoints.gated", "org/gated", "gated = true", "HF_TOKEN is not set",
                             "https://huggingface.co/org/gated", "https://huggingface.co/settings/tokens"}) {
        CAPTURE(part);
        CHECK(contains(gated.error.message, part));
    }
    CHECK(report.entries[1].status == EntryOutcome::Status::installed);
    CHECK(provision_test::read_whole_file(workspace.path() / "sdnext/models/Stable-diffusion/open.safetensors") ==
          open);
    CHECK(report.exit_code() == provision::exit_code(errc::auth));
    // nothing was asked of the Hub for the gated entry, and no whoami without a token
    CHECK(hub.hub().count("/org/gated/") == 0);
    CHECK(hub.hub().count("/api/whoami-v2") == 0);
    REQUIRE(messages.size() == 1);
    CHECK(messages[0].key_path == "models.checkpoints.gated");
    CHECK(messages[0].message == gated.error.message);
    auto log = provision_test::read_whole_file(workspace.path() / "logs/provision.log");
    CHECK(contains(log, "HF_TOKEN is not set"));
}

TEST_CASE("huggingface: an invalid HF_TOKEN fails the gated entries after one whoami request; the others still run") {
    HubEmulator hub;
    hub.add_repo("org/gated", "model", HubAccess::gated);
    hub.commit("org/gated", {{"g.safetensors", HubFile{test_bytes(3000, 41)}}});
    hub.add_repo("org/other-gated", "model", HubAccess::gated);
    hub.commit("org/other-gated", {{"h.safetensors", HubFile{test_bytes(3000, 42)}}});
    std::string plain = "plain bytes";
    auto file_server = provision_test::LoopbackServer::https();
    file_server->server().Get("/plain.bin", [&](const httplib::Request& req, httplib::Response& res) {
        file_server->serve_bytes(res, req, plain);
    });
    TempDir workspace;
    auto options = options_for(workspace, hub, "hf_expiredSecretToken");
    ProvisioningSystem system{options};
    auto report = system.provision_from_text(
        hf_config("checkpoints.one", "org/gated", "g.safetensors", "gated = true") +
            hf_config("checkpoints.two", "org/other-gated", "h.safetensors", "gated = true") +
            "[models.lora]\nplain = \"" + file_server->url("/plain.bin") + "\"\n",
        "bad-token.toml");
    REQUIRE(report.entries.size() == 3);
    for (std::size_t i : {0u, 1u}) {
        const auto& entry = report.entries[i];
        CAPTURE(entry.key_path);
        CHECK(entry.status == EntryOutcome::Status::failed);
        CHECK(entry.error.code == errc::auth);
        CHECK(contains(entry.error.message, entry.key_path));
        CHECK(contains(entry.error.message, i == 0 ? "org/gated" : "org/other-gated"));
        CHECK(contains(entry.error.message, "HF_TOKEN is not valid"));
        CHECK(contains(entry.error.message, "Invalid credentials in Authorization header"));
        CHECK(contains(entry.error.message, "https://huggingface.co/settings/tokens"));
        CHECK(contains(entry.error.message, "request id Root=1-hub-"));
        CHECK_FALSE(contains(entry.error.message, "hf_expiredSecretToken"));
    }
    CHECK(report.entries[2].status == EntryOutcome::Status::installed);
    auto requests = hub.hub().requests();
    REQUIRE(requests.size() == 1);
    CHECK(requests[0].target == "/api/whoami-v2");
    CHECK(requests[0].header("Authorization") == "Bearer hf_expiredSecretToken");
    CHECK(file_server->requests().size() == 1);
    CHECK_FALSE(file_server->requests()[0].has_header("Authorization"));  // HF_TOKEN goes to the Hub only
}

TEST_CASE("huggingface: a valid token lets gated entries through to the Hub, which words a missing approval itself") {
    HubEmulator hub;
    std::string approved = test_bytes(4000, 51);
    hub.add_repo("org/approved", "model", HubAccess::gated);
    hub.commit("org/approved", {{"a.safetensors", HubFile{approved}}});
    hub.grant("org/approved", "alice");
    hub.add_repo("org/pending", "model", HubAccess::gated);
    hub.commit("org/pending", {{"p.safetensors", HubFile{test_bytes(4000, 52)}}});
    hub.add_token(token, HubToken{"alice"});
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, hub, token)};
    auto report =
        system.provision_from_text(hf_config("lora.approved", "org/approved", "a.safetensors", "gated = true") +
                                       hf_config("lora.pending", "org/pending", "p.safetensors", "gated = true"),
                                   "gated.toml");
    REQUIRE(report.entries.size() == 2);
    INFO(report.entries[0].error.message);
    CHECK(report.entries[0].status == EntryOutcome::Status::installed);
    CHECK(provision_test::read_whole_file(workspace.path() / "sdnext/models/Lora/a.safetensors") == approved);
    CHECK(report.entries[1].status == EntryOutcome::Status::failed);
    CHECK(report.entries[1].error.code == errc::auth);
    CHECK(contains(report.entries[1].error.message, "https://huggingface.co/org/pending"));
    CHECK(contains(report.entries[1].error.message, "not been granted access"));
    CHECK(hub.hub().count("/api/whoami-v2") == 1);
}

TEST_CASE("huggingface: a fine-grained token that cannot read gated repos fails gated entries, except its own") {
    HubEmulator hub;
    std::string own = test_bytes(2000, 61);
    hub.add_repo("org/gated", "model", HubAccess::gated);
    hub.commit("org/gated", {{"g.safetensors", HubFile{test_bytes(2000, 62)}}});
    hub.add_repo("team/own", "model", HubAccess::gated);
    hub.commit("team/own", {{"o.safetensors", HubFile{own}}});
    hub.grant("team/own", "alice");
    hub.add_token(token, HubToken{"alice", {"team"}, /*fine_grained=*/true, /*can_read_gated=*/false});
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, hub, token)};
    auto report = system.provision_from_text(hf_config("lora.gated", "org/gated", "g.safetensors", "gated = true") +
                                                 hf_config("lora.own", "team/own", "o.safetensors", "gated = true"),
                                             "fine.toml");
    REQUIRE(report.entries.size() == 2);
    CHECK(report.entries[0].status == EntryOutcome::Status::failed);
    CHECK(report.entries[0].error.code == errc::auth);
    for (const char* part :
         {"models.lora.gated", "org/gated", "fine-grained", "Read access to contents of all public gated repos",
          "https://huggingface.co/settings/tokens"}) {
        CAPTURE(part);
        CHECK(contains(report.entries[0].error.message, part));
    }
    CHECK(hub.hub().count("/org/gated/") == 0);
    INFO(report.entries[1].error.message);
    CHECK(report.entries[1].status == EntryOutcome::Status::installed);
}

TEST_CASE("huggingface: whoami-v2 answers are read for what the gated check needs") {
    auto info = hf::parse_whoami(R"({"type":"user","name":"alice","orgs":[{"name":"team"}],
        "auth":{"type":"access_token","accessToken":{"displayName":"t","role":"fineGrained",
        "fineGrained":{"canReadGatedRepos":false,"global":[],"scoped":[{"entity":{"type":"model","name":"org/allowed"},
        "permissions":["repo.content.read"]}]}}}})");
    REQUIRE(info);
    CHECK(info->name == "alice");
    CHECK(info->fine_grained);
    CHECK(info->can_read_gated == false);
    CHECK(hf::token_may_read_gated(*info, "org/allowed"));
    CHECK(hf::token_may_read_gated(*info, "team/x"));
    CHECK(hf::token_may_read_gated(*info, "alice/x"));
    CHECK_FALSE(hf::token_may_read_gated(*info, "org/other"));
    auto classic = hf::parse_whoami(R"({"name":"bob","auth":{"accessToken":{"role":"read"}}})");
    REQUIRE(classic);
    CHECK(hf::token_may_read_gated(*classic, "org/other"));
    CHECK_FALSE(hf::parse_whoami("<html>"));
}

TEST_CASE("huggingface: a dry run resolves through the Hub and reports the CDN link without its signature") {
    HubEmulator hub;
    std::string content = test_bytes(7000, 71);
    hub.add_repo("org/m");
    hub.commit("org/m", {{"m.safetensors", HubFile{content}}});
    TempDir workspace;
    auto options = options_for(workspace, hub, "");
    options.dry_run = true;
    std::vector<provision::Event> plans;
    std::mutex events_mutex;
    options.on_event = [&](const provision::Event& event) {
        std::lock_guard<std::mutex> lock(events_mutex);
        if (event.kind == provision::EventKind::plan) plans.push_back(event);
    };
    ProvisioningSystem system{options};
    auto report = system.provision_from_text(hf_config("checkpoints.m", "org/m", "m.safetensors"), "dry.toml");
    REQUIRE(report.ok());
    REQUIRE(plans.size() == 1);
    CHECK(plans[0].bytes_total == content.size());
    CHECK(contains(plans[0].message, "cdn-lfs.hf.co"));
    CHECK(contains(plans[0].message, "Signature=***"));  // the signed link is a credential too
    CHECK(hub.cdn().requests().empty());
    CHECK(report.entries[0].status == EntryOutcome::Status::planned);
}

TEST_CASE(
    "huggingface: the CLI provisions from the emulated Hub with --connect-to and exits 3 for a gated entry without "
    "HF_TOKEN") {
    HubEmulator hub;
    std::string vae = test_bytes(60000, 81);
    hub.add_repo("black-forest-labs/FLUX.1-dev", "model", HubAccess::gated);
    hub.commit("black-forest-labs/FLUX.1-dev", {{"ae.safetensors", HubFile(vae, HubStorage::xet)}});
    hub.add_repo("comfyanonymous/flux_text_encoders");
    std::string clip = test_bytes(40000, 82);
    hub.commit("comfyanonymous/flux_text_encoders", {{"clip_l.safetensors", HubFile(clip)}});
    TempDir dir;
    auto config = dir.write(
        "flux.toml", hf_config("vae.flux-vae", "black-forest-labs/FLUX.1-dev", "ae.safetensors", "gated = true") +
                         hf_config("clip.clip_l", "comfyanonymous/flux_text_encoders", "clip_l.safetensors"));
    std::vector<std::string> argv = {PROVISION_CLI_PATH,    config.string(), "--workspace",
                                     (dir / "ws").string(), "--cacert",      provision_test::test_ca().ca_cert_path};
    for (const auto& rule : hub.connect_to()) {
        argv.push_back("--connect-to");
        argv.push_back(rule.from_host + "::127.0.0.1:" + std::to_string(*rule.to_port));
    }
    auto anonymous = provision_test::run_process(argv);
    INFO(anonymous.out << anonymous.err);
    CHECK(anonymous.exit_code == 3);
    CHECK(contains(anonymous.err, "models.vae.flux-vae: black-forest-labs/FLUX.1-dev is marked gated = true"));
    CHECK(provision_test::read_whole_file(dir / "ws/sdnext/models/text_encoder/clip_l.safetensors") == clip);
    CHECK_FALSE(std::filesystem::exists(dir / "ws/sdnext/models/VAE/ae.safetensors"));

    hub.grant("black-forest-labs/FLUX.1-dev", "alice");
    hub.add_token(token, HubToken("alice"));
    auto signed_in =
        provision_test::run_process(argv, {{"HF_TOKEN", token}, {"HF_ENDPOINT", "https://huggingface.co/"}});
    INFO(signed_in.out << signed_in.err);
    CHECK(signed_in.exit_code == 0);
    CHECK(provision_test::read_whole_file(dir / "ws/sdnext/models/VAE/ae.safetensors") == vae);
    CHECK_FALSE(contains(signed_in.out + signed_in.err, token));
    CHECK_FALSE(contains(provision_test::read_whole_file(dir / "ws/logs/provision.log"), token));
    for (const auto& request : hub.cdn().requests()) CHECK_FALSE(request.has_header("Authorization"));
}

TEST_CASE("huggingface: the CLI takes HF_ENDPOINT from its environment and asks only the mirror") {
    // Only the mirror's name is routed to the emulator: were HF_ENDPOINT
    // ignored, the Hub's own name would not resolve here and the run would fail.
    HubEmulator hub({"hf-mirror.test"});
    std::string weights = test_bytes(70000, 83);
    hub.add_repo("org/mirrored");
    hub.commit("org/mirrored", {{"m.safetensors", HubFile(weights, HubStorage::git)}});
    TempDir dir;
    auto config = dir.write("m.toml", hf_config("checkpoints.m", "org/mirrored", "m.safetensors"));
    std::vector<std::string> argv = {PROVISION_CLI_PATH,    config.string(), "--workspace",
                                     (dir / "ws").string(), "--cacert",      provision_test::test_ca().ca_cert_path};
    for (const auto& rule : hub.connect_to()) {
        if (rule.from_host == "huggingface.co") continue;
        argv.push_back("--connect-to");
        argv.push_back(rule.from_host + "::127.0.0.1:" + std::to_string(*rule.to_port));
    }
    auto run = provision_test::run_process(argv, {{"HF_ENDPOINT", "https://hf-mirror.test"}});
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    CHECK(provision_test::read_whole_file(dir / "ws/sdnext/models/Stable-diffusion/m.safetensors") == weights);
    auto requests = hub.hub().requests();
    REQUIRE_FALSE(requests.empty());
    for (const auto& request : requests) CHECK(request.header("Host") == "hf-mirror.test");
}

TEST_CASE(
    "huggingface: a download whose signed link expires mid-way resumes through refresh, same commit, no token on the "
    "CDN") {
    HubEmulator hub;
    std::string content = test_bytes(3 << 20, 91);
    hub.add_repo("org/big");
    std::string commit = hub.commit("org/big", {{"big.safetensors", HubFile(content)}});
    hub.add_token(token, HubToken("alice"));
    hub.interrupt_next_download(1 << 20);
    TempDir workspace;
    auto options = options_for(workspace, hub, token);
    ProvisioningSystem system{options};
    auto report = system.provision_from_text(hf_config("checkpoints.big", "org/big", "big.safetensors"), "big.toml");
    REQUIRE(report.entries.size() == 1);
    INFO(report.entries[0].error.message);
    REQUIRE(report.ok());
    CHECK(provision_test::read_whole_file(workspace.path() / "sdnext/models/Stable-diffusion/big.safetensors") ==
          content);
    // The Hub was asked again, pinned to the commit it named the first time.
    auto resolves = requests_with_method(hub.hub(), "HEAD");
    REQUIRE(resolves.size() >= 2);
    CHECK(resolves[0].target == "/org/big/resolve/main/big.safetensors");
    CHECK(resolves.back().target == "/org/big/resolve/" + commit + "/big.safetensors");
    CHECK(hub.signed_links_issued() >= 2);
    for (const auto& request : hub.cdn().requests()) CHECK_FALSE(request.has_header("Authorization"));
    // It resumed rather than starting over: the first megabyte was not sent twice.
    CHECK(hub.cdn().bytes_sent() < content.size() + (1u << 20));
}

// ---------------------------------------------------------------------------
// Multi-file entries: files = [...], include / exclude, pinned to one commit.

namespace {

std::string multi_config(const std::string& key, const std::string& repo, const std::string& selection) {
    return "[models." + key + "]\nsource = \"huggingface\"\nrepo = \"" + repo + "\"\n" + selection + "\n";
}

/// Every failed entry's message, one per line: what a failing REQUIRE(report.ok()) should show.
std::string failures_of(const provision::Report& report) {
    std::string out;
    for (const auto& entry : report.entries)
        if (entry.status == EntryOutcome::Status::failed) out += entry.key_path + ": " + entry.error.message + "\n";
    return out;
}

std::vector<std::string> targets_containing(provision_test::LoopbackServer& server, const std::string& part) {
    std::vector<std::string> out;
    for (const auto& request : server.requests())
        if (contains(request.target, part)) out.push_back(request.target);
    return out;
}

}  // namespace

TEST_CASE("huggingface: patterns follow huggingface_hub's fnmatch rules") {
    CHECK(hf::glob_match("*.safetensors", "model.safetensors"));
    CHECK(hf::glob_match("*.json", "unet/config.json"));  // '*' also matches '/'
    CHECK(hf::glob_match("data/*.json", "data/sub/x.json"));
    CHECK_FALSE(hf::glob_match("*.JSON", "config.json"));  // case-sensitive
    CHECK(hf::glob_match("model-0000?-of-00002.safetensors", "model-00001-of-00002.safetensors"));
    CHECK_FALSE(hf::glob_match("model-?.bin", "model-12.bin"));
    CHECK(hf::glob_match("[tv]*", "vae/x"));
    CHECK_FALSE(hf::glob_match("[!tv]*", "text_encoder/x"));
    CHECK(hf::glob_match("[a-c]b", "bb"));
    CHECK(hf::glob_match("a[b", "a[b"));  // an unterminated set is a literal '['
    CHECK(hf::glob_match("*", ".gitattributes"));
    CHECK_FALSE(hf::glob_match("", "x"));
    CHECK(hf::is_selected("vae/diffusion_pytorch_model.safetensors", {"vae/"}, {}));  // a trailing '/' means the folder
    CHECK(hf::is_selected("unet/x.bin", {}, {}));
    CHECK_FALSE(hf::is_selected("unet/x.bin", {"*"}, {"*.bin"}));
}

TEST_CASE("huggingface: the next page comes from Link rel=\"next\" only") {
    provision::HttpResponse response;
    response.headers = {
        {"Link", "<https://huggingface.co/api/models/a/b/tree/x?recursive=true&cursor=abc>; rel=\"next\""}};
    CHECK(hf::next_page_link(response) ==
          std::optional<std::string>("https://huggingface.co/api/models/a/b/tree/x?recursive=true&cursor=abc"));
    response.headers = {{"link", "<https://h/first>; rel=\"first\", <https://h/2>; rel=\"next\""}};
    CHECK(hf::next_page_link(response) == std::optional<std::string>("https://h/2"));
    response.headers = {{"Link", "<https://huggingface.co/api/models/a/b/xet-read-token/main>; rel=\"xet-auth\""}};
    CHECK_FALSE(hf::next_page_link(response).has_value());
    response.headers = {};
    CHECK_FALSE(hf::next_page_link(response).has_value());
}

TEST_CASE("huggingface: files = [...] downloads each listed file at one commit, keeping the repo's folders") {
    HubEmulator hub;
    std::string unet = test_bytes(300000, 11);
    std::string vae = test_bytes(120000, 12);
    std::string config = "{\"_class_name\": \"UNet2DConditionModel\"}\n";
    hub.add_token(token, HubToken{"alice"});
    hub.add_repo("org/pipeline");
    std::string commit =
        hub.commit("org/pipeline", {{"unet/diffusion_pytorch_model.safetensors", HubFile{unet}},
                                    {"unet/config.json", HubFile{config, HubStorage::git}},
                                    {"vae/diffusion_pytorch_model.safetensors", HubFile{vae, HubStorage::xet}},
                                    {"text_encoder/model.safetensors", HubFile{test_bytes(1000, 13)}}});
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, hub, token)};
    auto report =
        system.provision_from_text(multi_config("checkpoints.pipeline", "org/pipeline",
                                                "files = [\"unet/diffusion_pytorch_model.safetensors\", "
                                                "\"unet/config.json\", \"vae/diffusion_pytorch_model.safetensors\"]"),
                                   "multi.toml");
    INFO(failures_of(report));
    REQUIRE(report.ok());
    REQUIRE(report.entries.size() == 3);  // one outcome per file, in the order of files
    CHECK(report.entries[0].key_path == "models.checkpoints.pipeline[unet/diffusion_pytorch_model.safetensors]");
    CHECK(report.entries[1].key_path == "models.checkpoints.pipeline[unet/config.json]");
    CHECK(report.entries[2].key_path == "models.checkpoints.pipeline[vae/diffusion_pytorch_model.safetensors]");
    for (const auto& entry : report.entries) {
        CHECK(contains(entry.identity, "@" + commit + ":"));
        CHECK(entry.category == "checkpoints");
    }
    auto folder = workspace.path() / "sdnext/models/Stable-diffusion";
    CHECK(provision_test::read_whole_file(folder / "unet/diffusion_pytorch_model.safetensors") == unet);
    CHECK(provision_test::read_whole_file(folder / "unet/config.json") == config);
    CHECK(provision_test::read_whole_file(folder / "vae/diffusion_pytorch_model.safetensors") == vae);
    CHECK_FALSE(std::filesystem::exists(folder / "text_encoder"));
    // The revision was resolved once, the repo listed at that commit, and every file fetched at it.
    CHECK(targets_containing(hub.hub(), "/api/models/org/pipeline/revision/main").size() == 1);
    CHECK(targets_containing(hub.hub(), "/api/models/org/pipeline/tree/" + commit + "?recursive=true").size() == 1);
    auto resolves = targets_containing(hub.hub(), "/resolve/");
    CHECK(resolves.size() >= 3);
    for (const auto& target : resolves) CHECK(contains(target, "/org/pipeline/resolve/" + commit + "/"));
    for (const auto& request : hub.hub().requests()) CHECK(request.header("Authorization") == "Bearer " + token);
    for (const auto& request : hub.cdn().requests()) CHECK_FALSE(request.has_header("Authorization"));
}

TEST_CASE("huggingface: include / exclude patterns select from a listing that spans several pages") {
    HubEmulator hub;
    hub.set_tree_page_size(2);  // 7 files + 4 folders: 6 pages
    std::map<std::string, HubFile> files;
    files.emplace(".gitattributes", HubFile{"*.safetensors filter=lfs\n", HubStorage::git});
    files.emplace("README.md", HubFile{"# model\n", HubStorage::git});
    files.emplace("model_index.json", HubFile{"{}\n", HubStorage::git});
    files.emplace("unet/diffusion_pytorch_model.safetensors", HubFile{test_bytes(5000, 21)});
    files.emplace("unet/diffusion_pytorch_model.bin", HubFile{test_bytes(5000, 22)});
    files.emplace("vae/diffusion_pytorch_model.safetensors", HubFile{test_bytes(4000, 23)});
    files.emplace("text_encoder/sub/model.safetensors", HubFile{test_bytes(3000, 24)});
    hub.add_repo("org/diffusers", "dataset");
    std::string commit = hub.commit("org/diffusers", files, "main", "dataset");
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, hub, "")};
    auto report = system.provision_from_text(multi_config("checkpoints.sd", "org/diffusers",
                                                          "repo_type = \"dataset\"\ninclude = [\"*.safetensors\", "
                                                          "\"model_index.json\"]\nexclude = [\"text_encoder/\"]"),
                                             "patterns.toml");
    INFO(failures_of(report));
    REQUIRE(report.ok());
    std::set<std::string> installed;
    for (const auto& entry : report.entries) installed.insert(entry.key_path);
    CHECK(installed == std::set<std::string>{"models.checkpoints.sd[model_index.json]",
                                             "models.checkpoints.sd[unet/diffusion_pytorch_model.safetensors]",
                                             "models.checkpoints.sd[vae/diffusion_pytorch_model.safetensors]"});
    auto folder = workspace.path() / "sdnext/models/Stable-diffusion";
    CHECK(provision_test::read_whole_file(folder / "unet/diffusion_pytorch_model.safetensors") == test_bytes(5000, 21));
    CHECK_FALSE(std::filesystem::exists(folder / "unet/diffusion_pytorch_model.bin"));
    CHECK_FALSE(std::filesystem::exists(folder / "text_encoder"));
    CHECK_FALSE(std::filesystem::exists(folder / "README.md"));
    // Every page was fetched, each following the previous page's Link.
    auto pages = targets_containing(hub.hub(), "/api/datasets/org/diffusers/tree/" + commit);
    CHECK(pages.size() == 6);
    CHECK(std::count_if(pages.begin(), pages.end(), [](const std::string& t) { return contains(t, "cursor="); }) == 5);

    // The whole repo, asked for explicitly.
    TempDir whole;
    ProvisioningSystem all{options_for(whole, hub, "")};
    auto everything = all.provision_from_text(
        multi_config("checkpoints.sd", "org/diffusers", "repo_type = \"dataset\"\ninclude = [\"*\"]"), "whole.toml");
    REQUIRE(everything.ok());
    CHECK(everything.entries.size() == 7);
    CHECK(provision_test::read_whole_file(whole.path() /
                                          "sdnext/models/Stable-diffusion/text_encoder/sub/model.safetensors") ==
          test_bytes(3000, 24));
}

TEST_CASE("huggingface: every file comes from the commit listed, even when the branch moves during the run") {
    HubEmulator hub;
    hub.set_tree_page_size(1);
    hub.add_repo("org/moving");
    std::string old_a = test_bytes(6000, 31), old_b = "{\"v\": 1}\n";
    std::string first =
        hub.commit("org/moving", {{"a.safetensors", HubFile{old_a}}, {"b.json", HubFile{old_b, HubStorage::git}}});
    std::string second = hub.commit("org/moving", {{"a.safetensors", HubFile{test_bytes(6000, 32)}},
                                                   {"b.json", HubFile{"{\"v\": 2}\n", HubStorage::git}}});
    hub.set_ref("org/moving", "main", first);
    hub.move_ref_after_tree_page("org/moving", "main", second);  // a push lands right after the first page
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, hub, "")};
    auto report =
        system.provision_from_text(multi_config("vae.moving", "org/moving", "include = [\"*\"]"), "moving.toml");
    INFO(failures_of(report));
    REQUIRE(report.ok());
    REQUIRE(report.entries.size() == 2);
    auto folder = workspace.path() / "sdnext/models/VAE";
    CHECK(provision_test::read_whole_file(folder / "a.safetensors") == old_a);
    CHECK(provision_test::read_whole_file(folder / "b.json") == old_b);
    for (const auto& target : targets_containing(hub.hub(), "/api/models/org/moving/tree/"))
        CHECK(contains(target, first));
    for (const auto& target : targets_containing(hub.hub(), "/resolve/"))
        CHECK(contains(target, "/resolve/" + first + "/"));
}

TEST_CASE("huggingface: a file missing from files = [...] fails alone, with what the repo has; the others install") {
    HubEmulator hub;
    hub.add_repo("org/flux");
    hub.commit("org/flux", {{"ae.safetensors", HubFile{test_bytes(2000, 41)}},
                            {"text_encoder/Model.safetensors", HubFile{test_bytes(2000, 42)}}});
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, hub, "")};
    auto report = system.provision_from_text(
        multi_config("vae.flux", "org/flux", "files = [\"ae.safetensors\", \"text_encoder/model.safetensors\"]"),
        "missing.toml");
    REQUIRE(report.entries.size() == 2);
    CHECK(report.entries[0].status == EntryOutcome::Status::installed);
    const auto& missing = report.entries[1];
    CHECK(missing.status == EntryOutcome::Status::failed);
    CHECK(missing.error.code == errc::not_found);
    CHECK(missing.key_path == "models.vae.flux[text_encoder/model.safetensors]");
    CHECK(contains(missing.error.message, "no such file in org/flux at revision \"main\""));
    CHECK(contains(missing.error.message, "did you mean \"text_encoder/Model.safetensors\"?"));
    CHECK(contains(missing.error.message, "case-sensitive"));
    CHECK(report.exit_code() == provision::exit_code(errc::not_found));
    CHECK(std::filesystem::exists(workspace.path() / "sdnext/models/VAE/ae.safetensors"));

    // Patterns that select nothing fail the entry, naming what is there.
    auto none = system.provision_from_text(multi_config("vae.flux", "org/flux", "include = [\"*.gguf\"]"), "none.toml");
    REQUIRE(none.entries.size() == 1);
    CHECK(none.entries[0].status == EntryOutcome::Status::failed);
    CHECK(contains(none.entries[0].error.message, "include = [\"*.gguf\"] selects no file of org/flux"));
    CHECK(contains(none.entries[0].error.message, "\"ae.safetensors\""));
}

TEST_CASE("huggingface: listing errors use the Hub's wording: missing revision, gated repo, missing repo") {
    HubEmulator hub;
    hub.add_repo("org/gated", "model", HubAccess::gated);
    hub.commit("org/gated", {{"x.safetensors", HubFile{test_bytes(100, 51)}}});
    hub.add_repo("org/open");
    hub.commit("org/open", {{"x.safetensors", HubFile{test_bytes(100, 52)}}});
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, hub, "")};
    auto report = system.provision_from_text(
        multi_config("vae.gated", "org/gated", "include = [\"*\"]") +
            multi_config("vae.nobranch", "org/open", "include = [\"*\"]\nrevision = \"v9\"") +
            multi_config("vae.norepo", "org/nothing", "files = [\"x.safetensors\"]"),
        "errors.toml");
    REQUIRE(report.entries.size() == 3);
    for (const auto& entry : report.entries) CHECK(entry.status == EntryOutcome::Status::failed);
    CHECK(report.entries[0].error.code == errc::auth);
    CHECK(contains(report.entries[0].error.message, "gated"));
    CHECK(contains(report.entries[1].error.message, "has no revision \"v9\""));
    CHECK(contains(report.entries[2].error.message, "org/nothing was not found"));
}

TEST_CASE("huggingface: a multi-file entry catches wrong bytes per file; the good files still install") {
    HubEmulator hub;
    std::string good = test_bytes(40000, 61);
    std::string bad = good;
    bad[100] ^= 1;
    hub.add_repo("org/corrupt");
    hub.commit("org/corrupt", {{"good.safetensors", HubFile{good}},
                               {"bad.safetensors", HubFile(test_bytes(40000, 62)).serving(bad)},
                               {"bad.json", HubFile("{\"a\": 1}\n", HubStorage::git).serving("{\"a\": 2}\n")}});
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, hub, "")};
    auto report =
        system.provision_from_text(multi_config("lora.corrupt", "org/corrupt", "include = [\"*\"]"), "corrupt.toml");
    REQUIRE(report.entries.size() == 3);
    std::map<std::string, const EntryOutcome*> by_key;
    for (const auto& entry : report.entries) by_key[entry.key_path] = &entry;
    CHECK(by_key.at("models.lora.corrupt[good.safetensors]")->status == EntryOutcome::Status::installed);
    CHECK(by_key.at("models.lora.corrupt[bad.safetensors]")->error.code == errc::integrity);
    CHECK(by_key.at("models.lora.corrupt[bad.json]")->error.code == errc::integrity);
    CHECK(contains(by_key.at("models.lora.corrupt[bad.json]")->error.message, "git SHA-1"));
    auto folder = workspace.path() / "sdnext/models/Lora";
    CHECK(provision_test::read_whole_file(folder / "good.safetensors") == good);
    CHECK_FALSE(std::filesystem::exists(folder / "bad.safetensors"));
    CHECK_FALSE(std::filesystem::exists(folder / "bad.json"));
}

TEST_CASE("huggingface: examples/configs/flux.toml, run by the CLI, lands where each UI looks for its models") {
    HubEmulator hub;
    const std::string transformer = test_bytes(90000, 91), ae = test_bytes(30000, 92), clip_l = test_bytes(20000, 93),
                      t5 = test_bytes(50000, 94), lora = test_bytes(10000, 95), controlnet = test_bytes(15000, 96);
    hub.add_repo("black-forest-labs/FLUX.1-dev", "model", HubAccess::gated);
    hub.commit("black-forest-labs/FLUX.1-dev", {{"flux1-dev.safetensors", HubFile(transformer, HubStorage::xet)},
                                                {"ae.safetensors", HubFile(ae, HubStorage::xet)},
                                                {"model_index.json", HubFile("{}\n", HubStorage::git)}});
    hub.grant("black-forest-labs/FLUX.1-dev", "alice");
    hub.add_token(token, HubToken("alice"));
    hub.add_repo("comfyanonymous/flux_text_encoders");
    hub.commit("comfyanonymous/flux_text_encoders", {{"clip_l.safetensors", HubFile(clip_l)},
                                                     {"t5xxl_fp8_e4m3fn.safetensors", HubFile(t5)},
                                                     {"t5xxl_fp16.safetensors", HubFile(test_bytes(70000, 97))}});
    hub.add_repo("XLabs-AI/flux-RealismLora");
    hub.commit("XLabs-AI/flux-RealismLora", {{"lora.safetensors", HubFile(lora)}});
    hub.add_repo("Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro");
    hub.commit("Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro",
               {{"diffusion_pytorch_model.safetensors", HubFile(controlnet)},
                {"config.json", HubFile("{}\n", HubStorage::git)}});

    struct Placement {
        const char* layout;                        ///< "" runs the config as written (its [settings] say comfyui)
        std::map<std::string, std::string> files;  ///< path under the workspace -> expected bytes
    };
    const Placement placements[] = {
        {"",
         {{"ComfyUI/models/diffusion_models/flux1-dev.safetensors", transformer},
          {"ComfyUI/models/vae/ae.safetensors", ae},
          {"ComfyUI/models/text_encoders/clip_l.safetensors", clip_l},
          {"ComfyUI/models/text_encoders/t5xxl_fp8_e4m3fn.safetensors", t5},
          {"ComfyUI/models/loras/flux-realism-lora.safetensors", lora},
          {"ComfyUI/models/controlnet/flux-controlnet-union-pro.safetensors", controlnet}}},
        {"forge",
         {{"stable-diffusion-webui-forge/models/Stable-diffusion/flux1-dev.safetensors", transformer},
          {"stable-diffusion-webui-forge/models/VAE/ae.safetensors", ae},
          {"stable-diffusion-webui-forge/models/text_encoder/t5xxl_fp8_e4m3fn.safetensors", t5},
          {"stable-diffusion-webui-forge/models/Lora/flux-realism-lora.safetensors", lora},
          {"stable-diffusion-webui-forge/models/ControlNet/flux-controlnet-union-pro.safetensors", controlnet}}},
        {"sdnext",
         {{"sdnext/models/UNET/flux1-dev.safetensors", transformer},
          {"sdnext/models/VAE/ae.safetensors", ae},
          {"sdnext/models/text_encoder/clip_l.safetensors", clip_l},
          {"sdnext/models/Lora/flux-realism-lora.safetensors", lora},
          {"sdnext/models/ControlNet/flux-controlnet-union-pro.safetensors", controlnet}}},
        {"a1111",
         {{"stable-diffusion-webui/models/Stable-diffusion/flux1-dev.safetensors", transformer},
          {"stable-diffusion-webui/models/text_encoder/clip_l.safetensors", clip_l}}},
    };
    const std::string config = std::string(PROVISION_SOURCE_DIR) + "/examples/configs/flux.toml";
    for (const auto& placement : placements) {
        CAPTURE(placement.layout);
        TempDir dir;
        std::vector<std::string> argv = {PROVISION_CLI_PATH,    config,     "--workspace",
                                         (dir / "ws").string(), "--cacert", provision_test::test_ca().ca_cert_path};
        if (*placement.layout) {
            argv.push_back("--layout");
            argv.push_back(placement.layout);
        }
        for (const auto& rule : hub.connect_to()) {
            argv.push_back("--connect-to");
            argv.push_back(rule.from_host + "::127.0.0.1:" + std::to_string(*rule.to_port));
        }
        auto run = provision_test::run_process(argv, {{"HF_TOKEN", token}});
        INFO(run.out << run.err);
        CHECK(run.exit_code == 0);
        for (const auto& item : placement.files) {
            const auto& path = item.first;  // named, not bound: clang (C++17) cannot capture a binding in INFO/CAPTURE
            const auto& bytes = item.second;
            CAPTURE(path);
            CHECK(provision_test::read_whole_file(dir / "ws" / path) == bytes);
        }
        // Only what the config names: not the repos' other files.
        std::size_t installed = 0;
        for (const auto& item : std::filesystem::recursive_directory_iterator(dir / "ws"))
            if (item.is_regular_file() && item.path().extension() == ".safetensors") ++installed;
        CHECK(installed == 6);
        CHECK_FALSE(contains(run.out + run.err, token));
    }
}

}  // namespace suite_huggingface
