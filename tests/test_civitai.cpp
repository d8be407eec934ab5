// SPDX-License-Identifier: MIT
#include "common.hpp"
#include "support/engine_fixtures.hpp"
#include "support/civitai_emulator.hpp"
#include "support/hf_emulator.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"

#include <cmath>
#include <map>
#include <limits>

namespace suite_civitai {  // apart from the suites compiled with it (tests/meson.build)

using provision::DownloadPlan;
using provision::Entry;
using provision::EntryOutcome;
using provision::errc;
using provision::HttpClient;
using provision::ProvisioningSystem;
using provision::ProvisionOptions;
using provision_test::CivitaiEmulator;
using provision_test::CivitaiFileSpec;
using provision_test::CivitaiVersionSpec;
using provision_test::files_under;
using provision_test::RecordedRequest;
using provision_test::TempDir;
using provision_test::test_bytes;

namespace {

const std::string model_bytes = test_bytes(300123, 1);
const std::string vae_bytes = test_bytes(81234, 2);
const std::string pruned_bytes = test_bytes(150321, 3);

/// The seed's example: a LoRA version with its model, a VAE and a pruned variant.
CivitaiVersionSpec detail_tweaker(int id = 58390) {
    CivitaiVersionSpec version;
    version.id = id;
    version.model_id = 58390;
    version.files = {
        CivitaiFileSpec{1002, "add_detail_vae.pt", "VAE", false, vae_bytes, std::nullopt, std::nullopt},
        CivitaiFileSpec{1001, "add_detail.safetensors", "Model", true, model_bytes, std::nullopt, std::nullopt},
        CivitaiFileSpec{1003, "add_detail-pruned.safetensors", "Pruned Model", false, pruned_bytes, std::nullopt,
                        std::nullopt},
    };
    return version;
}

provision::HttpOptions http_options(const CivitaiEmulator& civitai) {
    provision::HttpOptions options;
    options.ca_files = {provision_test::test_ca().ca_cert_path};
    options.connect_to = civitai.connect_to();
    return options;
}

ProvisionOptions options_for(const TempDir& workspace, const CivitaiEmulator& civitai,
                             const std::string& token = CivitaiEmulator::token) {
    ProvisionOptions options;
    options.workspace = workspace.path();
    options.http = http_options(civitai);
    options.credentials.civitai_token = token;
    options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    return options;
}

Entry civitai_entry(const std::string& version_id, const std::string& key_path = "models.lora.detail-tweaker") {
    Entry entry;
    entry.category = "lora";
    entry.key_path = key_path;
    entry.source = provision::SourceKind::civitai;
    entry.version_id = version_id;
    return entry;
}

/// Resolves one entry directly, as the provisioner does.
struct Resolver {
    HttpClient http;
    provision::ResolveContext context;
    explicit Resolver(provision::HttpOptions options, const std::string& token = CivitaiEmulator::token)
        : http(std::move(options)), context{http, provision::Credentials{"", token}} {}
    provision::Result<DownloadPlan> resolve(const Entry& entry) { return provision::resolve_entry(entry, context); }
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// True when any header value or the target of a request mentions `secret`.
bool mentions(const RecordedRequest& request, const std::string& secret) {
    if (contains(request.target, secret)) return true;
    for (const auto& header : request.headers)
        if (contains(header.second, secret)) return true;
    return false;
}

}  // namespace

TEST_CASE("civitai: the primary file is installed under CivitAI's name, verified, with the token only on API routes") {
    CivitaiEmulator civitai;
    civitai.add(detail_tweaker());
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, civitai)};
    auto report = system.provision_from_text(
        "[models.lora.detail-tweaker]\nsource = \"civitai\"\nversion_id = \"58390\"\n", "civitai.toml");
    REQUIRE(report.entries.size() == 1);
    INFO(report.entries[0].error.message);
    REQUIRE(report.ok());
    const auto& outcome = report.entries[0];
    CHECK(outcome.status == EntryOutcome::Status::installed);
    CHECK(outcome.identity == "civitai:file/1001");
    CHECK(outcome.sha256 == provision::detail::sha256_hex(model_bytes));
    auto installed = workspace.path() / "sdnext/models/Lora/add_detail.safetensors";
    CHECK(outcome.path == installed);
    CHECK(provision_test::read_whole_file(installed) == model_bytes);
    CHECK(files_under(workspace.path() / "sdnext/models") == std::vector<std::string>{"Lora/add_detail.safetensors"});

    auto api = civitai.api().requests();
    REQUIRE(api.size() == 2);
    CHECK(api[0].target == "/api/v1/model-versions/58390");
    CHECK(api[1].target == "/api/download/models/58390?fileId=1001");
    for (const auto& request : api) {
        CAPTURE(request.target);
        CHECK(request.header("Authorization") == std::string("Bearer ") + CivitaiEmulator::token);
        CHECK_FALSE(contains(request.target, "token"));
        CHECK(request.header("User-Agent").rfind("provision/", 0) == 0);
    }
    auto storage = civitai.storage().requests();
    REQUIRE(storage.size() == 1);
    CHECK(storage[0].header("Host") == CivitaiEmulator::r2_host);
    CHECK_FALSE(storage[0].has_header("Authorization"));
    CHECK_FALSE(mentions(storage[0], CivitaiEmulator::token));
    CHECK(civitai.route_hits() == 1);
}

TEST_CASE("civitai: the storage emulator refuses a forwarded Authorization header, as R2 and B2 do") {
    // Proves the storage checks above can fail: a leaked token breaks the download.
    CivitaiEmulator civitai;
    civitai.add(detail_tweaker());
    for (auto kind : {CivitaiEmulator::Storage::r2, CivitaiEmulator::Storage::b2}) {
        civitai.storage_kind = kind;
        Resolver resolver{http_options(civitai)};
        auto plan = resolver.resolve(civitai_entry("58390"));
        REQUIRE(plan);
        CHECK(plan->scoped_headers.empty());
        CHECK(plan->headers.empty());
        provision::HttpRequest leaking;
        leaking.url = plan->url;
        leaking.headers = {{"Authorization", std::string("Bearer ") + CivitaiEmulator::token}};
        auto refused = resolver.http.fetch(leaking);
        REQUIRE(refused);
        CHECK(refused->status == (kind == CivitaiEmulator::Storage::r2 ? 400 : 403));
        provision::HttpRequest clean;
        clean.url = plan->url;
        auto served = resolver.http.fetch(clean);
        REQUIRE(served);
        CHECK(served->status == 200);
        CHECK(served->body == model_bytes);
    }
}

