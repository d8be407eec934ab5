// SPDX-License-Identifier: MIT
// The seed's example configs, with their real URLs, provisioned end to end by
// the CLI against emulators of huggingface.co, civitai.com, Google Drive and a
// plain web server under example.com, all reached through --connect-to under
// their real names. What a new user would run, checked the way they would
// check it: the right bytes in the right folders, secrets only where they
// belong, failures explained, and a second run that fetches nothing.
#include "common.hpp"
#include "support/run_process.hpp"
#include "support/seed_world.hpp"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace suite_seed_examples {  // apart from the suites compiled with it (tests/meson.build)

using provision_test::CivitaiEmulator;
using provision_test::LoopbackServer;
using provision_test::RecordedRequest;
using provision_test::seed_example_token;
using provision_test::seed_hf_token;
using provision_test::SeedWorld;
using provision_test::TempDir;

namespace {

std::string read_config(const std::string& name) {
    return provision_test::read_whole_file(std::filesystem::path(PROVISION_SOURCE_DIR) / "tests/data/configs" / name);
}

std::vector<std::string> argv(const SeedWorld& world, const std::filesystem::path& config,
                              const std::filesystem::path& workspace) {
    std::vector<std::string> args = {PROVISION_CLI_PATH, config.string(), "--workspace", workspace.string()};
    for (auto& option : world.cli_options()) args.push_back(option);
    return args;
}

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
        CHECK_FALSE(contains(request.target, seed_hf_token));
        CHECK_FALSE(contains(request.target, CivitaiEmulator::token));
        CHECK_FALSE(contains(request.target, seed_example_token));
        if (request.header("Authorization") == "Bearer " + seed_hf_token) {
            bool hub_request = false;
            for (const auto& hub_request_seen : world.hub.hub().requests())
                hub_request = hub_request || hub_request_seen.target == request.target;
            CHECK(hub_request);
        }
    }
}

}  // namespace

TEST_CASE(
    "seed examples: the basic config installs a Hugging Face checkpoint and a CivitAI LoRA, and a re-run fetches "
    "nothing") {
    SeedWorld world;
    TempDir dir;
    auto config = dir.write("config.toml", read_config("minimal.toml"));
    auto first = provision_test::run_process(argv(world, config, dir / "ws"), world.env());
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
        civitai_signed_in =
            civitai_signed_in || request.header("Authorization") == std::string("Bearer ") + CivitaiEmulator::token;
    CHECK(civitai_signed_in);

    auto model_bytes_before = world.model_bytes_served();
    auto second = provision_test::run_process(argv(world, config, dir / "ws"), world.env());
    INFO(second.out << second.err);
    CHECK(second.exit_code == 0);
    // Metadata requests only: not one model byte from any host.
    CHECK(world.model_bytes_served() == model_bytes_before);
}

