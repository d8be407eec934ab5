// SPDX-License-Identifier: MIT
// provision: where each category of model goes.
//
// A Layout maps config categories ("checkpoints", "lora", ...) to folders under
// a models directory. The default is SD.Next's table from the seed, under
// ${WORKSPACE}/sdnext/models; A1111, Forge and ComfyUI have tables of their own
// so one config serves every UI.
#ifndef PROVISION_LAYOUT_LAYOUT_HPP
#define PROVISION_LAYOUT_LAYOUT_HPP

#include "../error.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace provision {

/// Category -> folder mapping rooted at a models directory.
class Layout {
  public:
    /// The names accepted by by_name(), in documentation order.
    static std::vector<std::string> names() { return {"sdnext", "a1111", "forge", "comfyui"}; }

    /// Where each UI keeps its models inside a workspace when models_dir is not given.
    static std::filesystem::path default_models_dir(const std::string& name, const std::filesystem::path& workspace) {
        if (name == "a1111") return workspace / "stable-diffusion-webui" / "models";
        if (name == "forge") return workspace / "stable-diffusion-webui-forge" / "models";
        if (name == "comfyui") return workspace / "ComfyUI" / "models";
        return workspace / "sdnext" / "models";
    }

    /// A named layout rooted at `models_dir` (empty: the UI's default inside `workspace`).
    static Result<Layout> by_name(const std::string& name, const std::filesystem::path& workspace,
                                  const std::filesystem::path& models_dir = {}) {
        std::filesystem::path root = models_dir.empty() ? default_models_dir(name, workspace) : models_dir;
        if (name == "sdnext") return sdnext_table(root);
        if (name == "a1111") return a1111_table(root, false);
        if (name == "forge") return a1111_table(root, true);
        if (name == "comfyui") return comfyui_table(root);
        std::string known;
        for (const auto& candidate : names()) known += (known.empty() ? "" : ", ") + candidate;
        return make_error(errc::config, "unknown layout \"" + name + "\"; known layouts: " + known);
    }

    /// SD.Next's table (the seed's): `clip` is an alias of `text_encoder`.
    static Layout sdnext(const std::filesystem::path& workspace) {
        return sdnext_table(default_models_dir("sdnext", workspace));
    }

    explicit Layout(std::filesystem::path models_dir) : models_dir_(std::move(models_dir)) {}

    /// Adds or replaces a category's folder (relative to the models directory;
    /// "../x" reaches beside it, as A1111's top-level embeddings folder needs).
    void add(const std::string& category, const std::string& folder) {
        aliases_.erase(category);
        folders_[category] = folder;
    }
    /// Makes `alias` resolve to the same folder as `category`.
    void add_alias(const std::string& alias, const std::string& category) {
        folders_.erase(alias);
        aliases_[alias] = category;
    }

    const std::filesystem::path& models_dir() const { return models_dir_; }

    /// The folder for a category, or an error that lists the known categories.
    Result<std::filesystem::path> folder_for(const std::string& category) const {
        std::string canonical = category;
        if (auto alias = aliases_.find(category); alias != aliases_.end()) canonical = alias->second;
        auto found = folders_.find(canonical);
        if (found == folders_.end())
            return make_error(errc::config, "unknown category \"" + category + "\"; known categories: " + known_list());
        return (models_dir_ / found->second).lexically_normal();
    }

    /// Every category name (aliases included), sorted.
    std::vector<std::string> categories() const {
        std::vector<std::string> names;
        for (const auto& [name, folder] : folders_) names.push_back(name);
        for (const auto& [alias, target] : aliases_) names.push_back(alias);
        std::sort(names.begin(), names.end());
        return names;
    }

  private:
    static Layout sdnext_table(const std::filesystem::path& root) {
        Layout layout(root);
        layout.add("checkpoints", "Stable-diffusion");
        layout.add("lora", "Lora");
        layout.add("vae", "VAE");
        layout.add("controlnet", "ControlNet");
        layout.add("esrgan", "ESRGAN");
        layout.add("embeddings", "embeddings");
        layout.add("hypernetworks", "hypernetworks");
        layout.add("text_encoder", "text_encoder");
        layout.add_alias("clip", "text_encoder");
        // Beyond the seed: SD.Next keeps DiT/FLUX transformers in UNET, LyCORIS in Lora.
        layout.add("unet", "UNET");
        layout.add_alias("diffusion_models", "unet");
        layout.add("clip_vision", "clip_vision");
        layout.add_alias("lycoris", "lora");
        layout.add_alias("upscale", "esrgan");
        layout.add("motion", "motion");
        return layout;
    }

    static Layout a1111_table(const std::filesystem::path& root, bool forge) {
        Layout layout(root);
        layout.add("checkpoints", "Stable-diffusion");
        layout.add("lora", "Lora");
        layout.add("vae", "VAE");
        layout.add("controlnet", "ControlNet");
        layout.add("esrgan", "ESRGAN");
        layout.add("embeddings", "../embeddings");  // A1111 and Forge read embeddings beside models/, not in it
        layout.add("hypernetworks", "hypernetworks");
        layout.add("text_encoder", "text_encoder");
        layout.add_alias("clip", "text_encoder");
        // Forge loads FLUX/DiT transformers from Stable-diffusion; A1111 has no separate folder either.
        layout.add_alias("unet", "checkpoints");
        layout.add_alias("diffusion_models", "checkpoints");
        layout.add("clip_vision", "clip_vision");
        if (forge) {
            layout.add_alias("lycoris", "lora");  // Forge reads LyCORIS from the Lora folder
        } else {
            layout.add("lycoris", "LyCORIS");
        }
        layout.add_alias("upscale", "esrgan");
        layout.add("motion", "../extensions/sd-webui-animatediff/model");
        return layout;
    }

    static Layout comfyui_table(const std::filesystem::path& root) {
        Layout layout(root);
        layout.add("checkpoints", "checkpoints");
        layout.add("lora", "loras");
        layout.add("vae", "vae");
        layout.add("controlnet", "controlnet");
        layout.add("upscale", "upscale_models");
        layout.add_alias("esrgan", "upscale");
        layout.add("embeddings", "embeddings");
        layout.add("hypernetworks", "hypernetworks");
        layout.add("text_encoder", "text_encoders");
        layout.add_alias("clip", "text_encoder");
        layout.add("diffusion_models", "diffusion_models");
        layout.add_alias("unet", "diffusion_models");
        layout.add("clip_vision", "clip_vision");
        layout.add_alias("lycoris", "lora");
        layout.add("motion", "animatediff_models");
        return layout;
    }

    std::string known_list() const {
        std::string out;
        for (const auto& name : categories()) out += (out.empty() ? "" : ", ") + name;
        return out;
    }

    std::filesystem::path models_dir_;
    std::map<std::string, std::string> folders_;
    std::map<std::string, std::string> aliases_;
};

}  // namespace provision

#endif