TEST_CASE("civitai: B2 storage on b2.civitai.com gets no token although it is a civitai.com host") {
    CivitaiEmulator civitai;
    civitai.add(detail_tweaker());
    civitai.storage_kind = CivitaiEmulator::Storage::b2;
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, civitai)};
    auto report =
        system.provision_from_text("[models.lora]\ntweak = { source = \"civitai\", version_id = 58390 }\n", "b2.toml");
    REQUIRE(report.entries.size() == 1);
    INFO(report.entries[0].error.message);
    REQUIRE(report.ok());
    CHECK(provision_test::read_whole_file(workspace.path() / "sdnext/models/Lora/add_detail.safetensors") ==
          model_bytes);
    auto storage = civitai.storage().requests();
    REQUIRE(storage.size() == 1);
    CHECK(storage[0].header("Host") == CivitaiEmulator::b2_host);
    CHECK(contains(storage[0].target, "Authorization="));  // B2's own signed query, not our token
    CHECK_FALSE(storage[0].has_header("Authorization"));
    CHECK_FALSE(mentions(storage[0], CivitaiEmulator::token));
}

TEST_CASE("civitai: a dry run fetches no bytes and its report and log hold no token or signature") {
    CivitaiEmulator civitai;
    civitai.add(detail_tweaker());
    civitai.storage_kind = CivitaiEmulator::Storage::b2;
    TempDir workspace;
    auto options = options_for(workspace, civitai);
    options.dry_run = true;
    std::vector<provision::Event> events;
    std::mutex events_mutex;
    options.on_event = [&](const provision::Event& event) {
        std::lock_guard<std::mutex> lock(events_mutex);
        events.push_back(event);
    };
    ProvisioningSystem system{options};
    auto report = system.provision_from_text("[models.lora.tweak]\nversion_id = \"58390\"\n", "dry.toml");
    REQUIRE(report.ok());
    REQUIRE(report.entries.size() == 1);
    CHECK(report.entries[0].status == EntryOutcome::Status::planned);
    CHECK(report.entries[0].bytes == model_bytes.size());
    CHECK(civitai.storage().requests().empty());
    bool planned = false;
    for (const auto& event : events) {
        CHECK_FALSE(contains(event.message, CivitaiEmulator::token));
        if (event.kind == provision::EventKind::plan) {
            planned = true;
            CHECK(contains(event.message, "Authorization=***"));
        }
    }
    CHECK(planned);
    auto log = provision_test::read_whole_file(workspace.path() / "logs/provision.log");
    CHECK_FALSE(contains(log, CivitaiEmulator::token));
}

TEST_CASE("civitai: file_id and type pick other files; unknown ones list the files that exist") {
    CivitaiEmulator civitai;
    civitai.add(detail_tweaker());
    Resolver resolver{http_options(civitai)};

    auto by_id = civitai_entry("58390");
    by_id.file_id = "1002";
    auto vae = resolver.resolve(by_id);
    REQUIRE(vae);
    CHECK(vae->identity == "civitai:file/1002");
    CHECK(vae->file_name == "add_detail_vae.pt");
    CHECK(vae->sha256 == provision::detail::sha256_hex(vae_bytes));
    CHECK(civitai.api().requests().back().target == "/api/download/models/58390?fileId=1002");

    auto by_type = civitai_entry("58390");
    by_type.file_type = "pruned model";  // CivitAI writes "Pruned Model"; case does not matter
    auto pruned = resolver.resolve(by_type);
    REQUIRE(pruned);
    CHECK(pruned->identity == "civitai:file/1003");
    CHECK(civitai.api().requests().back().target == "/api/download/models/58390?fileId=1003");

    auto missing_id = civitai_entry("58390");
    missing_id.file_id = "999";
    auto no_file = resolver.resolve(missing_id);
    REQUIRE_FALSE(no_file);
    CHECK(no_file.error().code == errc::not_found);
    CHECK(contains(no_file.error().message,
                   "models.lora.detail-tweaker: CivitAI version 58390 has no file with file_id 999"));
    CHECK(contains(no_file.error().message, "1001 \"add_detail.safetensors\" (Model, primary)"));

    auto missing_type = civitai_entry("58390");
    missing_type.file_type = "Config";
    auto no_type = resolver.resolve(missing_type);
    REQUIRE_FALSE(no_type);
    CHECK(no_type.error().code == errc::not_found);
    CHECK(contains(no_type.error().message, "no file of type \"Config\""));
    CHECK(contains(no_type.error().message, "1002 \"add_detail_vae.pt\" (VAE)"));

    auto conflicting = civitai_entry("58390");
    conflicting.file_id = "1002";
    conflicting.file_type = "Model";
    auto conflict = resolver.resolve(conflicting);
    REQUIRE_FALSE(conflict);
    CHECK(conflict.error().code == errc::config);
    CHECK(contains(conflict.error().message, "remove one of the two"));
}

TEST_CASE("civitai: filename overrides CivitAI's name, and CivitAI's name is sanitized") {
    CivitaiEmulator civitai;
    auto version = detail_tweaker();
    version.files[1].name = "../../etc/cron.d/add_detail.safetensors";
    civitai.add(version);
    Resolver resolver{http_options(civitai)};
    auto plan = resolver.resolve(civitai_entry("58390"));
    REQUIRE(plan);
    CHECK(plan->file_name.find('/') == std::string::npos);
    CHECK(plan->file_name.rfind("..", 0) != 0);
    CHECK(provision::detail::ends_with(plan->file_name, "add_detail.safetensors"));

    auto renamed = civitai_entry("58390");
    renamed.filename = "tweaker.safetensors";
    auto chosen = resolver.resolve(renamed);
    REQUIRE(chosen);
    CHECK(chosen->file_name == "tweaker.safetensors");

    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, civitai)};
    auto report =
        system.provision_from_text("[models.lora.t]\nversion_id = 58390\nfilename = \"mine.safetensors\"\n", "f.toml");
    REQUIRE(report.ok());
    CHECK(files_under(workspace.path() / "sdnext/models") == std::vector<std::string>{"Lora/mine.safetensors"});
}

