// SPDX-License-Identifier: MIT
// provision.lock: what a successful run pins, and --locked catching upstream moves.
#include "common.hpp"
#include "support/civitai_emulator.hpp"
#include "support/hf_emulator.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"

#include <mutex>

namespace suite_lockfile {  // apart from the suites compiled with it (tests/meson.build)

using provision::EntryOutcome;
using provision::errc;
using provision::Lockfile;
using provision::ProvisioningSystem;
using provision::ProvisionOptions;
using provision_test::CivitaiEmulator;
using provision_test::CivitaiFileSpec;
using provision_test::CivitaiVersionSpec;
using provision_test::HubEmulator;
using provision_test::HubFile;
using provision_test::HubToken;
using provision_test::LoopbackServer;
using provision_test::TempDir;
using provision_test::test_bytes;

namespace {

const std::string hf_token = "hf_lockTestSecretToken0123456789";
const std::string query_secret = "urlQuerySecret123";
const std::string header_secret = "headerSecretValue456";
const std::string userinfo_secret = "userInfoSecret789";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

CivitaiVersionSpec tweak_version(const std::string& bytes) {
    CivitaiVersionSpec version;
    version.id = 58390;
    version.model_id = 58;
    version.files = {CivitaiFileSpec{1001, "add_detail.safetensors", "Model", true, bytes, std::nullopt, std::nullopt}};
    return version;
}

/// A Hub, a CivitAI and a plain file server, all on loopback under their real names.
struct World {
    HubEmulator hub;
    CivitaiEmulator civitai;
    std::unique_ptr<LoopbackServer> files = LoopbackServer::https({"models.example"});
    std::string base = test_bytes(70000, 1);
    std::string tweak = test_bytes(50000, 2);
    std::string neg = test_bytes(3000, 4);
    std::string first_commit;
    std::mutex vae_mutex;
    std::string vae = test_bytes(40000, 3);

    World() {
        hub.add_repo("org/base");
        first_commit = hub.commit("org/base", {{"base.safetensors", HubFile{base}}});
        hub.add_token(hf_token, HubToken("alice"));
        civitai.add(tweak_version(tweak));
        files->server().Get("/vae.safetensors", [this](const httplib::Request& req, httplib::Response& res) {
            std::string body;
            {
                std::lock_guard<std::mutex> lock(vae_mutex);
                body = vae;
            }
            files->serve_bytes(res, req, body);
        });
        files->server().Get("/neg.pt", [this](const httplib::Request& req, httplib::Response& res) {
            files->serve_bytes(res, req, neg);
        });
    }

    void change_vae(std::string bytes) {
        std::lock_guard<std::mutex> lock(vae_mutex);
        vae = std::move(bytes);
    }

    std::vector<provision::ConnectTo> connect_to() const {
        auto rules = hub.connect_to();
        for (const auto& rule : civitai.connect_to()) rules.push_back(rule);
        rules.push_back(provision::ConnectTo{"models.example", std::nullopt, "127.0.0.1",
                                             static_cast<std::uint16_t>(files->port())});
        return rules;
    }

    ProvisionOptions options(const std::filesystem::path& workspace) const {
        ProvisionOptions options;
        options.workspace = workspace;
        options.http.ca_files = {provision_test::test_ca().ca_cert_path};
        options.http.connect_to = connect_to();
        options.credentials.hf_token = hf_token;
        options.credentials.civitai_token = CivitaiEmulator::token;
        options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
        return options;
    }

