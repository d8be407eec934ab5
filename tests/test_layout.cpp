// SPDX-License-Identifier: MIT
#include "common.hpp"

TEST_CASE("layout: the seed's SD.Next table under WORKSPACE/sdnext/models") {
    auto layout = provision::Layout::sdnext("/ws");
    const std::pair<const char*, const char*> table[] = {
        {"checkpoints", "Stable-diffusion"}, {"lora", "Lora"},
        {"vae", "VAE"},                      {"controlnet", "ControlNet"},
        {"esrgan", "ESRGAN"},                {"embeddings", "embeddings"},
        {"hypernetworks", "hypernetworks"},  {"text_encoder", "text_encoder"},
        {"clip", "text_encoder"},
    };
    for (const auto& [category, folder] : table) {
        CAPTURE(category);
        auto found = layout.folder_for(category);
        REQUIRE(found);
        CHECK(found.value() == std::filesystem::path("/ws/sdnext/models") / folder);
    }
    CHECK(layout.categories().size() == 9);
}

TEST_CASE("layout: an unknown category is an error that lists the known ones") {
    auto layout = provision::Layout::sdnext("/ws");
    auto found = layout.folder_for("loras");
    REQUIRE_FALSE(found);
    CHECK(found.error().code == provision::errc::config);
    CHECK(found.error().message ==
          "unknown category \"loras\"; known categories: checkpoints, clip, controlnet, embeddings, esrgan, "
          "hypernetworks, lora, text_encoder, vae");
}

TEST_CASE("layout: categories can be added and overridden") {
    auto layout = provision::Layout::sdnext("/ws");
    layout.add("unet", "UNET");
    layout.add("clip", "CLIP");  // an alias replaced by a real folder
    CHECK(layout.folder_for("unet").value() == "/ws/sdnext/models/UNET");
    CHECK(layout.folder_for("clip").value() == "/ws/sdnext/models/CLIP");
    CHECK(layout.folder_for("text_encoder").value() == "/ws/sdnext/models/text_encoder");
}