TEST_CASE("seed examples: the FLUX config installs the gated model, its VAE and three text encoders with HF_TOKEN") {
    SeedWorld world;
    TempDir dir;
    auto config = dir.write("flux.toml", read_config("flux.toml"));
    auto run = provision_test::run_process(argv(world, config, dir / "ws"), world.env());
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);
    auto models = dir / "ws/sdnext/models";
    CHECK(provision_test::read_whole_file(models / "Stable-diffusion/flux1-dev.safetensors") ==
          world.bytes["black-forest-labs/FLUX.1-dev/flux1-dev.safetensors"]);
    CHECK(provision_test::read_whole_file(models / "VAE/ae.safetensors") ==
          world.bytes["black-forest-labs/FLUX.1-dev/ae.safetensors"]);
    CHECK(provision_test::read_whole_file(models / "text_encoder/clip_l.safetensors") ==
          world.bytes["comfyanonymous/flux_text_encoders/clip_l.safetensors"]);
    CHECK(provision_test::read_whole_file(models / "text_encoder/t5xxl_fp8_e4m3fn.safetensors") ==
          world.bytes["comfyanonymous/flux_text_encoders/t5xxl_fp8_e4m3fn.safetensors"]);
    CHECK(provision_test::read_whole_file(models / "text_encoder/ViT-L-14-BEST-smooth-GmP-HF-format.safetensors") ==
          world.bytes["zer0int/CLIP-GmP-ViT-L-14/ViT-L-14-BEST-smooth-GmP-HF-format.safetensors"]);
    check_secrets_stayed_home(world);
    CHECK_FALSE(contains(run.out + run.err, seed_hf_token));
    CHECK_FALSE(contains(provision_test::read_whole_file(dir / "ws/logs/provision.log"), seed_hf_token));

    // Without the token the gated entries are named up front; the open ones still install.
    TempDir other;
    auto anonymous_env = world.env();
    anonymous_env.erase("HF_TOKEN");
    auto anonymous = provision_test::run_process(argv(world, config, other / "ws"), anonymous_env);
    INFO(anonymous.out << anonymous.err);
    CHECK(anonymous.exit_code == 3);
    CHECK(contains(anonymous.err, "models.checkpoints.flux1-dev"));
    CHECK(contains(anonymous.err, "HF_TOKEN"));
    CHECK(std::filesystem::exists(other / "ws/sdnext/models/text_encoder/clip_l.safetensors"));
    CHECK_FALSE(std::filesystem::exists(other / "ws/sdnext/models/Stable-diffusion/flux1-dev.safetensors"));
}

TEST_CASE(
    "seed examples: every source and form in one config; a wrong digest is caught, named, and fixed by editing the "
    "config") {
    SeedWorld world;
    TempDir dir;
    std::string text = read_config("mixed.toml");
    auto config = dir.write("mixed.toml", text);
    auto first = provision_test::run_process(argv(world, config, dir / "ws"), world.env());
    INFO(first.out << first.err);
    // The config's sha256 for the SDXL VAE is a made-up one: that entry fails
    // as an integrity error naming both digests; everything else installs.
    CHECK(first.exit_code == 8);
    std::string vae_sha =
        provision::detail::sha256_hex(world.bytes["stabilityai/sdxl-vae/vae/diffusion_pytorch_model.safetensors"]);
    CHECK(contains(first.err, "models.vae.sdxl-vae"));
    CHECK(contains(first.err, "63aeecb90ff7a1c1b1d7a1e7b1d6a9e1c4d1f2a3b4c5d6e7f8091a2b3c4d5e6f"));
    CHECK(contains(first.err, vae_sha));
    auto models = dir / "ws/sdnext/models";
    CHECK_FALSE(std::filesystem::exists(models / "VAE/sdxl_vae.safetensors"));

    std::map<std::string, std::string> expected = {
        {"Stable-diffusion/sd_xl_base_1.0.safetensors",
         world.bytes["stabilityai/stable-diffusion-xl-base-1.0/sd_xl_base_1.0.safetensors"]},
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
    for (const auto& item : expected) {
        const auto& path = item.first;  // named, not bound: clang (C++17) cannot capture a binding in INFO/CAPTURE
        const auto& content = item.second;
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
    CHECK_FALSE(contains(first.out + first.err, seed_example_token));
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
    auto second = provision_test::run_process(argv(world, fixed, dir / "ws"), world.env());
    INFO(second.out << second.err);

    CHECK(second.exit_code == 0);
    CHECK(provision_test::read_whole_file(models / "VAE/sdxl_vae.safetensors") ==
          world.bytes["stabilityai/sdxl-vae/vae/diffusion_pytorch_model.safetensors"]);
    // The VAE, plus at most one byte per Drive entry: Drive names a file only
    // in the answer that carries it, so its resolver asks for the first byte
    // alone, and hangs up once it has the headers. Whether that byte was
    // already out when the connection closed is the server's race, not ours.
    auto vae_size = world.bytes["stabilityai/sdxl-vae/vae/diffusion_pytorch_model.safetensors"].size();
    auto served = world.model_bytes_served() - model_bytes_before;
    CHECK(served >= vae_size);
    CHECK(served <= vae_size + 2);
}

}  // namespace suite_seed_examples
