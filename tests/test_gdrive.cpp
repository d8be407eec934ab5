// SPDX-License-Identifier: MIT
#include "common.hpp"
#include "support/engine_fixtures.hpp"
#include "support/gdrive_emulator.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"

namespace suite_gdrive {  // apart from the suites compiled with it (tests/meson.build)

using provision::DownloadPlan;
using provision::DriveLinkKind;
using provision::Entry;
using provision::EntryOutcome;
using provision::errc;
using provision::HttpClient;
using provision::ProvisioningSystem;
using provision::ProvisionOptions;
using provision_test::DriveEmulator;
using provision_test::DriveItemSpec;
using provision_test::DriveServing;
using provision_test::files_under;
using provision_test::RecordedRequest;
using provision_test::TempDir;
using provision_test::test_bytes;

namespace {

const std::string file_id = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123_-";

provision::HttpOptions http_options(const DriveEmulator& drive) {
    provision::HttpOptions options;
    options.ca_files = {provision_test::test_ca().ca_cert_path};
    options.connect_to = drive.connect_to();
    return options;
}

ProvisionOptions options_for(const TempDir& workspace, const DriveEmulator& drive) {
    ProvisionOptions options;
    options.workspace = workspace.path();
    options.http = http_options(drive);
    options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    return options;
}

DriveItemSpec item(const std::string& id, const std::string& name, DriveServing serving, std::size_t size = 200000) {
    DriveItemSpec spec;
    spec.id = id;
    spec.name = name;
    spec.bytes = test_bytes(size, static_cast<unsigned>(id.size() + name.size()));
    spec.serving = serving;
    return spec;
}

Entry url_entry(const std::string& url, const std::string& key_path = "models.checkpoints.gdrive-model") {
    Entry entry;
    entry.category = "checkpoints";
    entry.key_path = key_path;
    entry.source = provision::SourceKind::url;
    entry.url = url;
    return entry;
}

std::string share_link(const std::string& id) { return "https://drive.google.com/file/d/" + id + "/view?usp=sharing"; }

std::optional<provision::DriveLink> link_of(const std::string& url) {
    auto parsed = provision::parse_url(url);
    REQUIRE(parsed);
    return provision::parse_drive_link(parsed.value());
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// The query of a recorded request as decoded pairs.
provision::detail::QueryParameters query_of(const RecordedRequest& request) {
    auto question = request.target.find('?');
    return provision::detail::parse_query(question == std::string::npos ? "" : request.target.substr(question + 1));
}

std::string param(const RecordedRequest& request, const std::string& name) {
    for (const auto& [key, value] : query_of(request))
        if (key == name) return value;
    return "<absent>";
}

}  // namespace

TEST_CASE("gdrive: every share form is recognised, keeping the resource key") {
    const std::string id = file_id;
    for (const std::string& url : {
             "https://drive.google.com/file/d/" + id + "/view?usp=sharing",
             "https://drive.google.com/file/d/" + id + "/view?usp=drive_link",
             "https://drive.google.com/file/d/" + id + "/edit",
             "https://drive.google.com/file/d/" + id + "/preview",
             "https://drive.google.com/file/d/" + id,
             "https://drive.google.com/file/d/" + id + "/",
             "https://drive.google.com/file/u/1/d/" + id + "/view?usp=sharing",
             "https://drive.google.com/u/0/file/d/" + id + "/view",
             "https://drive.google.com/open?id=" + id,
             "https://drive.google.com/uc?id=" + id,
             "https://drive.google.com/uc?export=download&id=" + id,
             "https://drive.google.com/u/2/uc?id=" + id + "&export=download",
             "https://drive.google.com/a/example.com/uc?id=" + id,
             "https://docs.google.com/uc?export=download&id=" + id,
             "https://drive.usercontent.google.com/download?id=" + id + "&export=download",
             "https://drive.usercontent.google.com/download?id=" + id +
                 "&export=download&authuser=0&confirm=t&uuid=0b1e",
         }) {
        CAPTURE(url);
        auto link = link_of(url);
        REQUIRE(link);
        CHECK(link->kind == DriveLinkKind::file);
        CHECK(link->id == id);
        CHECK(link->resource_key.empty());
    }
    auto keyed =
        link_of("https://drive.google.com/file/d/0B7ZlDeWx9yz1OGRhY2Q/view?usp=sharing&resourcekey=0-AbCdEf_gh");
    REQUIRE(keyed);
    CHECK(keyed->id == "0B7ZlDeWx9yz1OGRhY2Q");
    CHECK(keyed->resource_key == "0-AbCdEf_gh");
    CHECK(link_of("https://drive.google.com/uc?id=X1&resourcekey=0-k")->resource_key == "0-k");

    struct Native {
        std::string url;
        DriveLinkKind kind;
        std::string doc_type;
    };
    for (const auto& native : std::vector<Native>{
             {"https://docs.google.com/document/d/" + id + "/edit", DriveLinkKind::google_doc, "document"},
             {"https://docs.google.com/document/u/0/d/" + id + "/edit?usp=sharing", DriveLinkKind::google_doc,
              "document"},
             {"https://docs.google.com/spreadsheets/d/" + id + "/edit#gid=0", DriveLinkKind::google_doc,
              "spreadsheets"},
             {"https://docs.google.com/presentation/d/" + id + "/view", DriveLinkKind::google_doc, "presentation"},
             {"https://drive.google.com/drive/folders/" + id + "?usp=sharing", DriveLinkKind::folder, ""},
             {"https://drive.google.com/drive/u/0/folders/" + id, DriveLinkKind::folder, ""},
         }) {
        CAPTURE(native.url);
        auto link = link_of(native.url);
        REQUIRE(link);
        CHECK(link->kind == native.kind);
        CHECK(link->id == id);
        CHECK(link->doc_type == native.doc_type);
    }
    for (const std::string& url : {
             "https://example.com/file/d/" + id + "/view",
             "https://drive.google.com.evil.example/file/d/" + id + "/view",
             std::string("https://drive.google.com/"),
             std::string("https://drive.google.com/drive/my-drive"),
             std::string("https://drive.google.com/file/d//view"),
             std::string("https://drive.google.com/uc?id=a1&id=b2"),
             std::string("https://drive.google.com/uc?id=a%2Fb"),
             std::string("https://drive.google.com/open?id=a%20b"),
         }) {
        CAPTURE(url);
        CHECK_FALSE(link_of(url));
    }
}

TEST_CASE("gdrive: the confirmation form yields its action plus every hidden input") {
    auto page_url =
        provision::parse_url("https://drive.usercontent.google.com/download?id=" + file_id + "&export=download")
            .value();
    std::string page = DriveEmulator::warning_page(file_id, "big.safetensors", "4c1c7d1a-7e7c-4b1b-9a4e-5b2f6c0a9d31");
    auto confirmed = provision::detail::drive_confirmation_form_url(page, page_url);
    REQUIRE(confirmed);
    CHECK(confirmed->host == "drive.usercontent.google.com");
    CHECK(confirmed->path == "/download");
    provision::detail::QueryParameters expected{{"id", file_id},
                                                {"export", "download"},
                                                {"authuser", "0"},
                                                {"confirm", "t"},
                                                {"uuid", "4c1c7d1a-7e7c-4b1b-9a4e-5b2f6c0a9d31"},
                                                {"at", DriveEmulator::at_token}};
    CHECK(provision::detail::parse_query(confirmed->query) == expected);  // the decoy search form's q is not there

    // Older and odder markup: id "downloadForm", a relative action with a query
    // and &amp;, single quotes, upper case, bare values, unknown hidden inputs,
    // a visible input, and an input after the form that must be ignored.
    std::string old_page =
        "<HTML><BODY><FORM ID='downloadForm' ACTION='/uc?export=view&amp;id=OLD' METHOD=post>"
        "<INPUT TYPE=HIDDEN NAME=export VALUE=download>"
        "<input name=\"confirm\" value=\"Xy_9\" type=\"Hidden\">"
        "<input type=hidden name=\"nonce\" value=\"a&quot;b&amp;c\">"
        "<input type=\"text\" name=\"visible\" value=\"no\">"
        "<input type=\"hidden\" value=\"nameless\">"
        "</FORM><input type=\"hidden\" name=\"outside\" value=\"no\"></BODY></HTML>";
    auto old_confirmed = provision::detail::drive_confirmation_form_url(old_page, page_url);
    REQUIRE(old_confirmed);
    CHECK(old_confirmed->host == "drive.usercontent.google.com");
    CHECK(old_confirmed->path == "/uc");
    provision::detail::QueryParameters old_expected{
        {"export", "download"}, {"id", "OLD"}, {"confirm", "Xy_9"}, {"nonce", "a\"b&c"}};
    CHECK(provision::detail::parse_query(old_confirmed->query) == old_expected);

    CHECK_FALSE(provision::detail::drive_confirmation_form_url(
        "<form id=\"other\" action=\"/x\"><input type=hidden name=a value=b></form>", page_url));
    CHECK_FALSE(provision::detail::drive_confirmation_form_url("<form id=\"download-form\"></form>", page_url));
    CHECK_FALSE(
        provision::detail::drive_confirmation_form_url("<formation id=\"download-form\" action=\"/x\">", page_url));
}

TEST_CASE("gdrive: the older page variants and the error pages are read") {
    using Kind = provision::detail::DrivePageReading::Kind;
    auto base = provision::parse_url("https://drive.google.com/uc?export=download&id=X").value();

    auto legacy = provision::detail::drive_legacy_confirm_link(
        "<a id=\"uc-download-link\" class=\"goog-inline-block jfk-button\" "
        "href=\"/uc?export=download&amp;confirm=9iBg&amp;id=X\">Download anyway</a>");
    REQUIRE(legacy);
    CHECK(legacy->str() == "https://docs.google.com/uc?export=download&confirm=9iBg&id=X");
    CHECK_FALSE(provision::detail::drive_legacy_confirm_link("<a href=\"/open?id=X\">name</a>"));

    auto viewer = provision::detail::drive_viewer_download_url(
        R"(<script>var c = {"title":"m","downloadUrl":"https:\/\/drive.usercontent.google.com\/download?id\u003dX\u0026export\u003ddownload\u0026confirm\u003dt"};</script>)");
    REQUIRE(viewer);
    CHECK(viewer->str() == "https://drive.usercontent.google.com/download?id=X&export=download&confirm=t");
    CHECK_FALSE(provision::detail::drive_viewer_download_url(R"("downloadUrl":"unterminated)"));
    CHECK_FALSE(provision::detail::drive_viewer_download_url(R"("downloadUrl":"http://plain.example/x")"));

    auto quota = provision::detail::read_drive_page(DriveEmulator::quota_page(), base);
    CHECK(quota.kind == Kind::quota_exceeded);
    CHECK(contains(quota.text, "Sorry, you can't view or download this file at this time."));

    auto gone = provision::detail::read_drive_page(
        "<html><p class=\"uc-error-caption\">Sorry, the file you have requested does not exist.</p></html>", base);
    CHECK(gone.kind == Kind::not_found);
    auto infected = provision::detail::read_drive_page(
        "<p class='uc-error-caption big'>Sorry, this file is infected with a virus. Only the owner is allowed to "
        "download infected files.</p>",
        base);
    CHECK(infected.kind == Kind::infected);
    auto other = provision::detail::read_drive_page("<p class=\"uc-error-subcaption\">Something &amp; else</p>", base);
    CHECK(other.kind == Kind::error_caption);
    CHECK(other.text == "Something & else");
    auto sign_in =
        provision::detail::read_drive_page("<html><head><title>Google Drive: Sign-in</title></head></html>", base);
    CHECK(sign_in.kind == Kind::sign_in);
    auto unknown = provision::detail::read_drive_page("<html><head><title>Something</title></head></html>", base);
    CHECK(unknown.kind == Kind::unknown);
    CHECK(unknown.text == "Something");
    auto form = provision::detail::read_drive_page(DriveEmulator::warning_page("X", "n", "u"), base);
    CHECK(form.kind == Kind::confirm);  // the warning page's sign-in link does not make it a sign-in page

    std::vector<provision::Header> headers{
        {"Set-Cookie", "NID=511=abc; path=/"},
        {"set-cookie", "download_warning_13058876669334088843_X=Xq3Z; Path=/uc; Secure"}};
    CHECK(provision::detail::drive_download_warning_cookie(headers) == std::optional<std::string>("Xq3Z"));
    CHECK_FALSE(provision::detail::drive_download_warning_cookie({{"Set-Cookie", "NID=1"}}));
    CHECK(provision::detail::html_unescape("a&amp;b&#39;c&#x2F;d&lt;&bogus;&") == "a&b'c/d<&bogus;&");
}

TEST_CASE("gdrive: a small shared file is installed from its share link under Drive's name") {
    DriveEmulator drive;
    auto spec = item(file_id, "Budget/2024 ü.safetensors", DriveServing::direct);
    drive.add(spec);
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, drive)};
    auto report = system.provision_from_text(
        "[models.checkpoints.gdrive-model]\nsource = \"url\"\nurl = \"" + share_link(file_id) + "\"\n", "drive.toml");
    REQUIRE(report.entries.size() == 1);
    INFO(report.entries[0].error.message);
    REQUIRE(report.ok());
    CHECK(report.entries[0].identity == "gdrive:" + file_id);
    auto installed = workspace.path() / "sdnext/models/Stable-diffusion/Budget_2024 ü.safetensors";
    CHECK(provision_test::read_whole_file(installed) == spec.bytes);
    CHECK(files_under(workspace.path() / "sdnext/models").size() == 1);

    auto start = drive.drive().requests();
    REQUIRE(start.size() == 1);
    CHECK(start[0].path == "/uc");
    CHECK(param(start[0], "export") == "download");
    CHECK(param(start[0], "id") == file_id);
    CHECK(drive.usercontent().count("/download?id=" + file_id) == 2);  // the flow, then the transfer
    CHECK(drive.accounts().requests().empty());
}

TEST_CASE("gdrive: resolving reads headers only, not the file") {
    DriveEmulator drive;
    auto spec = item(file_id, "large.safetensors", DriveServing::direct, 24u << 20);
    drive.add(spec);
    TempDir workspace;
    auto options = options_for(workspace, drive);
    options.dry_run = true;
    ProvisioningSystem system{options};
    auto report = system.provision_from_text(
        "[models.lora]\nbig = \"https://drive.google.com/uc?id=" + file_id + "\"\n", "dry.toml");
    REQUIRE(report.ok());
    REQUIRE(report.entries.size() == 1);
    CHECK(report.entries[0].status == EntryOutcome::Status::planned);
    CHECK(report.entries[0].bytes == spec.bytes.size());  // Content-Length, seen without the body
    CHECK(drive.usercontent().bytes_sent() < spec.bytes.size() / 2);
}

TEST_CASE("gdrive: a file too large to scan is confirmed with every hidden input of the warning form") {
    DriveEmulator drive;
    auto spec = item(file_id, "flux-finetune.safetensors", DriveServing::scan_warning, 300000);
    drive.add(spec);
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, drive)};
    auto report =
        system.provision_from_text("[models.checkpoints.big]\nurl = \"" + share_link(file_id) + "\"\n", "big.toml");
    REQUIRE(report.entries.size() == 1);
    INFO(report.entries[0].error.message);
    REQUIRE(report.ok());
    CHECK(provision_test::read_whole_file(workspace.path() /
                                          "sdnext/models/Stable-diffusion/flux-finetune.safetensors") == spec.bytes);

