// SPDX-License-Identifier: MIT
// The world the seed's example configs point at, offline: emulators of
// huggingface.co (with its CDN), civitai.com (with its storage), Google Drive
// and example.com, holding a model for every entry the examples name, under
// their real host names. tests/test_seed_examples.cpp provisions the examples
// against it; tests/support/emulated_services.cpp serves it for the demo and
// for trying provision by hand.
#ifndef PROVISION_TEST_SEED_WORLD_HPP
#define PROVISION_TEST_SEED_WORLD_HPP

#include "civitai_emulator.hpp"
#include "gdrive_emulator.hpp"
#include "hf_emulator.hpp"
#include "loopback_server.hpp"
#include "test_bytes.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace provision_test {

inline const std::string seed_hf_token = "hf_seedExampleToken0123456789abcdef";
inline const std::string seed_example_token = "example-secret-7d1f";

/// Every model the seed's examples name, each with its own bytes.
struct SeedWorld {
    HubEmulator hub;
    CivitaiEmulator civitai;
    DriveEmulator drive;
    std::unique_ptr<LoopbackServer> example = LoopbackServer::https({"example.com"});
    std::map<std::string, std::string> bytes;  ///< what each model is

    SeedWorld() {
        auto hf = [&](const std::string& repo, const std::string& file, std::size_t size,
                      HubStorage how = HubStorage::lfs) {
            bytes[repo + "/" + file] = test_bytes(size, static_cast<unsigned>(bytes.size() + 100));
            return HubFile(bytes[repo + "/" + file], how);
        };
        hub.add_token(seed_hf_token, HubToken("alice"));
        hub.add_repo("stabilityai/stable-diffusion-xl-base-1.0");
        hub.commit("stabilityai/stable-diffusion-xl-base-1.0",
                   {{"sd_xl_base_1.0.safetensors",
                     hf("stabilityai/stable-diffusion-xl-base-1.0", "sd_xl_base_1.0.safetensors", 700000)}});
        hub.add_repo("stabilityai/sdxl-vae");
        hub.commit("stabilityai/sdxl-vae",
                   {{"vae/diffusion_pytorch_model.safetensors",
                     hf("stabilityai/sdxl-vae", "vae/diffusion_pytorch_model.safetensors", 90000)}},
                   "refs/pr/1");
        hub.add_repo("black-forest-labs/FLUX.1-dev", "model", HubAccess::gated);
        hub.grant("black-forest-labs/FLUX.1-dev", "alice");
        hub.commit("black-forest-labs/FLUX.1-dev",
                   {{"flux1-dev.safetensors",
                     hf("black-forest-labs/FLUX.1-dev", "flux1-dev.safetensors", 900000, HubStorage::xet)},
                    {"ae.safetensors", hf("black-forest-labs/FLUX.1-dev", "ae.safetensors", 80000, HubStorage::xet)}});
        hub.add_repo("comfyanonymous/flux_text_encoders");
        hub.commit("comfyanonymous/flux_text_encoders",
                   {{"clip_l.safetensors", hf("comfyanonymous/flux_text_encoders", "clip_l.safetensors", 120000)},
                    {"t5xxl_fp8_e4m3fn.safetensors",
                     hf("comfyanonymous/flux_text_encoders", "t5xxl_fp8_e4m3fn.safetensors", 400000)}});
        hub.add_repo("zer0int/CLIP-GmP-ViT-L-14");
        hub.commit("zer0int/CLIP-GmP-ViT-L-14",
                   {{"ViT-L-14-BEST-smooth-GmP-HF-format.safetensors",
                     hf("zer0int/CLIP-GmP-ViT-L-14", "ViT-L-14-BEST-smooth-GmP-HF-format.safetensors", 150000)}});
        hub.add_repo("XLabs-AI/flux-RealismLora");
        hub.commit("XLabs-AI/flux-RealismLora",
                   {{"lora.safetensors", hf("XLabs-AI/flux-RealismLora", "lora.safetensors", 60000)}});

        auto civitai_version = [&](int id, const std::string& model_type, const std::string& file_name,
                                   std::size_t size) {
            bytes["civitai/" + std::to_string(id)] = test_bytes(size, static_cast<unsigned>(id));
            CivitaiVersionSpec version;
            version.id = id;
            version.model_id = id + 1;
            version.model_type = model_type;
            version.files = {CivitaiFileSpec{id * 10, file_name, "Model", true, bytes["civitai/" + std::to_string(id)],
                                             std::nullopt, std::nullopt}};
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
        example->server().Get("/control/canny.safetensors",
                              protected_file("example/canny", "Bearer " + seed_example_token));
    }

    /// The CLI options that reach this world: trust in its CA, and a
    /// --connect-to rule for every host name it answers for.
    std::vector<std::string> cli_options() const {
        std::vector<std::string> args = {"--cacert", test_ca().ca_cert_path};
        std::vector<provision::ConnectTo> rules = hub.connect_to();
        for (const auto& rule : civitai.connect_to()) rules.push_back(rule);
        for (const auto& rule : drive.connect_to()) rules.push_back(rule);
        rules.push_back(provision::ConnectTo{"example.com", std::nullopt, "127.0.0.1",
                                             static_cast<std::uint16_t>(example->port())});
        for (const auto& rule : rules) {
            args.push_back("--connect-to");
            args.push_back(rule.from_host + "::127.0.0.1:" + std::to_string(*rule.to_port));
        }
        return args;
    }

    /// The tokens this world accepts, as the environment variables provision reads.
    std::map<std::string, std::string> env() const {
        return {{"HF_TOKEN", seed_hf_token},
                {"CIVITAI_TOKEN", CivitaiEmulator::token},
                {"EXAMPLE_TOKEN", seed_example_token}};
    }

    /// File bytes served so far by the hosts that serve files (the Hub's
    /// own answers to metadata requests carry none).
    std::uint64_t model_bytes_served() {
        return hub.cdn().bytes_sent() + civitai.storage().bytes_sent() + drive.usercontent().bytes_sent() +
               example->bytes_sent();
    }

    std::vector<RecordedRequest> every_request() {
        std::vector<RecordedRequest> all;
        for (LoopbackServer* server : {&hub.hub(), &hub.cdn(), &civitai.api(), &civitai.storage(), &drive.drive(),
                                       &drive.usercontent(), example.get()})
            for (const auto& request : server->requests()) all.push_back(request);
        return all;
    }
};

}  // namespace provision_test

#endif
