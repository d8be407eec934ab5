// SPDX-License-Identifier: MIT
// The seed's example configs, with their real URLs, provisioned end to end by
// the CLI against emulators of huggingface.co, civitai.com, Google Drive and a
// plain web server under example.com, all reached through --connect-to under
// their real names. What a new user would run, checked the way they would
// check it: the right bytes in the right folders, secrets only where they
// belong, failures explained, and a second run that fetches nothing.
#include "common.hpp"
#include "support/civitai_emulator.hpp"
#include "support/gdrive_emulator.hpp"
#include "support/hf_emulator.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"

#include <openssl/evp.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

using provision_test::CivitaiEmulator;
using provision_test::CivitaiFileSpec;
using provision_test::CivitaiVersionSpec;
using provision_test::DriveEmulator;
using provision_test::DriveItemSpec;
using provision_test::DriveServing;
using provision_test::HubAccess;
using provision_test::HubEmulator;
using provision_test::HubFile;
using provision_test::HubStorage;
using provision_test::HubToken;
using provision_test::LoopbackServer;
using provision_test::RecordedRequest;
using provision_test::TempDir;
using provision_test::test_bytes;

namespace {

const std::string hf_token = "hf_seedExampleToken0123456789abcdef";
const std::string example_token = "example-secret-7d1f";

std::string sha256_hex(const std::string& bytes) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 15];
    }
    return out;
}

std::string read_config(const std::string& name) {
    return provision_test::read_whole_file(std::filesystem::path(PROVISION_SOURCE_DIR) / "tests/data/configs" / name);
}

/// Every model the seed's examples name, each with its own bytes.
struct SeedWorld {
    HubEmulator hub;
    CivitaiEmulator civitai;
    DriveEmulator drive;
    std::unique_ptr<LoopbackServer> example = LoopbackServer::https({"example.com"});
    std::map<std::string, std::string> bytes;  ///< what each model is

    SeedWorld() {
        auto hf = [&](const std::string& repo, const std::string& file, std::size_t size, HubStorage how = HubStorage::lfs) {
            bytes[repo + "/" + file] = test_bytes(size, static_cast<unsigned>(bytes.size() + 100));
            return HubFile(bytes[repo + "/" + file], how);
        };
        hub.add_token(hf_token, HubToken("alice"));
        hub.add_repo("stabilityai/stable-diffusion-xl-base-1.0");
        hub.commit("stabilityai/stable-diffusion-xl-base-1.0", {{"sd_xl_base_1.0.safetensors", hf("stabilityai/stable-diffusion-xl-base-1.0", "sd_xl_base_1.0.safetensors", 700000)}});
        hub.add_repo("stabilityai/sdxl-vae");
        hub.commit("stabilityai/sdxl-vae", {{"vae/diffusion_pytorch_model.safetensors", hf("stabilityai/sdxl-vae", "vae/diffusion_pytorch_model.safetensors", 90000)}},
                   "refs/pr/1");
        hub.add_repo("black-forest-labs/FLUX.1-dev", "model", HubAccess::gated);
        hub.grant("black-forest-labs/FLUX.1-dev", "alice");
        hub.commit("black-forest-labs/FLUX.1-dev", {{"flux1-dev.safetensors", hf("black-forest-labs/FLUX.1-dev", "flux1-dev.safetensors", 900000, HubStorage::xet)},
                                                     {"ae.safetensors", hf("black-forest-labs/FLUX.1-dev", "ae.safetensors", 80000, HubStorage::xet)}});
        hub.add_repo("comfyanonymous/flux_text_encoders");
        hub.commit("comfyanonymous/flux_text_encoders", {{"clip_l.safetensors", hf("comfyanonymous/flux_text_encoders", "clip_l.safetensors", 120000)},
                                                          {"t5xxl_fp8_e4m3fn.safetensors", hf("comfyanonymous/flux_text_encoders", "t5xxl_fp8_e4m3fn.safetensors", 400000)}});
        hub.add_repo("zer0int/CLIP-GmP-ViT-L-14");
        hub.commit("zer0int/CLIP-GmP-ViT-L-14", {{"ViT-L-14-BEST-smooth-GmP-HF-format.safetensors", hf("zer0int/CLIP-GmP-ViT-L-14", "ViT-L-14-BEST-smooth-GmP-HF-format.safetensors", 150000)}});
        hub.add_repo("XLabs-AI/flux-RealismLora");
        hub.commit("XLabs-AI/flux-RealismLora", {{"lora.safetensors", hf("XLabs-AI/flux-RealismLora", "lora.safetensors", 60000)}});

        auto civitai_version = [&](int id, const std::string& model_type, const std::string& file_name, std::size_t size) {
            bytes["civitai/" + std::to_string(id)] = test_bytes(size, static_cast<unsigned>(id));
            CivitaiVersionSpec version;
            version.id = id;
            version.model_id = id + 1;
            version.model_type = model_type;
            version.files = {CivitaiFileSpec{id * 10, file_name, "Model", true, bytes["civitai/" + std::to_string(id)], std::nullopt, std::nullopt}};
            civitai.add(version);
        };
        civitai_version(58390, "LORA", "add_detail.safetensors", 300000);
        civitai_version(12345, "LORA", "model_v1.safetensors", 50000);
        civitai_version(9208, "TextualInversion", "easynegative.safetensors", 25000);

        bytes["drive"] = test_bytes(500000, 7);
        DriveItemSpec item;
        item.id = "1ABC123DEF456";
        item.name = "shared_model.safetensors";
        item.bytes = bytes["drive"];
        item.serving = DriveServing::scan_warning;
        drive.add(item);

        bytes["example/model"] = test_bytes(70000, 8);
        bytes["example/canny"] = test_bytes(65000, 9);
        // example.com answers 401 unless the header the config names came along.
        auto protected_file = [this](const std::string& key, const std::string& authorization) {
            return [this, key, authorization](const httplib::Request& req, httplib::Response& res) {
                if (req.get_header_value("Authorization") != authorization) {
                    res.status = 401;
                    res.set_content("unauthorized", "text/plain");
                    return;
                }
                example->serve_bytes(res, req, bytes.at(key));
            };
        };
        example->server().Get("/model.safetensors", protected_file("example/model", "Bearer token"));
        example->server().Get("/control/canny.safetensors", protected_file("example/canny", "Bearer " + example_token));
    }