    auto uuids = drive.issued_uuids();
    REQUIRE(uuids.size() == 1);  // one warning page; the transfer reuses the confirmed URL
    auto requests = drive.usercontent().requests();
    REQUIRE(requests.size() == 3);
    CHECK(param(requests[0], "confirm") == "<absent>");
    for (std::size_t i : {std::size_t{1}, std::size_t{2}}) {
        CAPTURE(i);
        CHECK(param(requests[i], "id") == file_id);
        CHECK(param(requests[i], "export") == "download");
        CHECK(param(requests[i], "confirm") == "t");
        CHECK(param(requests[i], "uuid") == uuids[0]);
        CHECK(param(requests[i], "at") == DriveEmulator::at_token);
        CHECK(param(requests[i], "authuser") == "0");
        CHECK(param(requests[i], "q") == "<absent>");
    }
    CHECK(drive.accounts().requests().empty());
}

TEST_CASE("gdrive: the pre-2022 confirm link, download_warning cookie and viewer downloadUrl still lead to the file") {
    DriveEmulator drive;
    auto linked = item("LegacyLink01", "legacy-link.safetensors", DriveServing::legacy_confirm_link);
    auto cookie = item("LegacyCookie01", "legacy-cookie.safetensors", DriveServing::legacy_cookie);
    auto viewer = item("Viewer01", "viewer.safetensors", DriveServing::viewer_download_url);
    drive.add(linked);
    drive.add(cookie);
    drive.add(viewer);
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, drive)};
    auto report = system.provision_from_text(
        "[models.lora]\n"
        "a = \"" +
            share_link("LegacyLink01") +
            "\"\n"
            "b = \"https://drive.google.com/open?id=LegacyCookie01\"\n"
            "c = \"https://docs.google.com/uc?export=download&id=Viewer01\"\n",
        "legacy.toml");
    for (const auto& entry : report.entries) INFO(entry.key_path << ": " << entry.error.message);
    REQUIRE(report.ok());
    auto lora = workspace.path() / "sdnext/models/Lora";
    CHECK(provision_test::read_whole_file(lora / "legacy-link.safetensors") == linked.bytes);
    CHECK(provision_test::read_whole_file(lora / "legacy-cookie.safetensors") == cookie.bytes);
    CHECK(provision_test::read_whole_file(lora / "viewer.safetensors") == viewer.bytes);

    bool link_followed = false;
    bool cookie_confirmed = false;
    for (const auto& request : drive.drive().requests()) {
        if (request.header("Host") == "docs.google.com" && param(request, "confirm") == DriveEmulator::legacy_confirm)
            link_followed = true;
        if (param(request, "id") == "LegacyCookie01" &&
            param(request, "confirm") == DriveEmulator::legacy_cookie_token) {
            cookie_confirmed = true;
            CHECK(contains(request.header("Cookie"),
                           std::string("download_warning_13058876669334088843_LegacyCookie01=") +
                               DriveEmulator::legacy_cookie_token));
        }
    }
    CHECK(link_followed);
    CHECK(cookie_confirmed);
}

