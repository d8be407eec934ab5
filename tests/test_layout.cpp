// SPDX-License-Identifier: MIT
#include "common.hpp"

#include <map>

namespace suite_layout {  // apart from the suites compiled with it (tests/meson.build)

using provision::Layout;

namespace {

/// category -> folder relative to the workspace, for one layout
void check_table(const Layout& layout, const std::map<std::string, std::string>& expected) {
    for (const auto& item : expected) {
        const auto& category = item.first;  // named, not bound: clang (C++17) cannot capture a binding in INFO/CAPTURE
        const auto& folder = item.second;
        CAPTURE(category);
        auto found = layout.folder_for(category);
        REQUIRE(found);
        CHECK(found.value() == std::filesystem::path("/ws") / folder);
    }
    // nothing more, nothing less: every category of the layout is in the table
    std::vector<std::string> names;
    for (const auto& [category, folder] : expected) names.push_back(category);
    CHECK(layout.categories() == names);
}

}  // namespace

TEST_CASE("layout: the seed's SD.Next table under WORKSPACE/sdnext/models") {
    check_table(Layout::sdnext("/ws"), {
                                           {"checkpoints", "sdnext/models/Stable-diffusion"},
                                           {"lora", "sdnext/models/Lora"},
                                           {"vae", "sdnext/models/VAE"},
                                           {"controlnet", "sdnext/models/ControlNet"},
                                           {"esrgan", "sdnext/models/ESRGAN"},
                                           {"embeddings", "sdnext/models/embeddings"},
                                           {"hypernetworks", "sdnext/models/hypernetworks"},
                                           {"text_encoder", "sdnext/models/text_encoder"},
                                           {"clip", "sdnext/models/text_encoder"},
                                           {"unet", "sdnext/models/UNET"},
                                           {"diffusion_models", "sdnext/models/UNET"},
                                           {"clip_vision", "sdnext/models/clip_vision"},
                                           {"lycoris", "sdnext/models/Lora"},
                                           {"upscale", "sdnext/models/ESRGAN"},
                                           {"motion", "sdnext/models/motion"},
                                       });
    CHECK(Layout::by_name("sdnext", "/ws")->models_dir() == "/ws/sdnext/models");
}

TEST_CASE("layout: AUTOMATIC1111 keeps embeddings beside models/") {
    check_table(Layout::by_name("a1111", "/ws").value(),
                {
                    {"checkpoints", "stable-diffusion-webui/models/Stable-diffusion"},
                    {"lora", "stable-diffusion-webui/models/Lora"},
                    {"vae", "stable-diffusion-webui/models/VAE"},
                    {"controlnet", "stable-diffusion-webui/models/ControlNet"},
                    {"esrgan", "stable-diffusion-webui/models/ESRGAN"},
                    {"embeddings", "stable-diffusion-webui/embeddings"},
                    {"hypernetworks", "stable-diffusion-webui/models/hypernetworks"},
                    {"text_encoder", "stable-diffusion-webui/models/text_encoder"},
                    {"clip", "stable-diffusion-webui/models/text_encoder"},
                    {"unet", "stable-diffusion-webui/models/Stable-diffusion"},
                    {"diffusion_models", "stable-diffusion-webui/models/Stable-diffusion"},
                    {"clip_vision", "stable-diffusion-webui/models/clip_vision"},
                    {"lycoris", "stable-diffusion-webui/models/LyCORIS"},
                    {"upscale", "stable-diffusion-webui/models/ESRGAN"},
                    {"motion", "stable-diffusion-webui/extensions/sd-webui-animatediff/model"},
                });
}

TEST_CASE("layout: Forge reads LyCORIS from Lora") {
    auto forge = Layout::by_name("forge", "/ws").value();
    CHECK(forge.folder_for("lycoris").value() == "/ws/stable-diffusion-webui-forge/models/Lora");
    CHECK(forge.folder_for("embeddings").value() == "/ws/stable-diffusion-webui-forge/embeddings");
    CHECK(forge.folder_for("checkpoints").value() == "/ws/stable-diffusion-webui-forge/models/Stable-diffusion");
    CHECK(forge.categories().size() == 15);
}

TEST_CASE("layout: ComfyUI's folder names") {
    check_table(Layout::by_name("comfyui", "/ws").value(), {
                                                               {"checkpoints", "ComfyUI/models/checkpoints"},
                                                               {"lora", "ComfyUI/models/loras"},
                                                               {"vae", "ComfyUI/models/vae"},
                                                               {"controlnet", "ComfyUI/models/controlnet"},
                                                               {"esrgan", "ComfyUI/models/upscale_models"},
                                                               {"upscale", "ComfyUI/models/upscale_models"},
                                                               {"embeddings", "ComfyUI/models/embeddings"},
                                                               {"hypernetworks", "ComfyUI/models/hypernetworks"},
                                                               {"text_encoder", "ComfyUI/models/text_encoders"},
                                                               {"clip", "ComfyUI/models/text_encoders"},
                                                               {"unet", "ComfyUI/models/diffusion_models"},
                                                               {"diffusion_models", "ComfyUI/models/diffusion_models"},
                                                               {"clip_vision", "ComfyUI/models/clip_vision"},
                                                               {"lycoris", "ComfyUI/models/loras"},
                                                               {"motion", "ComfyUI/models/animatediff_models"},
                                                           });
}

TEST_CASE("layout: models_dir overrides the root; unknown layouts are named") {
    auto comfy = Layout::by_name("comfyui", "/ws", "/data/comfy/models").value();
    CHECK(comfy.folder_for("lora").value() == "/data/comfy/models/loras");
    auto unknown = Layout::by_name("invokeai", "/ws");
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().message == "unknown layout \"invokeai\"; known layouts: sdnext, a1111, forge, comfyui");
}

TEST_CASE("layout: an unknown category is an error that lists the known ones") {
    auto layout = Layout::sdnext("/ws");
    auto found = layout.folder_for("loras");
    REQUIRE_FALSE(found);
    CHECK(found.error().code == provision::errc::config);
    CHECK(found.error().message ==
          "unknown category \"loras\"; known categories: checkpoints, clip, clip_vision, controlnet, diffusion_models, "
          "embeddings, esrgan, hypernetworks, lora, lycoris, motion, text_encoder, unet, upscale, vae");
}

TEST_CASE("layout: categories can be added and overridden") {
    auto layout = Layout::sdnext("/ws");
    layout.add("ipadapter", "ipadapter");
    layout.add("clip", "CLIP");               // an alias replaced by a real folder
    layout.add_alias("checkpoints", "unet");  // a real folder replaced by an alias
    CHECK(layout.folder_for("ipadapter").value() == "/ws/sdnext/models/ipadapter");
    CHECK(layout.folder_for("clip").value() == "/ws/sdnext/models/CLIP");
    CHECK(layout.folder_for("text_encoder").value() == "/ws/sdnext/models/text_encoder");
    CHECK(layout.folder_for("checkpoints").value() == "/ws/sdnext/models/UNET");
}

}  // namespace suite_layout