    std::vector<std::string> argv(const std::filesystem::path& config, const std::filesystem::path& workspace) const {
        std::vector<std::string> args = {PROVISION_CLI_PATH, config.string(), "--workspace", workspace.string(), "--cacert",
                                         provision_test::test_ca().ca_cert_path};
        std::vector<provision::ConnectTo> rules = hub.connect_to();
        for (const auto& rule : civitai.connect_to()) rules.push_back(rule);
        for (const auto& rule : drive.connect_to()) rules.push_back(rule);
        rules.push_back(provision::ConnectTo{"example.com", std::nullopt, "127.0.0.1", static_cast<std::uint16_t>(example->port())});
        for (const auto& rule : rules) {
            args.push_back("--connect-to");
            args.push_back(rule.from_host + "::127.0.0.1:" + std::to_string(*rule.to_port));
        }
        return args;
    }

    std::map<std::string, std::string> env() const {
        return {{"HF_TOKEN", hf_token}, {"CIVITAI_TOKEN", CivitaiEmulator::token}, {"EXAMPLE_TOKEN", example_token}};
    }

    /// File bytes served so far by the hosts that serve files (the Hub's
    /// own answers to metadata requests carry none).
    std::uint64_t model_bytes_served() {
        return hub.cdn().bytes_sent() + civitai.storage().bytes_sent() + drive.usercontent().bytes_sent() + example->bytes_sent();
    }

    std::vector<RecordedRequest> every_request() {
        std::vector<RecordedRequest> all;
        for (LoopbackServer* server : {&hub.hub(), &hub.cdn(), &civitai.api(), &civitai.storage(), &drive.drive(), &drive.usercontent(), example.get()})
            for (const auto& request : server->requests()) all.push_back(request);
        return all;
    }
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// No request to any host but the Hub carried the Hub token, no request but
/// CivitAI's API carried the CivitAI key, and no query string carried either.
void check_secrets_stayed_home(SeedWorld& world) {
    for (const auto& request : world.hub.cdn().requests()) CHECK_FALSE(request.has_header("Authorization"));
    for (const auto& request : world.civitai.storage().requests()) CHECK_FALSE(request.has_header("Authorization"));
    for (LoopbackServer* server : {&world.drive.drive(), &world.drive.usercontent()})
        for (const auto& request : server->requests()) CHECK_FALSE(request.has_header("Authorization"));
    for (const auto& request : world.every_request()) {
        CAPTURE(request.target);
        CHECK_FALSE(contains(request.target, hf_token));
        CHECK_FALSE(contains(request.target, CivitaiEmulator::token));
        CHECK_FALSE(contains(request.target, example_token));
        if (request.header("Authorization") == "Bearer " + hf_token) {
            bool hub_request = false;
            for (const auto& hub_request_seen : world.hub.hub().requests()) hub_request = hub_request || hub_request_seen.target == request.target;
            CHECK(hub_request);
        }
    }
}

}  // namespace