TEST_CASE("civitai: CivitAI's upper-case SHA-256 is verified; a config digest that differs is refused") {
    CivitaiEmulator civitai;
    civitai.add(detail_tweaker());
    Resolver resolver{http_options(civitai)};
    auto plan = resolver.resolve(civitai_entry("58390"));
    REQUIRE(plan);
    CHECK(plan->sha256 == provision::detail::sha256_hex(model_bytes));  // lower case, from CivitAI's upper case
    CHECK(plan->validator == plan->sha256);

    auto agreeing = civitai_entry("58390");
    agreeing.sha256 = provision::detail::sha256_hex(model_bytes);
    CHECK(resolver.resolve(agreeing));

    auto disagreeing = civitai_entry("58390");
    disagreeing.sha256 = std::string(64, 'a');
    auto refused = resolver.resolve(disagreeing);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == errc::integrity);
    CHECK(contains(refused.error().message, "models.lora.detail-tweaker"));
    CHECK(contains(refused.error().message, std::string(64, 'a')));
    CHECK(contains(refused.error().message, provision::detail::sha256_hex(model_bytes)));
    CHECK(contains(refused.error().message, "correct or remove sha256"));
}

TEST_CASE("civitai: bytes that do not match CivitAI's SHA-256 are never installed") {
    CivitaiEmulator civitai;
    civitai.add(detail_tweaker());
    civitai.corrupt_storage = true;
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, civitai)};
    auto report = system.provision_from_text("[models.lora.t]\nversion_id = 58390\n", "bad.toml");
    REQUIRE(report.entries.size() == 1);
    CHECK(report.entries[0].status == EntryOutcome::Status::failed);
    CHECK(report.entries[0].error.code == errc::integrity);
    CHECK(contains(report.entries[0].error.message, "SHA-256 mismatch"));
    CHECK(report.exit_code() == 8);
    CHECK(files_under(workspace.path() / "sdnext/models").empty());
}

TEST_CASE("civitai: sizeKB becomes an expected size only when it is exact") {
    using provision::detail::civitai_size_bytes;
    CHECK(civitai_size_bytes(148141284 / 1024.0) == std::optional<std::uint64_t>(148141284));
    CHECK(civitai_size_bytes(300123 / 1024.0) == std::optional<std::uint64_t>(300123));
    CHECK_FALSE(civitai_size_bytes(144669.2));  // rounded: not a whole number of bytes
    CHECK_FALSE(civitai_size_bytes(5.0));       // whole KiB: exact or rounded, cannot tell
    CHECK_FALSE(civitai_size_bytes(0.0));
    CHECK_FALSE(civitai_size_bytes(-3.5));
    CHECK_FALSE(civitai_size_bytes(std::nan("")));
    CHECK_FALSE(civitai_size_bytes(std::numeric_limits<double>::infinity()));

    CivitaiEmulator civitai;
    auto exact = detail_tweaker(1);
    civitai.add(exact);
    auto rounded = detail_tweaker(2);
    rounded.files[1].size_kb = 293.1;  // what 300123 bytes would be, rounded to one decimal
    civitai.add(rounded);
    Resolver resolver{http_options(civitai)};
    auto exact_plan = resolver.resolve(civitai_entry("1"));
    REQUIRE(exact_plan);
    CHECK(exact_plan->size == std::optional<std::uint64_t>(model_bytes.size()));
    auto rounded_plan = resolver.resolve(civitai_entry("2"));
    REQUIRE(rounded_plan);
    CHECK_FALSE(rounded_plan->size);
    CHECK(rounded_plan->sha256 == provision::detail::sha256_hex(model_bytes));  // still verified

    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, civitai)};
    auto report = system.provision_from_text("[models.lora.t]\nversion_id = 2\n", "rounded.toml");
    REQUIRE(report.ok());
    CHECK(report.entries[0].sha256 == provision::detail::sha256_hex(model_bytes));
}

TEST_CASE("civitai: every refusal names the entry, the cause and the fix, and never the token") {
    struct Case {
        std::string name;
        std::function<void(CivitaiVersionSpec&, CivitaiEmulator&)> setup;
        std::string token;
        errc code;
        std::vector<std::string> words;
    };
    const std::string token = CivitaiEmulator::token;
    const std::string wrong_token = "civitai-wrong-token-0000";
    std::vector<Case> cases = {
        {"login required, no token",
         [](auto&, auto&) {},
         "",
         errc::auth,
         {"requires a login", "HTTP 401", "set CIVITAI_TOKEN", "https://civitai.com/user/account"}},
        {"login required, token not accepted",
         [](auto&, auto&) {},
         wrong_token,
         errc::auth,
         {"did not accept CIVITAI_TOKEN", "create a new API key"}},
        {"downloads disabled",
         [](auto& v, auto&) { v.downloads_disabled = true; },
         token,
         errc::auth,
         {"disabled downloads", "choose another version or model"}},
        {"early access",
         [](auto& v, auto&) { v.early_access_until = "2024-04-01T00:00:00.000Z"; },
         token,
         errc::auth,
         {"Early Access until 2024-04-01T00:00:00.000Z", "HTTP 403", "buy access"}},
        {"no access",
         [](auto& v, auto&) { v.no_access = true; },
         token,
         errc::auth,
         {"has no access to this file", "You do not have access to download this file"}},
        {"archived",
         [](auto& v, auto&) { v.archived = true; },
         token,
         errc::not_found,
         {"\"Detail Tweaker\" is archived", "choose another model or version"}},
        {"archived behind stale details",
         [](auto& v, auto&) { v.archived = v.stale_details = true; },
         token,
         errc::not_found,
         {"archived", "HTTP 410", "choose another model or version"}},
        {"rate limited",
         [](auto&, auto& e) { e.download_limit = 0; },
         token,
         errc::rate_limited,
         {"rate limiting", "HTTP 429", "unusual amount of downloading", "run provision again later"}},
        {"region blocked",
         [](auto&, auto& e) { e.region_blocked = true; },
         token,
         errc::auth,
         {"region", "HTTP 451", "another region"}},
        {"a page instead of the file",
         [](auto& v, auto&) { v.page_instead_of_file = true; },
         token,
         errc::integrity,
         {"text/html", "instead of the model file", "nothing was saved"}},
        {"details that are not JSON",
         [](auto& v, auto&) { v.details_body = "<<garbage"; },
         token,
         errc::network,
         {"not valid JSON", "try again later"}},
        {"files that are not a list",
         [](auto& v, auto&) { v.details_body = R"({"id":58390,"files":{"id":1}})"; },
         token,
         errc::network,
         {"\"files\" is not a list"}},
        {"a file without a name",
         [](auto& v, auto&) { v.details_body = R"({"files":[{"id":5,"name":7}]})"; },
         token,
         errc::network,
         {"files[0] (id 5) has no \"name\""}},
        {"a file without an id",
         [](auto& v, auto&) { v.details_body = R"({"files":[{"id":-5,"name":"x.safetensors"}]})"; },
         token,
         errc::network,
         {"files[0] has no usable \"id\""}},
        {"a malformed SHA256",
         [](auto& v, auto&) {
             v.details_body = R"({"files":[{"id":5,"name":"x.safetensors","hashes":{"SHA256":"XYZ"}}]})";
         },
         token,
         errc::network,
         {"malformed hashes.SHA256"}},
        {"a version without files",
         [](auto& v, auto&) { v.details_body = R"({"model":{"name":"M"},"files":[]})"; },
         token,
         errc::not_found,
         {"lists no downloadable files"}},
    };
    for (const auto& test : cases) {
        CAPTURE(test.name);
        CivitaiEmulator civitai;
        auto version = detail_tweaker();
        test.setup(version, civitai);
        civitai.add(version);
        Resolver resolver{http_options(civitai), test.token};
        auto plan = resolver.resolve(civitai_entry("58390"));
        REQUIRE_FALSE(plan);
        const auto& message = plan.error().message;
        CAPTURE(message);
        CHECK(plan.error().code == test.code);
        CHECK(message.rfind("models.lora.detail-tweaker: CivitAI version 58390", 0) == 0);
        for (const auto& word : test.words) CHECK(contains(message, word));
        CHECK_FALSE(contains(message, token));
        CHECK_FALSE(contains(message, wrong_token));
        CHECK(civitai.storage().requests().empty());
    }
}