TEST_CASE("gdrive: each refusal names the entry, the cause and the fix, and installs nothing") {
    struct Case {
        std::string name;
        DriveItemSpec spec;
        std::string url;
        errc code;
        std::vector<std::string> words;
        std::function<void(DriveEmulator&)> setup;
    };
    std::vector<Case> cases = {
        {"quota exceeded",
         item("Quota01", "q.safetensors", DriveServing::quota_exceeded),
         share_link("Quota01"),
         errc::rate_limited,
         {"Too many users have viewed or downloaded this file recently", "try again later", "up to 24 hours"},
         nullptr},
        {"not shared publicly",
         item("Private01", "p.safetensors", DriveServing::restricted),
         share_link("Private01"),
         errc::auth,
         {"is not shared publicly", "Anyone with the link"},
         nullptr},
        {"deleted",
         item("Other01", "o.safetensors", DriveServing::direct),
         share_link("Missing01"),
         errc::not_found,
         {"Google Drive file Missing01 does not exist", "HTTP 404", "check the link"},
         nullptr},
        {"infected",
         item("Virus01", "v.safetensors", DriveServing::infected),
         share_link("Virus01"),
         errc::unsafe,
         {"infected with a virus", "only its owner"},
         nullptr},
        {"throttled",
         item("Busy01", "b.safetensors", DriveServing::direct),
         share_link("Busy01"),
         errc::rate_limited,
         {"throttling", "HTTP 429", "try again later"},
         [](DriveEmulator& d) { d.throttled = true; }},
        {"a Docs link",
         item("Doc01", "d", DriveServing::google_doc),
         "https://docs.google.com/document/d/Doc01/edit?usp=sharing",
         errc::integrity,
         {"is a Google Docs document, not a file", "upload the file itself"},
         nullptr},
        {"a Sheets item behind a file link",
         [] {
             auto doc = item("Sheet01", "s", DriveServing::google_doc);
             doc.doc_type = "spreadsheets";
             return doc;
         }(),
         "https://drive.google.com/open?id=Sheet01",
         errc::integrity,
         {"is a Google Sheets spreadsheet, not a file"},
         nullptr},
        {"a folder",
         item("Folder01", "f", DriveServing::direct),
         "https://drive.google.com/drive/folders/Folder01",
         errc::config,
         {"folder", "share each file"},
         nullptr},
        {"a Drive URL that names nothing",
         item("X01", "x", DriveServing::direct),
         "https://drive.google.com/drive/my-drive",
         errc::config,
         {"names no file", "https://drive.google.com/file/d/FILE_ID/view"},
         nullptr},
    };
    for (const auto& test : cases) {
        CAPTURE(test.name);
        DriveEmulator drive;
        drive.add(test.spec);
        if (test.setup) test.setup(drive);
        TempDir workspace;
        ProvisioningSystem system{options_for(workspace, drive)};
        auto report = system.provision_from_text("[models.lora.shared]\nurl = \"" + test.url + "\"\n", "refusals.toml");
        REQUIRE(report.entries.size() == 1);
        const auto& error = report.entries[0].error;
        CAPTURE(error.message);
        CHECK(report.entries[0].status == EntryOutcome::Status::failed);
        CHECK(error.code == test.code);
        CHECK(error.message.rfind("models.lora.shared: ", 0) == 0);
        for (const auto& word : test.words) CHECK(contains(error.message, word));
        CHECK(files_under(workspace.path() / "sdnext/models").empty());
        CHECK(drive.accounts().requests().empty());
        CHECK(drive.drive().count("/document/") == 0);  // Docs pages are never fetched
        CHECK(drive.drive().count("/spreadsheets/") == 0);
    }
}