    std::vector<std::string> cli_args(const std::filesystem::path& config,
                                      const std::filesystem::path& workspace) const {
        std::vector<std::string> args = {PROVISION_CLI_PATH, config.string(), "--workspace",
                                         workspace.string(), "--cacert",      provision_test::test_ca().ca_cert_path};
        for (const auto& rule : connect_to()) {
            args.push_back("--connect-to");
            args.push_back(rule.from_host + "::127.0.0.1:" + std::to_string(*rule.to_port));
        }
        return args;
    }
};

const std::string hf_entry = "[models.checkpoints.base]\nrepo = \"org/base\"\nfile = \"base.safetensors\"\n\n";
const std::string civitai_entry = "[models.lora.tweak]\nversion_id = \"58390\"\n\n";
const std::string url_entries =
    "[models.vae.plain]\nurl = \"https://models.example/vae.safetensors?token=" + query_secret +
    "\"\nauth_header = \"Bearer " + header_secret +
    "\"\n\n"
    "[models.embeddings.neg]\nurl = \"https://someone:" +
    userinfo_secret + "@models.example/neg.pt\"\n";
const std::string full_config = hf_entry + civitai_entry + url_entries;

void require_ok(const provision::Report& report) {
    for (const auto& entry : report.entries) INFO(entry.key_path << ": " << entry.error.message);
    if (report.fatal) INFO(report.fatal->message);
    REQUIRE(report.ok());
}

const EntryOutcome& outcome_of(const provision::Report& report, const std::string& key) {
    for (const auto& entry : report.entries)
        if (entry.key_path == key) return entry;
    FAIL("no outcome for " << key);
    return report.entries.front();
}

/// Provisions the full config into `workspace` and returns the lock it wrote.
Lockfile provision_and_lock(World& world, const TempDir& workspace) {
    ProvisioningSystem system{world.options(workspace.path())};
    auto report = system.provision_from_text(full_config, "fleet.toml");
    require_ok(report);
    auto lock = provision::read_lockfile(workspace.path() / "provision.lock");
    REQUIRE(lock.ok());
    return lock.value();
}

}  // namespace

TEST_CASE(
    "lockfile: a successful run pins every file, by commit, file id and URL, with size and SHA-256, and no secret") {
    World world;
    TempDir workspace;
    auto lock = provision_and_lock(world, workspace);
    REQUIRE(lock.files.size() == 4);
    const auto& hf = *lock.records_of("models.checkpoints.base").at(0);
    CHECK(hf.source == provision::SourceKind::huggingface);
    CHECK(hf.repo == "org/base");
    CHECK(hf.revision == "main");
    CHECK(hf.commit == world.first_commit);
    CHECK(hf.repo_file == "base.safetensors");
    CHECK(hf.file == "base.safetensors");
    CHECK(hf.path == "sdnext/models/Stable-diffusion/base.safetensors");
    CHECK(hf.size == world.base.size());
    CHECK(hf.sha256 == provision::detail::sha256_hex(world.base));
    const auto& civitai = *lock.records_of("models.lora.tweak").at(0);
    CHECK(civitai.version_id == "58390");
    CHECK(civitai.file_id == "1001");
    CHECK(civitai.path == "sdnext/models/Lora/add_detail.safetensors");
    CHECK(civitai.sha256 == provision::detail::sha256_hex(world.tweak));
    const auto& plain = *lock.records_of("models.vae.plain").at(0);
    CHECK(plain.url == "https://models.example/vae.safetensors?token=***");
    CHECK(plain.size == world.vae.size());
    const auto& neg = *lock.records_of("models.embeddings.neg").at(0);
    CHECK(neg.url == "https://models.example/neg.pt");
    CHECK(neg.sha256 == provision::detail::sha256_hex(world.neg));

    std::string text = provision_test::read_whole_file(workspace.path() / "provision.lock");
    for (const auto& secret :
         {hf_token, std::string(CivitaiEmulator::token), query_secret, header_secret, userinfo_secret}) {
        CAPTURE(secret);
        CHECK_FALSE(contains(text, secret));
    }
    // The text is the lock: read back and written again, it is the same.
    CHECK(provision::lockfile_text(lock) == text);
}

TEST_CASE("lockfile: no lock after a failed run, a dry run, or with write_lock off; --lock-out puts it elsewhere") {
    World world;
    {
        TempDir workspace;
        ProvisioningSystem system{world.options(workspace.path())};
        auto report = system.provision_from_text(
            hf_entry + "[models.lora]\ngone = \"https://models.example/missing.bin\"\n", "f.toml");
        CHECK_FALSE(report.ok());
        CHECK_FALSE(std::filesystem::exists(workspace.path() / "provision.lock"));
    }
    {
        TempDir workspace;
        auto options = world.options(workspace.path());
        options.dry_run = true;
        ProvisioningSystem system{options};
        require_ok(system.provision_from_text(full_config, "f.toml"));
        CHECK_FALSE(std::filesystem::exists(workspace.path() / "provision.lock"));
    }
    {
        TempDir workspace;
        auto options = world.options(workspace.path());
        options.write_lock = false;
        ProvisioningSystem system{options};
        require_ok(system.provision_from_text(hf_entry, "f.toml"));
        CHECK_FALSE(std::filesystem::exists(workspace.path() / "provision.lock"));
    }
    TempDir dir;
    auto config = dir.write("c.toml", hf_entry);
    auto args = world.cli_args(config, dir / "ws");
    args.push_back("--lock-out");
    args.push_back((dir / "pins/fleet.lock").string());
    auto result = provision_test::run_process(args);
    INFO(result.out << result.err);
    CHECK(result.exit_code == 0);
    CHECK(std::filesystem::exists(dir / "pins/fleet.lock"));
    CHECK_FALSE(std::filesystem::exists(dir / "ws/provision.lock"));
}

TEST_CASE(
    "lockfile: --locked installs the pinned bits on another machine, even after the branch moved without touching "
    "them") {
    World world;
    TempDir first;
    auto lock = provision_and_lock(world, first);
    // main moves on: a README is added, the model is the same bytes.
    world.hub.commit("org/base", {{"base.safetensors", HubFile{world.base}},
                                  {"README.md", HubFile{"# base", provision_test::HubStorage::git}}});

    TempDir second;
    auto options = world.options(second.path());
    options.locked = lock;
    ProvisioningSystem system{options};
    auto report = system.provision_from_text(full_config, "fleet.toml");
    require_ok(report);
    auto models = second.path() / "sdnext/models";
    CHECK(provision_test::read_whole_file(models / "Stable-diffusion/base.safetensors") == world.base);
    CHECK(provision_test::read_whole_file(models / "Lora/add_detail.safetensors") == world.tweak);
    CHECK(provision_test::read_whole_file(models / "VAE/vae.safetensors") == world.vae);
    CHECK(provision_test::read_whole_file(models / "embeddings/neg.pt") == world.neg);
    CHECK(outcome_of(report, "models.checkpoints.base").identity.find(world.first_commit) != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(second.path() / "provision.lock"));  // a locked run leaves the lock alone
}

TEST_CASE(
    "lockfile: --locked fails a moved branch whose file changed, a changed CivitAI file and changed URL content") {
    World world;
    TempDir first;
    auto lock = provision_and_lock(world, first);
    std::string new_commit = world.hub.commit("org/base", {{"base.safetensors", HubFile{test_bytes(70000, 99)}}});
    world.civitai.add(tweak_version(test_bytes(50000, 98)));
    world.change_vae(test_bytes(40000, 97));

    TempDir second;
    auto options = world.options(second.path());
    options.locked = lock;
    ProvisioningSystem system{options};
    auto report = system.provision_from_text(full_config, "fleet.toml");
    CHECK_FALSE(report.ok());
    CHECK(report.exit_code() == 8);

    const auto& hf = outcome_of(report, "models.checkpoints.base");
    CHECK(hf.status == EntryOutcome::Status::failed);
    CHECK(hf.error.code == errc::integrity);
    CHECK(contains(hf.error.message, "upstream moved: main of org/base now points at commit " + new_commit));
    CHECK(contains(hf.error.message, "pinned at commit " + world.first_commit));
    CHECK(contains(hf.error.message, "run once without --locked"));

    const auto& civitai = outcome_of(report, "models.lora.tweak");
    CHECK(civitai.error.code == errc::integrity);
    CHECK(contains(civitai.error.message,
                   "CivitAI file 1001 now has SHA-256 " + provision::detail::sha256_hex(test_bytes(50000, 98))));

    const auto& plain = outcome_of(report, "models.vae.plain");
    CHECK(plain.error.code == errc::integrity);
    CHECK(contains(plain.error.message, "no longer match what the lock pins"));
    CHECK_FALSE(contains(plain.error.message, query_secret));

    CHECK(outcome_of(report, "models.embeddings.neg").status == EntryOutcome::Status::installed);  // the rest still run
    auto models = second.path() / "sdnext/models";
    CHECK_FALSE(std::filesystem::exists(models / "Stable-diffusion/base.safetensors"));
    CHECK_FALSE(std::filesystem::exists(models / "Lora/add_detail.safetensors"));
    CHECK_FALSE(std::filesystem::exists(models / "VAE/vae.safetensors"));
}

TEST_CASE("lockfile: --locked fails entries the lock does not pin, lock entries the config lost, and edited entries") {
    World world;
    TempDir first;
    auto lock = provision_and_lock(world, first);
    std::string edited = "[models.checkpoints.base]\nrepo = \"org/other\"\nfile = \"base.safetensors\"\n\n" +
                         civitai_entry +
                         "[models.lora.added]\nversion_id = \"58390\"\n";  // vae.plain and embeddings.neg are gone
    TempDir second;
    auto options = world.options(second.path());
    options.locked = lock;
    ProvisioningSystem system{options};
    auto report = system.provision_from_text(edited, "edited.toml");
    CHECK(report.exit_code() == 2);
    const auto& base = outcome_of(report, "models.checkpoints.base");
    CHECK(base.error.code == errc::config);
    CHECK(contains(base.error.message, "repo is now \"org/other\" but the lock pins \"org/base\""));
    CHECK(outcome_of(report, "models.lora.tweak").status == EntryOutcome::Status::installed);
    const auto& added = outcome_of(report, "models.lora.added");
    CHECK(added.error.code == errc::config);
    CHECK(contains(added.error.message, "models.lora.added: not pinned in"));
    const auto& gone = outcome_of(report, "models.vae.plain");
    CHECK(gone.status == EntryOutcome::Status::failed);
    CHECK(contains(gone.error.message, "models.vae.plain: pinned in the lock ("));
    CHECK(contains(gone.error.message, "but no longer in the config"));
    CHECK(outcome_of(report, "models.embeddings.neg").status == EntryOutcome::Status::failed);
    CHECK(report.entries.size() == 5);
}

TEST_CASE("lockfile: a broken lock is reported with file:line:column and key path, every problem at once") {
    std::string text =
        "version = 1\n"
        "[[file]]\n"
        "entry = \"models.lora.x\"\n"
        "file = \"x.safetensors\"\n"
        "source = \"url\"\n"
        "url = \"https://example.com/x\"\n"
        "path = \"x\"\n"
        "sha256 = \"ABC\"\n"
        "[[file]]\n"
        "entry = \"models.lora.y\"\n"
        "source = \"ftp\"\n";
    auto lock = provision::parse_lockfile(text, "fleet.lock");
    REQUIRE_FALSE(lock.ok());
    CHECK(lock.error().code == errc::config);
    const std::string& message = lock.error().message;
    CHECK(contains(message, "fleet.lock:8:10: file[0].sha256: expected 64 lower-case hex digits"));
    CHECK(contains(message, "fleet.lock:2:1: file[0].size: missing"));
    CHECK(contains(message, "fleet.lock:11:10: file[1].source: \"ftp\" is not a source"));
    CHECK(contains(message, "file[1].file: missing"));
    CHECK(contains(message, "run without --locked to write a new one"));

    auto syntax = provision::parse_lockfile("version = 1\n[[file]\n", "bad.lock");
    REQUIRE_FALSE(syntax.ok());
    CHECK(contains(syntax.error().message, "bad.lock:2:"));
    auto future = provision::parse_lockfile("version = 7\n", "new.lock");
    REQUIRE_FALSE(future.ok());
    CHECK(contains(future.error().message, "new.lock:1:11: version: is 7"));
    auto missing = provision::read_lockfile("/nonexistent/provision.lock");
    REQUIRE_FALSE(missing.ok());
    CHECK(contains(missing.error().message, "no such file"));
}

TEST_CASE("lockfile: the CLI's --locked exits 8 naming what moved, and 2 for an unreadable lock") {
    World world;
    TempDir dir;
    auto config = dir.write("c.toml", hf_entry + url_entries);
    auto first = provision_test::run_process(world.cli_args(config, dir / "ws1"));
    INFO(first.out << first.err);
    REQUIRE(first.exit_code == 0);
    REQUIRE(std::filesystem::exists(dir / "ws1/provision.lock"));

    auto locked_args = world.cli_args(config, dir / "ws2");
    locked_args.push_back("--locked");
    locked_args.push_back((dir / "ws1/provision.lock").string());
    auto same = provision_test::run_process(locked_args);
    INFO(same.out << same.err);
    CHECK(same.exit_code == 0);

    world.change_vae(test_bytes(40000, 55));
    auto moved_args = world.cli_args(config, dir / "ws3");
    moved_args.push_back("--locked");
    moved_args.push_back((dir / "ws1/provision.lock").string());
    auto moved = provision_test::run_process(moved_args);
    INFO(moved.out << moved.err);
    CHECK(moved.exit_code == 8);
    CHECK(contains(moved.out + moved.err, "no longer match what the lock pins"));

    auto bad_args = world.cli_args(config, dir / "ws4");
    bad_args.push_back("--locked");
    bad_args.push_back((dir / "nothing.lock").string());
    auto bad = provision_test::run_process(bad_args);
    CHECK(bad.exit_code == 2);
    CHECK(contains(bad.err, "cannot read the lock file"));
}

TEST_CASE(
    "lockfile: an entry with several files pins each one, and --locked names a changed, an added and a removed file") {
    World world;
    world.hub.add_repo("org/pack");
    std::string a = test_bytes(20000, 61), b = test_bytes(21000, 62);
    std::string first = world.hub.commit("org/pack", {{"a.safetensors", HubFile{a}}, {"b.safetensors", HubFile{b}}});
    std::string config = "[models.text_encoder.pack]\nrepo = \"org/pack\"\ninclude = [\"*.safetensors\"]\n";
    TempDir one;
    ProvisioningSystem system{world.options(one.path())};
    require_ok(system.provision_from_text(config, "pack.toml"));
    auto lock = provision::read_lockfile(one.path() / "provision.lock");
    REQUIRE(lock.ok());
    REQUIRE(lock->files.size() == 2);
    for (const auto& record : lock->files) {
        CHECK(record.commit == first);
        CHECK(provision::detail::lockfile::listed_entry_of(record.entry) == "models.text_encoder.pack");
    }
    CHECK(lock->files[0].repo_file != lock->files[1].repo_file);

    // Upstream: a changed, b removed, c added.
    world.hub.commit("org/pack", {{"a.safetensors", HubFile{test_bytes(20000, 63)}},
                                  {"c.safetensors", HubFile{test_bytes(100, 64)}}});
    TempDir two;
    auto options = world.options(two.path());
    options.locked = lock.value();
    ProvisioningSystem locked{options};
    auto report = locked.provision_from_text(config, "pack.toml");
    CHECK(report.exit_code() == 8);
    std::string messages;
    for (const auto& entry : report.entries) {
        CHECK(entry.status == EntryOutcome::Status::failed);
        CHECK(entry.error.code == errc::integrity);
        messages += entry.error.message + "\n";
    }
    INFO(messages);
    CHECK(
        contains(messages, "lists a.safetensors with SHA-256 " + provision::detail::sha256_hex(test_bytes(20000, 63))));
    CHECK(contains(messages, "the file is different from the one pinned at commit " + first));
    CHECK(contains(messages, "now lists c.safetensors, which is not among the files the lock pins"));
    CHECK(contains(messages, "org/pack no longer lists b.safetensors, which the lock pins"));
    CHECK_FALSE(std::filesystem::exists(two.path() / "sdnext/models/text_encoder/a.safetensors"));
}

TEST_CASE("lockfile: --locked with --dry-run says what moved without fetching a model byte") {
    World world;
    TempDir first;
    auto lock = provision_and_lock(world, first);
    world.hub.commit("org/base", {{"base.safetensors", HubFile{test_bytes(70000, 91)}}});
    std::uint64_t served_before =
        world.hub.cdn().bytes_sent() + world.civitai.storage().bytes_sent() + world.files->bytes_sent();

    TempDir second;
    auto options = world.options(second.path());
    options.locked = lock;
    options.dry_run = true;
    ProvisioningSystem system{options};
    auto report = system.provision_from_text(full_config, "fleet.toml");
    CHECK(report.exit_code() == 8);
    const auto& hf = outcome_of(report, "models.checkpoints.base");
    CHECK(hf.error.code == errc::integrity);
    CHECK(contains(hf.error.message, "upstream moved"));
    const auto& civitai = outcome_of(report, "models.lora.tweak");
    CHECK(civitai.status == EntryOutcome::Status::planned);
    REQUIRE(civitai.expected_size);
    CHECK(*civitai.expected_size == world.tweak.size());  // the pinned size
    CHECK(civitai.digest_known);
    // One byte per plain URL entry at most: the dry run's reachability probe.
    CHECK(world.hub.cdn().bytes_sent() + world.civitai.storage().bytes_sent() + world.files->bytes_sent() <=
          served_before + 2);
    CHECK_FALSE(std::filesystem::exists(second.path() / "sdnext"));
}

}  // namespace suite_lockfile