TEST_CASE("civitai: an unknown version is not_found and points at version_id; the run's exit code says so") {
    CivitaiEmulator civitai;
    civitai.add(detail_tweaker());
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, civitai)};
    auto report = system.provision_from_text(
        "[models.lora.gone]\nversion_id = \"999999\"\n\n[models.lora.ok]\nversion_id = 58390\n", "x.toml");
    REQUIRE(report.entries.size() == 2);
    const auto& gone = report.entries[0];
    CHECK(gone.status == EntryOutcome::Status::failed);
    CHECK(gone.error.code == errc::not_found);
    CHECK(contains(gone.error.message, "models.lora.gone: CivitAI version 999999 does not exist on CivitAI"));
    CHECK(contains(gone.error.message, "Model not found"));
    CHECK(contains(gone.error.message, "?modelVersionId="));
    CHECK(report.entries[1].status == EntryOutcome::Status::installed);  // one failure never stops the others
    CHECK(report.exit_code() == 4);
}

TEST_CASE("civitai: a browser User-Agent's redirects to the login page or the model page are refused, never saved") {
    CivitaiEmulator civitai;
    civitai.add(detail_tweaker());
    auto early = detail_tweaker(7);
    early.early_access_until = "2024-04-01T00:00:00.000Z";
    civitai.add(early);
    TempDir workspace;
    auto options = options_for(workspace, civitai, "");
    options.http.user_agent =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0 Safari/537.36";
    ProvisioningSystem anonymous{options};
    auto report = anonymous.provision_from_text("[models.lora.t]\nversion_id = 58390\n", "browser.toml");
    REQUIRE(report.entries.size() == 1);
    const auto& error = report.entries[0].error;
    CHECK(error.code == errc::auth);
    CHECK(contains(error.message, "login page (reason=download-auth)"));
    CHECK(contains(error.message, "set CIVITAI_TOKEN"));
    CHECK(contains(error.message, "looks like a browser's"));
    CHECK(civitai.api().count("/login") == 0);  // the page is never fetched
    CHECK(civitai.api().requests().back().header("User-Agent").find("Mozilla") == 0);

    options.credentials.civitai_token = CivitaiEmulator::token;
    ProvisioningSystem signed_in{options};
    auto early_report = signed_in.provision_from_text("[models.lora.e]\nversion_id = 7\n", "early.toml");
    REQUIRE(early_report.entries.size() == 1);
    CHECK(early_report.entries[0].error.code == errc::auth);
    CHECK(contains(early_report.entries[0].error.message, "web page /model-versions/7"));
    CHECK(contains(early_report.entries[0].error.message, "Early Access"));
    CHECK(civitai.api().count("/model-versions/7") == 0);
    CHECK(files_under(workspace.path() / "sdnext/models").empty());
    CHECK(civitai.storage().requests().empty());
}

TEST_CASE("civitai: an expired signed URL is exchanged again through the download route") {
    for (auto kind : {CivitaiEmulator::Storage::r2, CivitaiEmulator::Storage::b2}) {
        CAPTURE(static_cast<int>(kind));
        CivitaiEmulator civitai;
        civitai.add(detail_tweaker());
        civitai.storage_kind = kind;
        Resolver resolver{http_options(civitai)};
        auto plan = resolver.resolve(civitai_entry("58390"));
        REQUIRE(plan);
        REQUIRE(plan->refresh);
        TempDir dir;
        plan->folder = dir / "Lora";
        civitai.expire_signed_urls();

        provision::Downloader downloader{resolver.http, {}};
        auto expired = downloader.download(plan.value());
        REQUIRE_FALSE(expired);
        CHECK(expired.error().code == errc::network);
        CHECK(contains(expired.error().message, "models.lora.detail-tweaker"));
        CHECK(contains(expired.error().message, "has probably expired"));
        CHECK(contains(expired.error().message, "run provision again"));
        CHECK(files_under(dir.path()).empty());

        auto fresh = plan->refresh();
        REQUIRE(fresh);
        CHECK(fresh->url.str() != plan->url.str());
        CHECK(fresh->sha256 == plan->sha256);
        CHECK(fresh->file_name == plan->file_name);
        CHECK(civitai.route_hits() == 2);
        CHECK(civitai.api().count("/api/v1/model-versions/") == 1);  // details are not asked again
        fresh->folder = dir / "Lora";
        auto installed = downloader.download(fresh.value());
        REQUIRE(installed);
        CHECK(provision_test::read_whole_file(installed->path) == model_bytes);
        for (const auto& request : civitai.storage().requests()) CHECK_FALSE(request.has_header("Authorization"));
    }
}