TEST_CASE("seed examples: the basic config installs a Hugging Face checkpoint and a CivitAI LoRA, and a re-run fetches nothing") {
    SeedWorld world;
    TempDir dir;
    auto config = dir.write("config.toml", read_config("minimal.toml"));
    auto first = provision_test::run_process(world.argv(config, dir / "ws"), world.env());
    INFO(first.out << first.err);
    REQUIRE(first.exit_code == 0);
    auto models = dir / "ws/sdnext/models";
    CHECK(provision_test::read_whole_file(models / "Stable-diffusion/sd_xl_base_1.0.safetensors") ==
          world.bytes["stabilityai/stable-diffusion-xl-base-1.0/sd_xl_base_1.0.safetensors"]);
    CHECK(provision_test::read_whole_file(models / "Lora/add_detail.safetensors") == world.bytes["civitai/58390"]);
    check_secrets_stayed_home(world);
    // The CivitAI key reached the API, as a header.
    bool civitai_signed_in = false;
    for (const auto& request : world.civitai.api().requests())
        civitai_signed_in = civitai_signed_in || request.header("Authorization") == std::string("Bearer ") + CivitaiEmulator::token;
    CHECK(civitai_signed_in);

    auto model_bytes_before = world.model_bytes_served();
    auto second = provision_test::run_process(world.argv(config, dir / "ws"), world.env());
    INFO(second.out << second.err);
    CHECK(second.exit_code == 0);
    // Metadata requests only: not one model byte from any host.
    CHECK(world.model_bytes_served() == model_bytes_before);
}

TEST_CASE("seed examples: the FLUX config installs the gated model, its VAE and three text encoders with HF_TOKEN") {
    SeedWorld world;
    TempDir dir;
    auto config = dir.write("flux.toml", read_config("flux.toml"));
    auto run = provision_test::run_process(world.argv(config, dir / "ws"), world.env());
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);
    auto models = dir / "ws/sdnext/models";
    CHECK(provision_test::read_whole_file(models / "Stable-diffusion/flux1-dev.safetensors") ==
          world.bytes["black-forest-labs/FLUX.1-dev/flux1-dev.safetensors"]);
    CHECK(provision_test::read_whole_file(models / "VAE/ae.safetensors") == world.bytes["black-forest-labs/FLUX.1-dev/ae.safetensors"]);
    CHECK(provision_test::read_whole_file(models / "text_encoder/clip_l.safetensors") ==
          world.bytes["comfyanonymous/flux_text_encoders/clip_l.safetensors"]);
    CHECK(provision_test::read_whole_file(models / "text_encoder/t5xxl_fp8_e4m3fn.safetensors") ==
          world.bytes["comfyanonymous/flux_text_encoders/t5xxl_fp8_e4m3fn.safetensors"]);
    CHECK(provision_test::read_whole_file(models / "text_encoder/ViT-L-14-BEST-smooth-GmP-HF-format.safetensors") ==
          world.bytes["zer0int/CLIP-GmP-ViT-L-14/ViT-L-14-BEST-smooth-GmP-HF-format.safetensors"]);
    check_secrets_stayed_home(world);
    CHECK_FALSE(contains(run.out + run.err, hf_token));
    CHECK_FALSE(contains(provision_test::read_whole_file(dir / "ws/logs/provision.log"), hf_token));

    // Without the token the gated entries are named up front; the open ones still install.
    TempDir other;
    auto anonymous_env = world.env();
    anonymous_env.erase("HF_TOKEN");
    auto anonymous = provision_test::run_process(world.argv(config, other / "ws"), anonymous_env);
    INFO(anonymous.out << anonymous.err);
    CHECK(anonymous.exit_code == 3);
    CHECK(contains(anonymous.err, "models.checkpoints.flux1-dev"));
    CHECK(contains(anonymous.err, "HF_TOKEN"));
    CHECK(std::filesystem::exists(other / "ws/sdnext/models/text_encoder/clip_l.safetensors"));
    CHECK_FALSE(std::filesystem::exists(other / "ws/sdnext/models/Stable-diffusion/flux1-dev.safetensors"));
}

