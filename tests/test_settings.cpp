// SPDX-License-Identifier: MIT
// [settings] and [directories]: one config, every UI's folders.
#include "common.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"

namespace suite_settings {  // apart from the suites compiled with it (tests/meson.build)

using provision::EntryOutcome;
using provision_test::LoopbackServer;
using provision_test::TempDir;

namespace {

provision::EnvLookup env_of(std::map<std::string, std::string> values) {
    return [values](const std::string& name) -> std::optional<std::string> {
        auto found = values.find(name);
        if (found == values.end()) return std::nullopt;
        return found->second;
    };
}

const std::string models =
    "[models.checkpoints]\nbase = \"https://x.test/base.safetensors\"\n"
    "[models.lora]\nstyle = \"https://x.test/style.safetensors\"\n"
    "[models.embeddings]\nneg = \"https://x.test/neg.pt\"\n";

}  // namespace

TEST_CASE("settings: layout, models_dir and directories are read with their positions") {
    auto manifest = provision::parse_config(
        "[settings]\nlayout = \"comfyui\"\nmodels_dir = \"${ROOT}/models\"\n\n"
        "[directories]\nipadapter = \"ipadapter\"\nlora = \"/data/loras\"\n\n" +
            models,
        "s.toml", env_of({{"ROOT", "/srv/comfy"}}));
    REQUIRE(manifest.ok());
    CHECK(manifest.settings.layout == "comfyui");
    CHECK(manifest.settings.layout_where.line == 2);
    CHECK(manifest.settings.models_dir == "/srv/comfy/models");
    REQUIRE(manifest.settings.directories.size() == 2);
    CHECK(manifest.settings.directories[0] == std::pair<std::string, std::string>{"ipadapter", "ipadapter"});
    CHECK(manifest.settings.directories[1] == std::pair<std::string, std::string>{"lora", "/data/loras"});
    CHECK(manifest.entries.size() == 3);
}

TEST_CASE("settings: mistakes are named by line and key") {
    auto manifest = provision::parse_config(
        "[settings]\nlayout = \"invoke\"\nmodel_dir = \"/x\"\nmodels_dir = 3\n"
        "[directories]\nunet = 5\nvae = \"\"\n\n" +
            models,
        "bad.toml", env_of({}));
    REQUIRE(manifest.diagnostics.size() == 5);
    CHECK(manifest.diagnostics[0].str() ==
          "bad.toml:2:10: settings.layout: unknown layout \"invoke\"; use one of: sdnext, a1111, forge, comfyui");
    CHECK(manifest.diagnostics[1].str() ==
          "bad.toml:3:1: settings.model_dir: unknown setting \"model_dir\"; [settings] takes layout and models_dir");
    CHECK(manifest.diagnostics[2].str().find("bad.toml:4:14: settings.models_dir: expected a string") == 0);
    CHECK(manifest.diagnostics[3].str().find("bad.toml:6:8: directories.unet: expected a string") == 0);
    CHECK(manifest.diagnostics[4].str().find("bad.toml:7:7: directories.vae: expected a folder") == 0);
    auto not_table = provision::parse_config("settings = 3\n" + models, "t.toml", env_of({}));
    REQUIRE(not_table.diagnostics.size() == 1);
    CHECK(not_table.diagnostics[0].str().find("t.toml:1:12: settings: expected a table") == 0);
}

TEST_CASE("settings: the same config fills each UI's folders") {
    auto server = LoopbackServer::https({"x.test"});
    for (const char* path : {"/base.safetensors", "/style.safetensors", "/neg.pt"}) {
        server->server().Get(path, [](const httplib::Request& req, httplib::Response& res) {
            res.set_content("bytes of " + req.path, "application/octet-stream");
        });
    }
    struct Case {
        std::string settings;
        std::string cli_layout;
        std::vector<std::string> expected;  // relative to the workspace
    };
    std::vector<Case> cases = {
        {"",
         "",
         {"sdnext/models/Stable-diffusion/base.safetensors", "sdnext/models/Lora/style.safetensors",
          "sdnext/models/embeddings/neg.pt"}},
        {"[settings]\nlayout = \"a1111\"\n",
         "",
         {"stable-diffusion-webui/models/Stable-diffusion/base.safetensors",
          "stable-diffusion-webui/models/Lora/style.safetensors", "stable-diffusion-webui/embeddings/neg.pt"}},
        {"[settings]\nlayout = \"forge\"\n",
         "",
         {"stable-diffusion-webui-forge/models/Stable-diffusion/base.safetensors",
          "stable-diffusion-webui-forge/models/Lora/style.safetensors",
          "stable-diffusion-webui-forge/embeddings/neg.pt"}},
        {"[settings]\nlayout = \"comfyui\"\nmodels_dir = \"comfy/models\"\n[directories]\nembeddings = "
         "\"textual_inversion\"\n",
         "",
         {"comfy/models/checkpoints/base.safetensors", "comfy/models/loras/style.safetensors",
          "comfy/models/textual_inversion/neg.pt"}},
        // the CLI's --layout wins over the config's
        {"[settings]\nlayout = \"a1111\"\n",
         "comfyui",
         {"ComfyUI/models/checkpoints/base.safetensors", "ComfyUI/models/loras/style.safetensors",
          "ComfyUI/models/embeddings/neg.pt"}},
    };
    for (const auto& item : cases) {
        CAPTURE(item.settings);
        CAPTURE(item.cli_layout);
        TempDir workspace;
        provision::ProvisionOptions options;
        options.workspace = workspace.path();
        options.http.ca_files = {provision_test::test_ca().ca_cert_path};
        options.http.connect_to = {
            provision::ConnectTo{"x.test", std::nullopt, "127.0.0.1", static_cast<std::uint16_t>(server->port())}};
        options.env = env_of({});
        options.layout_name = item.cli_layout;
        provision::ProvisioningSystem system{options};
        std::string config = item.settings + models;
        for (auto pos = config.find("https://x.test"); pos != std::string::npos;
             pos = config.find("https://x.test", pos + 1))
            config.replace(pos, 14, "https://x.test:" + std::to_string(server->port()));
        auto report = system.provision_from_text(config, "layout.toml");
        for (const auto& problem : report.config_errors) INFO(problem.str());
        REQUIRE(report.ok());
        for (const auto& relative : item.expected) {
            CAPTURE(relative);
            CHECK(std::filesystem::is_regular_file(workspace.path() / relative));
        }
    }
}

}  // namespace suite_settings