TEST_CASE("civitai: the token goes to civitai.red API routes, but not to other endpoints") {
    CivitaiEmulator civitai;
    civitai.add(detail_tweaker());
    Resolver red{http_options(civitai)};
    red.context.civitai_endpoint = "https://civitai.red/";
    REQUIRE(red.resolve(civitai_entry("58390")));
    auto api = civitai.api().requests();
    REQUIRE(api.size() == 2);
    for (const auto& request : api) {
        CHECK(request.header("Host") == "civitai.red");
        CHECK(request.header("Authorization") == std::string("Bearer ") + CivitaiEmulator::token);
    }

    auto mirror = provision_test::LoopbackServer::https({"models.example.org"});
    mirror->server().Get(".*", [](const httplib::Request&, httplib::Response& res) {
        res.status = 404;
        res.set_content(R"({"error":"Model not found"})", "application/json");
    });
    auto options = http_options(civitai);
    options.connect_to.push_back(
        {"models.example.org", std::nullopt, "127.0.0.1", static_cast<std::uint16_t>(mirror->port())});
    Resolver elsewhere{options};
    elsewhere.context.civitai_endpoint = "https://models.example.org";
    auto result = elsewhere.resolve(civitai_entry("58390"));
    REQUIRE_FALSE(result);
    CHECK(result.error().code == errc::not_found);
    REQUIRE(mirror->requests().size() == 1);
    CHECK_FALSE(mirror->requests()[0].has_header("Authorization"));
    CHECK_FALSE(mentions(mirror->requests()[0], CivitaiEmulator::token));
}

TEST_CASE("civitai: a token with a line break is refused without being echoed") {
    CivitaiEmulator civitai;
    civitai.add(detail_tweaker());
    Resolver resolver{http_options(civitai), "secret-part\nInjected: header"};
    auto result = resolver.resolve(civitai_entry("58390"));
    REQUIRE_FALSE(result);
    CHECK(result.error().code == errc::usage);
    CHECK(contains(result.error().message, "CIVITAI_TOKEN contains a line break"));
    CHECK_FALSE(contains(result.error().message, "secret-part"));
    CHECK(civitai.api().requests().empty());

    Resolver padded{http_options(civitai), std::string("  ") + CivitaiEmulator::token + "\n"};  // as read from a file
    CHECK(padded.resolve(civitai_entry("58390")));
}

TEST_CASE("civitai: the version JSON is read defensively") {
    using provision::detail::parse_civitai_version;
    auto version = parse_civitai_version(R"({"model":{"name":"M","mode":"Archived"},"files":null})");
    REQUIRE(version);
    CHECK(version->files.empty());
    CHECK(version->model_mode == "Archived");
    auto ids_as_strings = parse_civitai_version(
        R"({"files":[{"id":"77","name":"a.safetensors","sizeKB":"12","primary":"yes","hashes":{"SHA256":null,"AutoV2":"X"}}]})");
    REQUIRE(ids_as_strings);
    REQUIRE(ids_as_strings->files.size() == 1);
    CHECK(ids_as_strings->files[0].id == "77");
    CHECK_FALSE(ids_as_strings->files[0].size_kb);  // a string is not a size
    CHECK_FALSE(ids_as_strings->files[0].primary);
    CHECK(ids_as_strings->files[0].sha256.empty());
    for (const char* odd : {"", "[]", "null", "{\"files\":[1]}", "{\"files\":[{\"id\":1.5,\"name\":\"x\"}]}",
                            "{\"files\":[{\"id\":1,\"name\":\"x\",\"hashes\":{\"SHA256\":12}}]}"}) {
        CAPTURE(odd);
        auto result = parse_civitai_version(odd);
        REQUIRE_FALSE(result);
        CHECK_FALSE(result.error().message.empty());
    }
    CHECK(provision::detail::is_civitai_host("civitai.com"));
    CHECK(provision::detail::is_civitai_host("b2.civitai.com"));
    CHECK(provision::detail::is_civitai_host("civitai.red"));
    CHECK_FALSE(provision::detail::is_civitai_host("evilcivitai.com"));
    CHECK_FALSE(provision::detail::is_civitai_host("civitai.com.example.org"));
    CHECK_FALSE(
        provision::detail::may_carry_civitai_token(provision::parse_url("https://b2.civitai.com/file/x").value()));
    CHECK_FALSE(provision::detail::may_carry_civitai_token(provision::parse_url("http://civitai.com/api/x").value()));
    CHECK(provision::detail::may_carry_civitai_token(provision::parse_url("https://civitai.com/api/x").value()));
}

// ---------------------------------------------------------------------------
// Links, AIR ids, model ids, and [models.auto] placement by model type.

namespace {

using provision::detail::parse_civitai_air;
using provision::detail::parse_civitai_link;

provision::Result<provision::detail::CivitaiReference> link(const std::string& text) {
    auto url = provision::parse_url(text);
    REQUIRE(url);
    return parse_civitai_link(url.value());
}

/// A one-file version of a model of the given CivitAI type.
CivitaiVersionSpec typed_version(int id, int model_id, const std::string& type, const std::string& file_name,
                                 int index = 0) {
    CivitaiVersionSpec version;
    version.id = id;
    version.model_id = model_id;
    version.model_type = type;
    version.model_name = type + " model " + std::to_string(model_id);
    version.index = index;
    version.files = {CivitaiFileSpec{id * 10, file_name, "Model", true,
                                     test_bytes(4000 + static_cast<std::size_t>(id % 1000), id), std::nullopt,
                                     std::nullopt}};
    return version;
}

std::string report_failures(const provision::Report& report) {
    std::string out;
    for (const auto& d : report.config_errors) out += d.str() + "\n";
    for (const auto& entry : report.entries)
        if (entry.status == EntryOutcome::Status::failed) out += entry.error.message + "\n";
    return out;
}

}  // namespace

TEST_CASE("civitai: every link form a user pastes is reduced to ids") {
    auto page = link("https://civitai.com/models/58390?modelVersionId=62833");
    REQUIRE(page);
    CHECK(page->model_id == "58390");
    CHECK(page->version_id == "62833");
    CHECK(page->site.empty());
    auto slug = link("https://civitai.com/models/58390/detail-tweaker-lora-lora");
    REQUIRE(slug);
    CHECK(slug->model_id == "58390");
    CHECK(slug->version_id.empty());
    auto red = link("https://civitai.red/models/58390/detail?modelVersionId=62833");
    REQUIRE(red);
    CHECK(red->site == "https://civitai.red");
    CHECK(red->version_id == "62833");
    CHECK(link("https://www.civitai.com/models/1?version=2")->version_id == "2");
    auto download =
        link("https://civitai.com/api/download/models/62833?type=Model&format=SafeTensor&fileId=1001&token=secret");
    REQUIRE(download);
    CHECK(download->version_id == "62833");
    CHECK(download->file_id == "1001");
    CHECK(download->model_id.empty());
    CHECK(link("https://civitai.com/model-versions/62833")->version_id == "62833");
    CHECK(link("https://civitai.com/api/v1/model-versions/62833")->version_id == "62833");
    CHECK(link("https://civitai.com/api/v1/models/58390")->model_id == "58390");
    CHECK(contains(link("https://civitai.com/images/123").error().message, "names no model"));
    CHECK(contains(link("https://civitai.com/models/abc").error().message, "model id \"abc\" is not a number"));
    CHECK(contains(link("https://civitai.com/models/1?modelVersionId=x").error().message, "modelVersionId"));
    CHECK_FALSE(link("https://civitai.com.example.org/models/1"));
}