TEST_CASE("gdrive: a Docs link is refused before any request") {
    DriveEmulator drive;
    HttpClient http{http_options(drive)};
    provision::ResolveContext context{http, {}};
    auto plan = provision::resolve_entry(url_entry("https://docs.google.com/spreadsheets/d/Doc01/edit#gid=0"), context);
    REQUIRE_FALSE(plan);
    CHECK(plan.error().code == errc::integrity);
    CHECK(drive.drive().requests().empty());
}

TEST_CASE("gdrive: the resource key travels with every request; without it the file is not public") {
    DriveEmulator drive;
    auto spec = item("0B7ZlDeWx9yz1OGRhY2Q", "old-share.safetensors", DriveServing::scan_warning);
    spec.resource_key = "0-AbCdEf_gh";
    drive.add(spec);
    HttpClient http{http_options(drive)};
    provision::ResolveContext context{http, {}};
    auto without = provision::resolve_entry(url_entry(share_link(spec.id)), context);
    REQUIRE_FALSE(without);
    CHECK(without.error().code == errc::auth);
    CHECK(contains(without.error().message, "resourcekey"));

    auto plan = provision::resolve_entry(url_entry(share_link(spec.id) + "&resourcekey=0-AbCdEf_gh"), context);
    REQUIRE(plan);
    TempDir dir;
    plan->folder = dir.path();
    provision::Downloader downloader{http, {}};
    auto installed = downloader.download(plan.value());
    REQUIRE(installed);
    CHECK(provision_test::read_whole_file(installed->path) == spec.bytes);
    std::size_t keyed = 0;
    for (auto* server : {&drive.drive(), &drive.usercontent()})
        for (const auto& request : server->requests())
            if (param(request, "resourcekey") == "0-AbCdEf_gh") ++keyed;
    // uc; then on usercontent the redirect target, the confirmed URL and the transfer
    CHECK(keyed == 4);
    CHECK(drive.drive().requests().size() + drive.usercontent().requests().size() == 1 + 4);  // + the keyless attempt
}