TEST_CASE("seed examples: every source and form in one config; a wrong digest is caught, named, and fixed by editing the config") {
    SeedWorld world;
    TempDir dir;
    std::string text = read_config("mixed.toml");
    auto config = dir.write("mixed.toml", text);
    auto first = provision_test::run_process(world.argv(config, dir / "ws"), world.env());
    INFO(first.out << first.err);
    // The config's sha256 for the SDXL VAE is a made-up one: that entry fails
    // as an integrity error naming both digests; everything else installs.
    CHECK(first.exit_code == 8);
    std::string vae_sha = sha256_hex(world.bytes["stabilityai/sdxl-vae/vae/diffusion_pytorch_model.safetensors"]);
    CHECK(contains(first.err, "models.vae.sdxl-vae"));
    CHECK(contains(first.err, "63aeecb90ff7a1c1b1d7a1e7b1d6a9e1c4d1f2a3b4c5d6e7f8091a2b3c4d5e6f"));
    CHECK(contains(first.err, vae_sha));
    auto models = dir / "ws/sdnext/models";
    CHECK_FALSE(std::filesystem::exists(models / "VAE/sdxl_vae.safetensors"));

    std::map<std::string, std::string> expected = {
        {"Stable-diffusion/sd_xl_base_1.0.safetensors", world.bytes["stabilityai/stable-diffusion-xl-base-1.0/sd_xl_base_1.0.safetensors"]},
        {"Lora/custom_name.safetensors", world.bytes["civitai/12345"]},
        {"embeddings/easynegative.safetensors", world.bytes["civitai/9208"]},
        {"VAE/model.safetensors", world.bytes["example/model"]},
        {"Stable-diffusion/custom-name.safetensors", world.bytes["drive"]},
        {"Lora/shared_model.safetensors", world.bytes["drive"]},
        {"Lora/model.safetensors", std::string()},  // simple-model: example.com without the header answers 401
        {"Lora/lora.safetensors", world.bytes["XLabs-AI/flux-RealismLora/lora.safetensors"]},
        {"text_encoder/clip_l.safetensors", world.bytes["comfyanonymous/flux_text_encoders/clip_l.safetensors"]},
        {"ControlNet/canny.safetensors", world.bytes["example/canny"]},
    };
    for (const auto& [path, content] : expected) {
        CAPTURE(path);
        if (content.empty()) {
            CHECK_FALSE(std::filesystem::exists(models / path));
        } else {
            CHECK(provision_test::read_whole_file(models / path) == content);
        }
    }
    // simple-model has no header, and example.com refused it: explained, not saved.
    CHECK(contains(first.err, "models.lora.simple-model"));
    CHECK(contains(first.err, "401"));
    check_secrets_stayed_home(world);
    CHECK_FALSE(contains(first.out + first.err, example_token));
    CHECK_FALSE(contains(first.out + first.err, CivitaiEmulator::token));

    // The user fixes the digest (in upper case, as CivitAI and many READMEs
    // print it) and drops the entry that needs a header: the re-run fetches
    // the VAE only.
    auto fixed_text = text;
    auto at = fixed_text.find("63AEECB90FF7A1C1B1D7A1E7B1D6A9E1C4D1F2A3B4C5D6E7F8091A2B3C4D5E6F");
    REQUIRE(at != std::string::npos);
    std::string upper = vae_sha;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    fixed_text.replace(at, 64, upper);
    at = fixed_text.find("simple-model = ");
    REQUIRE(at != std::string::npos);
    fixed_text.erase(at, fixed_text.find('\n', at) - at + 1);
    auto fixed = dir.write("mixed.toml", fixed_text);
    auto model_bytes_before = world.model_bytes_served();
    auto second = provision_test::run_process(world.argv(fixed, dir / "ws"), world.env());
    INFO(second.out << second.err);


    CHECK(second.exit_code == 0);
    CHECK(provision_test::read_whole_file(models / "VAE/sdxl_vae.safetensors") ==
          world.bytes["stabilityai/sdxl-vae/vae/diffusion_pytorch_model.safetensors"]);
    // The VAE, plus one byte per Drive entry: Drive names a file only in the
    // answer that carries it, so its resolver asks for the first byte alone.
    CHECK(world.model_bytes_served() - model_bytes_before ==
          world.bytes["stabilityai/sdxl-vae/vae/diffusion_pytorch_model.safetensors"].size() + 2);
}