TEST_CASE("civitai: AIR ids name model, version and file; other sources are refused") {
    auto full = parse_civitai_air("urn:air:sdxl:lora:civitai:328553@368189");
    REQUIRE(full);
    CHECK(full->model_id == "328553");
    CHECK(full->version_id == "368189");
    auto pinned = parse_civitai_air("urn:air:sdxl:checkpoint:civitai:827184@2514310+2402203.safetensor");
    REQUIRE(pinned);
    CHECK(pinned->version_id == "2514310");
    CHECK(pinned->file_id == "2402203");
    auto short_form = parse_civitai_air("civitai:147759@164821");
    REQUIRE(short_form);
    CHECK(short_form->model_id == "147759");
    auto model_only = parse_civitai_air("URN:AIR:other:upscaler:civitai:147759");
    REQUIRE(model_only);
    CHECK(model_only->version_id.empty());
    CHECK(
        contains(parse_civitai_air("urn:air:flux1:checkpoint:huggingface:black-forest-labs/FLUX.1-dev").error().message,
                 "only civitai AIR ids"));
    CHECK(contains(parse_civitai_air("urn:air:sdxl:lora:civitai:abc@1").error().message, "model id is not a number"));
    CHECK(contains(parse_civitai_air("urn:air:sdxl:lora:civitai:1@v2").error().message, "version"));
    CHECK_FALSE(parse_civitai_air("hello"));
}

TEST_CASE("civitai: links, air and model_id in a config become a CivitAI entry, also under source = \"url\"") {
    auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    auto m = provision::parse_config(R"([models.lora.page]
url = "https://civitai.com/models/58390?modelVersionId=62833"

[models.lora.as-url]
source = "url"
url = "https://civitai.red/api/download/models/62833?token=leaked"

[models.lora.air]
air = "urn:air:sd1:lora:civitai:58390@62833"

[models.lora.model]
model_id = 58390

[models.lora.explicit]
source = "civitai"
url = "https://civitai.com/models/58390/detail-tweaker"

[models.lora]
simple = "https://civitai.com/models/58390"

[models.vae.own-headers]
url = "https://civitai.com/api/download/models/62833"
auth_header = "Bearer abc"
)",
                                     "links.toml", env);
    INFO(m.error_text());
    REQUIRE(m.ok());
    REQUIRE(m.entries.size() == 7);
    for (std::size_t i = 0; i < 6; ++i) {
        CAPTURE(m.entries[i].key_path);
        CHECK(m.entries[i].source == provision::SourceKind::civitai);
        CHECK(m.entries[i].url.empty());  // never kept: a pasted link may carry ?token=
    }
    CHECK(m.entries[0].version_id == "62833");
    CHECK(m.entries[1].civitai_site == "https://civitai.red");
    CHECK(m.entries[1].version_id == "62833");
    CHECK(m.entries[2].model_id == "58390");
    CHECK(m.entries[2].version_id == "62833");
    CHECK(m.entries[3].model_id == "58390");
    CHECK(m.entries[3].version_id.empty());
    CHECK(m.entries[4].model_id == "58390");
    CHECK(m.entries[5].key_path == "models.lora.simple");
    // Headers of its own make it a plain download: the user chose how to authenticate.
    CHECK(m.entries[6].source == provision::SourceKind::url);

    auto bad = provision::parse_config(R"([models.lora.a]
url = "https://civitai.com/images/5"

[models.lora.b]
air = "urn:air:sdxl:lora:civitai:1@2"
version_id = 3

[models.lora.c]
source = "civitai"

[models.auto.d]
url = "https://example.com/x.safetensors"

[models.lora.e]
source = "civitai"
url = "https://example.com/models/1"
)",
                                       "bad.toml", env);
    auto has = [&](const std::string& key_path, const std::string& text) {
        for (const auto& d : bad.diagnostics)
            if (d.key_path == key_path && contains(d.message, text)) return true;
        INFO(bad.error_text());
        return false;
    };
    CHECK(has("models.lora.a.url", "this CivitAI link names no model"));
    CHECK(has("models.lora.b.version_id", "the AIR id already names the model and version"));
    CHECK(has("models.lora.c", "url = \"https://civitai.com/models/...\""));
    CHECK(has("models.auto.d", "[models.auto] places files by their CivitAI model type"));
    CHECK(has("models.lora.e.url", "is not a CivitAI site"));
    CHECK(bad.entries.empty());
}

TEST_CASE(
    "civitai: page links, slugs, civitai.red, download links, model_id and AIR ids all provision, verified and with "
    "the token") {
    CivitaiEmulator civitai;
    civitai.add(detail_tweaker());  // model 58390, version 58390
    civitai.add(typed_version(700, 777, "LORA", "older.safetensors", 1));
    civitai.add(typed_version(701, 777, "LORA", "newest.safetensors", 0));  // the site's default version
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, civitai)};
    auto report = system.provision_from_text(R"(
[models.lora.page]
url = "https://civitai.com/models/58390?modelVersionId=58390"

[models.lora.slug]
url = "https://civitai.com/models/777/some-lora"

[models.lora.red]
source = "url"
url = "https://civitai.red/api/download/models/700"
filename = "from-red.safetensors"

[models.lora.by-model]
model_id = 777
filename = "by-model.safetensors"

[models.lora.air]
air = "urn:air:sd1:lora:civitai:58390@58390+1002"
)",
                                             "links.toml");
    INFO(report_failures(report));
    REQUIRE(report.ok());
    auto lora = workspace.path() / "sdnext/models/Lora";
    CHECK(provision_test::read_whole_file(lora / "add_detail.safetensors") == model_bytes);
    CHECK(provision_test::read_whole_file(lora / "newest.safetensors") == test_bytes(4701, 701));
    CHECK_FALSE(std::filesystem::exists(lora / "older.safetensors"));
    CHECK(provision_test::read_whole_file(lora / "from-red.safetensors") == test_bytes(4700, 700));
    CHECK(provision_test::read_whole_file(lora / "by-model.safetensors") == test_bytes(4701, 701));
    CHECK(provision_test::read_whole_file(lora / "add_detail_vae.pt") == vae_bytes);  // +1002: the AIR's file id
    bool red_seen = false;
    for (const auto& request : civitai.api().requests()) {
        CHECK(request.header("Authorization") == std::string("Bearer ") + CivitaiEmulator::token);
        CHECK_FALSE(contains(request.target, "token="));
        red_seen = red_seen ||
                   (request.header("Host") == "civitai.red" && contains(request.target, "/api/download/models/700"));
    }
    CHECK(red_seen);
    CHECK(civitai.api().count("/api/v1/models/777") == 2);  // slug and model_id each ask for the default version
    for (const auto& request : civitai.storage().requests()) CHECK_FALSE(request.has_header("Authorization"));
}