TEST_CASE("gdrive: a page served in the file's place at download time is never installed") {
    for (const std::string name : {"model.safetensors", "weights.zip"}) {
        CAPTURE(name);
        DriveEmulator drive;
        auto spec = item(file_id, name, DriveServing::direct);
        drive.add(spec);
        HttpClient http{http_options(drive)};
        provision::ResolveContext context{http, {}};
        auto plan = provision::resolve_entry(url_entry(share_link(file_id)), context);
        REQUIRE(plan);
        CHECK(plan->size == std::optional<std::uint64_t>(spec.bytes.size()));
        drive.quota_everywhere = true;  // Drive's quota trips between resolution and transfer
        TempDir dir;
        plan->folder = dir.path();
        provision::Downloader downloader{http, {}};
        auto result = downloader.download(plan.value());
        REQUIRE_FALSE(result);
        CHECK(result.error().code == errc::integrity);
        CHECK(contains(result.error().message, "models.checkpoints.gdrive-model"));
        CHECK(files_under(dir.path()).empty());
    }
}

TEST_CASE("gdrive: a file deleted after resolution is explained as not found") {
    DriveEmulator drive;
    drive.add(item(file_id, "gone.safetensors", DriveServing::direct));
    HttpClient http{http_options(drive)};
    provision::ResolveContext context{http, {}};
    auto plan = provision::resolve_entry(url_entry(share_link(file_id)), context);
    REQUIRE(plan);
    drive.remove(file_id);
    TempDir dir;
    plan->folder = dir.path();
    provision::Downloader downloader{http, {}};
    auto result = downloader.download(plan.value());
    REQUIRE_FALSE(result);
    CHECK(result.error().code == errc::not_found);
    CHECK(contains(result.error().message,
                   "models.checkpoints.gdrive-model: Google Drive file " + file_id + " is gone (HTTP 404)"));
}

