// SPDX-License-Identifier: MIT
// map_layout: the layout component on its own. A config names categories
// ("checkpoints", "lora", ...), never folders, so one config fills any UI;
// a provision::Layout says where each category lives for SD.Next, AUTOMATIC1111,
// Forge or ComfyUI. Overrides work as a config's [directories] table does.
//
//   map_layout [UI [WORKSPACE [CATEGORY=FOLDER]...]]
//
//   map_layout comfyui /workspace lora=loras/sdxl
//
// UI defaults to sdnext, WORKSPACE to /workspace. Prints "category -> folder"
// for every category the UI knows (aliases included); exits 2 for an unknown UI.
#include <provision/layout/layout.hpp>  // only this component

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
    std::string ui = argc > 1 ? argv[1] : "sdnext";
    std::string workspace = argc > 2 ? argv[2] : "/workspace";

    // An empty models_dir means "the UI's own folder inside the workspace"
    // (ComfyUI/models, stable-diffusion-webui/models, ...).
    provision::Result<provision::Layout> layout = provision::Layout::by_name(ui, workspace);
    if (!layout) {
        std::fprintf(stderr, "error: %s\n", layout.error().message.c_str());  // lists the known layouts
        return 2;
    }
    for (int i = 3; i < argc; ++i) {
        std::string rule = argv[i];
        auto equals = rule.find('=');
        if (equals == std::string::npos || equals == 0 || equals + 1 == rule.size()) {
            std::fprintf(stderr, "error: %s is not CATEGORY=FOLDER\n", rule.c_str());
            return 2;
        }
        // Relative to the models folder; adding a category that is an alias
        // gives it a folder of its own.
        layout->add(rule.substr(0, equals), rule.substr(equals + 1));
    }

    std::printf("%s layout, models under %s\n", ui.c_str(), layout->models_dir().c_str());
    for (const std::string& category : layout->categories()) {
        // folder_for() is what the provisioner asks for every entry: aliases
        // resolve to their category's folder, and "../x" is normalised (A1111
        // keeps embeddings beside models/, not in it).
        auto folder = layout->folder_for(category);
        std::printf("%-16s -> %s\n", category.c_str(), folder ? folder->c_str() : folder.error().message.c_str());
    }
    return 0;
}