TEST_CASE("civitai: a civitai.com link under source = \"url\" is verified against CivitAI's SHA-256") {
    CivitaiEmulator civitai;
    civitai.add(detail_tweaker());
    civitai.corrupt_storage = true;
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, civitai)};
    auto report = system.provision_from_text(
        "[models.lora]\ntweaker = \"https://civitai.com/api/download/models/58390\"\n", "url.toml");
    REQUIRE(report.entries.size() == 1);
    CHECK(report.entries[0].status == EntryOutcome::Status::failed);
    CHECK(report.entries[0].error.code == errc::integrity);
    CHECK(files_under(workspace.path() / "sdnext/models/Lora").empty());
}

TEST_CASE("civitai: an unknown model id is explained") {
    CivitaiEmulator civitai;
    Resolver resolver{http_options(civitai)};
    Entry entry = civitai_entry("");
    entry.model_id = "424242";
    auto result = resolver.resolve(entry);
    REQUIRE_FALSE(result);
    CHECK(result.error().code == errc::not_found);
    CHECK(
        contains(result.error().message, "models.lora.detail-tweaker: CivitAI model 424242 does not exist on CivitAI"));
    CHECK(contains(result.error().message, "No model with id 424242"));
}

TEST_CASE("civitai: [models.auto] places each file by its CivitAI model type through the active layout") {
    CivitaiEmulator civitai;
    civitai.add(typed_version(801, 81, "Checkpoint", "juggernaut.safetensors"));
    civitai.add(typed_version(802, 82, "LORA", "detail.safetensors"));
    civitai.add(typed_version(803, 83, "TextualInversion", "easynegative.safetensors"));
    civitai.add(typed_version(804, 84, "LoCon", "locon.safetensors"));
    civitai.add(typed_version(805, 85, "Upscaler", "4x_ultrasharp.pth"));
    civitai.add(typed_version(806, 86, "VAE", "vae.safetensors"));
    civitai.add(typed_version(807, 87, "Controlnet", "canny.safetensors"));
    civitai.add(typed_version(808, 88, "Wildcards", "wildcards.zip"));
    const std::string config = R"(
[models.auto]
checkpoint = "https://civitai.com/models/81"
lora = "https://civitai.com/models/82?modelVersionId=802"
embedding = "https://civitai.com/models/83"
locon = "https://civitai.com/models/84"
vae = "https://civitai.com/models/86"

[models.auto.upscaler]
air = "urn:air:other:upscaler:civitai:85@805"

[models.auto.controlnet]
version_id = 807

[models.auto.wildcards]
model_id = 88
)";
    struct Expectation {
        const char* layout;
        std::map<std::string, std::string> paths;  // file -> folder relative to the workspace
    };
    const Expectation expectations[] = {
        {"comfyui",
         {{"juggernaut.safetensors", "ComfyUI/models/checkpoints"},
          {"detail.safetensors", "ComfyUI/models/loras"},
          {"easynegative.safetensors", "ComfyUI/models/embeddings"},
          {"locon.safetensors", "ComfyUI/models/loras"},
          {"4x_ultrasharp.pth", "ComfyUI/models/upscale_models"},
          {"vae.safetensors", "ComfyUI/models/vae"},
          {"canny.safetensors", "ComfyUI/models/controlnet"}}},
        {"sdnext",
         {{"juggernaut.safetensors", "sdnext/models/Stable-diffusion"},
          {"detail.safetensors", "sdnext/models/Lora"},
          {"easynegative.safetensors", "sdnext/models/embeddings"},
          {"locon.safetensors", "sdnext/models/Lora"},
          {"4x_ultrasharp.pth", "sdnext/models/ESRGAN"},
          {"vae.safetensors", "sdnext/models/VAE"},
          {"canny.safetensors", "sdnext/models/ControlNet"}}},
    };
    for (const auto& expected : expectations) {
        CAPTURE(expected.layout);
        TempDir workspace;
        auto options = options_for(workspace, civitai);
        options.layout_name = expected.layout;
        ProvisioningSystem system{options};
        auto report = system.provision_from_text(config, "auto.toml");
        REQUIRE(report.config_errors.empty());
        REQUIRE(report.entries.size() == 8);
        for (const auto& entry : report.entries) {
            CAPTURE(entry.key_path);
            if (entry.key_path == "models.auto.wildcards") {
                CHECK(entry.status == EntryOutcome::Status::failed);
                CHECK(entry.error.code == errc::config);
                CHECK(contains(entry.error.message, "of type \"Wildcards\", which [models.auto] cannot place"));
                CHECK(contains(entry.error.message, "move the entry under [models.<category>]"));
                continue;
            }
            INFO(entry.error.message);
            CHECK(entry.status == EntryOutcome::Status::installed);
        }
        for (const auto& item : expected.paths) {
            const auto& file = item.first;  // named, not bound: clang (C++17) cannot capture a binding in INFO/CAPTURE
            const auto& folder = item.second;
            CAPTURE(file);
            CHECK(std::filesystem::exists(workspace.path() / folder / file));
        }
        CHECK(report.exit_code() == provision::exit_code(errc::config));
    }
}