TEST_CASE("gdrive: filename overrides Drive's name; refresh walks the flow again") {
    DriveEmulator drive;
    auto spec = item(file_id, "drive-name.safetensors", DriveServing::scan_warning);
    drive.add(spec);
    HttpClient http{http_options(drive)};
    provision::ResolveContext context{http, {}};
    auto entry = url_entry(share_link(file_id));
    entry.filename = "chosen.safetensors";
    auto plan = provision::resolve_entry(entry, context);
    REQUIRE(plan);
    CHECK(plan->file_name == "chosen.safetensors");
    REQUIRE(plan->refresh);
    auto fresh = plan->refresh();
    REQUIRE(fresh);
    CHECK(fresh->file_name == "chosen.safetensors");
    CHECK(fresh->url.str() != plan->url.str());  // a new confirmation (uuid)
    CHECK(drive.issued_uuids().size() == 2);
    TempDir dir;
    fresh->folder = dir.path();
    provision::Downloader downloader{http, {}};
    auto installed = downloader.download(fresh.value());
    REQUIRE(installed);
    CHECK(installed->path == dir / "chosen.safetensors");
    CHECK(provision_test::read_whole_file(installed->path) == spec.bytes);
}

TEST_CASE("gdrive: a Drive share link works as the config URL") {
    DriveEmulator drive;
    auto model = item("ModelBig01", "finetune.safetensors", DriveServing::scan_warning, 250000);
    drive.add(model);
    DriveItemSpec config;
    config.id = "Config01";
    config.name = "provision.toml";
    config.bytes = "[models.checkpoints.finetune]\nsource = \"url\"\nurl = \"" + share_link("ModelBig01") + "\"\n";
    drive.add(config);
    DriveItemSpec hidden = config;
    hidden.id = "ConfigPrivate01";
    hidden.serving = DriveServing::restricted;
    drive.add(hidden);
    auto doc = item("ConfigDoc01", "provision", DriveServing::google_doc);
    drive.add(doc);

    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, drive)};
    auto report = system.provision_from_url(share_link("Config01"));
    INFO((report.fatal ? report.fatal->message : std::string()));
    REQUIRE(report.ok());
    CHECK(report.origin == share_link("Config01"));
    REQUIRE(report.entries.size() == 1);
    CHECK(provision_test::read_whole_file(workspace.path() / "sdnext/models/Stable-diffusion/finetune.safetensors") ==
          model.bytes);

    auto text = system.fetch_config("https://drive.google.com/open?id=Config01");
    REQUIRE(text);
    CHECK(text.value() == config.bytes);

    auto hidden_report = system.provision_from_url(share_link("ConfigPrivate01"));
    REQUIRE(hidden_report.fatal);
    CHECK(hidden_report.fatal->code == errc::auth);
    CHECK(contains(hidden_report.fatal->message, "the config URL " + share_link("ConfigPrivate01")));
    CHECK(contains(hidden_report.fatal->message, "Anyone with the link"));
    CHECK(hidden_report.exit_code() == 3);

    auto doc_report = system.provision_from_url("https://drive.google.com/open?id=ConfigDoc01");
    REQUIRE(doc_report.fatal);
    CHECK(doc_report.fatal->code == errc::integrity);
    CHECK(contains(doc_report.fatal->message, "Google Docs document"));
    CHECK(drive.accounts().requests().empty());
}

