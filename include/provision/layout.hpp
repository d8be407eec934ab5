// SPDX-License-Identifier: MIT
// provision: where each category of model goes.
//
// A Layout maps config categories ("checkpoints", "lora", ...) to folders under
// a models directory. The default is SD.Next's table from the seed, under
// ${WORKSPACE}/sdnext/models.
#ifndef PROVISION_LAYOUT_HPP
#define PROVISION_LAYOUT_HPP

#include "error.hpp"

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
    /// SD.Next's table (the seed's): `clip` is an alias of `text_encoder`.
    static Layout sdnext(const std::filesystem::path& workspace) {
        Layout layout(workspace / "sdnext" / "models");
        layout.add("checkpoints", "Stable-diffusion");
        layout.add("lora", "Lora");
        layout.add("vae", "VAE");
        layout.add("controlnet", "ControlNet");
        layout.add("esrgan", "ESRGAN");
        layout.add("embeddings", "embeddings");
        layout.add("hypernetworks", "hypernetworks");
        layout.add("text_encoder", "text_encoder");
        layout.add_alias("clip", "text_encoder");
        return layout;
    }

    explicit Layout(std::filesystem::path models_dir) : models_dir_(std::move(models_dir)) {}

    /// Adds or replaces a category's folder (relative to the models directory).
    void add(const std::string& category, const std::string& folder) {
        aliases_.erase(category);
        folders_[category] = folder;
    }
    /// Makes `alias` resolve to the same folder as `category`.
    void add_alias(const std::string& alias, const std::string& category) { aliases_[alias] = category; }

    const std::filesystem::path& models_dir() const { return models_dir_; }

    /// The folder for a category, or an error that lists the known categories.
    Result<std::filesystem::path> folder_for(const std::string& category) const {
        std::string canonical = category;
        if (auto alias = aliases_.find(category); alias != aliases_.end()) canonical = alias->second;
        auto found = folders_.find(canonical);
        if (found == folders_.end())
            return make_error(errc::config, "unknown category \"" + category + "\"; known categories: " + known_list());
        return models_dir_ / found->second;
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