TEST_CASE(
    "civitai: examples/configs/comfyui.toml, run by the CLI, fills ComfyUI's folders, and A1111's with --layout "
    "a1111") {
    using provision_test::HubEmulator;
    using provision_test::HubFile;
    using provision_test::HubStorage;
    HubEmulator hub;
    std::map<std::string, std::string> hf;  // "repo:file" -> bytes
    auto hf_repo = [&](const std::string& repo, const std::vector<std::string>& files) {
        hub.add_repo(repo);
        std::map<std::string, HubFile> contents;
        for (const auto& file : files) {
            hf[repo + ":" + file] = test_bytes(3000 + hf.size() * 100, static_cast<int>(hf.size()) + 300);
            contents.emplace(file, HubFile(hf[repo + ":" + file]));
        }
        contents.emplace("README.md", HubFile("# readme\n", HubStorage::git));
        hub.commit(repo, contents);
    };
    hf_repo("stabilityai/stable-diffusion-xl-base-1.0", {"sd_xl_base_1.0.safetensors"});
    hf_repo("stabilityai/stable-diffusion-xl-refiner-1.0", {"sd_xl_refiner_1.0.safetensors"});
    hf_repo("madebyollin/sdxl-vae-fp16-fix", {"sdxl_vae.safetensors"});
    hf_repo("xinsir/controlnet-union-sdxl-1.0", {"diffusion_pytorch_model_promax.safetensors"});
    hf_repo("h94/IP-Adapter",
            {"models/image_encoder/model.safetensors", "sdxl_models/ip-adapter_sdxl_vit-h.safetensors"});
    hf_repo("lokCX/4x-Ultrasharp", {"4x-UltraSharp.pth"});
    CivitaiEmulator civitai;
    civitai.add(typed_version(130000, 122359, "LORA", "add-detail-xl-old.safetensors", 1));
    civitai.add(typed_version(135867, 122359, "LORA", "add-detail-xl.safetensors", 0));
    civitai.add(typed_version(9208, 7808, "TextualInversion", "easynegative.safetensors"));
    civitai.add(typed_version(62833, 58390, "LORA", "add_detail.safetensors"));

    struct Placement {
        const char* layout;
        std::map<std::string, std::string> files;  ///< path under the workspace -> expected bytes
    };
    const std::string civitai_lora = test_bytes(4867, 135867), embedding = test_bytes(4208, 9208),
                      auto_lora = test_bytes(4833, 62833);
    const Placement placements[] = {
        {"",
         {{"ComfyUI/models/checkpoints/sd_xl_base_1.0.safetensors",
           hf["stabilityai/stable-diffusion-xl-base-1.0:sd_xl_base_1.0.safetensors"]},
          {"ComfyUI/models/checkpoints/sd_xl_refiner_1.0.safetensors",
           hf["stabilityai/stable-diffusion-xl-refiner-1.0:sd_xl_refiner_1.0.safetensors"]},
          {"ComfyUI/models/vae/sdxl_vae.safetensors", hf["madebyollin/sdxl-vae-fp16-fix:sdxl_vae.safetensors"]},
          {"ComfyUI/models/controlnet/controlnet-union-sdxl-promax.safetensors",
           hf["xinsir/controlnet-union-sdxl-1.0:diffusion_pytorch_model_promax.safetensors"]},
          {"ComfyUI/models/clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
           hf["h94/IP-Adapter:models/image_encoder/model.safetensors"]},
          {"ComfyUI/models/ipadapter/ip-adapter_sdxl_vit-h.safetensors",
           hf["h94/IP-Adapter:sdxl_models/ip-adapter_sdxl_vit-h.safetensors"]},
          {"ComfyUI/models/upscale_models/4x-UltraSharp.pth", hf["lokCX/4x-Ultrasharp:4x-UltraSharp.pth"]},
          {"ComfyUI/models/loras/add-detail-xl.safetensors", civitai_lora},
          {"ComfyUI/models/embeddings/easynegative.safetensors", embedding},
          {"ComfyUI/models/loras/add_detail.safetensors", auto_lora}}},
        {"a1111",
         {{"stable-diffusion-webui/models/Stable-diffusion/sd_xl_base_1.0.safetensors",
           hf["stabilityai/stable-diffusion-xl-base-1.0:sd_xl_base_1.0.safetensors"]},
          {"stable-diffusion-webui/models/VAE/sdxl_vae.safetensors",
           hf["madebyollin/sdxl-vae-fp16-fix:sdxl_vae.safetensors"]},
          {"stable-diffusion-webui/models/ControlNet/controlnet-union-sdxl-promax.safetensors",
           hf["xinsir/controlnet-union-sdxl-1.0:diffusion_pytorch_model_promax.safetensors"]},
          {"stable-diffusion-webui/models/ipadapter/ip-adapter_sdxl_vit-h.safetensors",
           hf["h94/IP-Adapter:sdxl_models/ip-adapter_sdxl_vit-h.safetensors"]},
          {"stable-diffusion-webui/models/ESRGAN/4x-UltraSharp.pth", hf["lokCX/4x-Ultrasharp:4x-UltraSharp.pth"]},
          {"stable-diffusion-webui/models/Lora/add-detail-xl.safetensors", civitai_lora},
          {"stable-diffusion-webui/embeddings/easynegative.safetensors",
           embedding},  // A1111 reads embeddings beside models/
          {"stable-diffusion-webui/models/Lora/add_detail.safetensors", auto_lora}}},
    };
    const std::string config = std::string(PROVISION_SOURCE_DIR) + "/examples/configs/comfyui.toml";
    for (const auto& placement : placements) {
        CAPTURE(placement.layout);
        TempDir dir;
        std::vector<std::string> argv = {PROVISION_CLI_PATH,    config,     "--workspace",
                                         (dir / "ws").string(), "--cacert", provision_test::test_ca().ca_cert_path};
        if (*placement.layout) {
            argv.push_back("--layout");
            argv.push_back(placement.layout);
        }
        std::vector<provision::ConnectTo> rules = hub.connect_to();
        for (const auto& rule : civitai.connect_to()) rules.push_back(rule);
        for (const auto& rule : rules) {
            argv.push_back("--connect-to");
            argv.push_back(rule.from_host + "::127.0.0.1:" + std::to_string(*rule.to_port));
        }
        auto run = provision_test::run_process(argv, {{"CIVITAI_TOKEN", CivitaiEmulator::token}});
        INFO(run.out << run.err);
        CHECK(run.exit_code == 0);
        for (const auto& item : placement.files) {
            const auto& path = item.first;  // named, not bound: clang (C++17) cannot capture a binding in INFO/CAPTURE
            const auto& bytes = item.second;
            CAPTURE(path);
            CHECK(provision_test::read_whole_file(dir / "ws" / path) == bytes);
        }
        CHECK_FALSE(std::filesystem::exists(dir / "ws/ComfyUI/models/loras/add-detail-xl-old.safetensors"));
        CHECK_FALSE(contains(run.out + run.err, CivitaiEmulator::token));
    }
}

}  // namespace suite_civitai