TEST_CASE("gdrive: a config file too large for a config is refused") {
    DriveEmulator drive;
    drive.add(item("Huge01", "huge.toml", DriveServing::direct, (4u << 20) + 1));
    TempDir workspace;
    ProvisioningSystem system{options_for(workspace, drive)};
    auto report = system.provision_from_url(share_link("Huge01"));
    REQUIRE(report.fatal);
    CHECK(report.fatal->code == errc::config);
    CHECK(contains(report.fatal->message, "larger than 4194304 bytes"));
}

TEST_CASE("gdrive: failures at download time are explained by status") {
    auto response = [](int status) {
        provision::HttpResponse r;
        r.status = status;
        r.url = provision::parse_url("https://drive.usercontent.google.com/download?id=X").value();
        return r;
    };
    CHECK(provision::explain_drive_download_failure("models.x", "X", response(403)).code == errc::auth);
    CHECK(provision::explain_drive_download_failure("models.x", "X", response(404)).code == errc::not_found);
    CHECK(provision::explain_drive_download_failure("models.x", "X", response(429)).code == errc::rate_limited);
    auto server_error = provision::explain_drive_download_failure("models.x", "X", response(503));
    CHECK(server_error.code == errc::network);
    CHECK(contains(server_error.message, "models.x: Google Drive file X: Drive answered HTTP 503"));
}

}  // namespace suite_gdrive
