// SPDX-License-Identifier: MIT
// provision: entry -> download plan, dispatched by source.
#ifndef PROVISION_SOURCES_SOURCES_HPP
#define PROVISION_SOURCES_SOURCES_HPP

#include "../config/config.hpp"
#include "../plan.hpp"
#include "civitai/civitai.hpp"
#include "huggingface/huggingface.hpp"
#include "huggingface/auth.hpp"
#include "huggingface/tree.hpp"
#include "url/url_source.hpp"

namespace provision {

/// Resolves one entry into a download plan (metadata requests only, no file bytes).
inline Result<DownloadPlan> resolve_entry(const Entry& entry, ResolveContext& context) {
    if (!entry.unresolved.empty()) return make_error(errc::auth, entry.unresolved);
    switch (entry.source) {
    case SourceKind::url: return sources::resolve_url(entry, context);
    case SourceKind::civitai: return sources::resolve_civitai(entry, context);
    case SourceKind::huggingface: return sources::resolve_huggingface(entry, context);
    }
    return make_error(errc::config, entry.key_path + ": source \"" + std::string(to_string(entry.source)) +
                                        "\" is not available in this build");
}

/// Entries as the provisioner runs them: a multi-file Hugging Face entry
/// becomes one entry per file (all pinned to one commit), and a CivitAI entry
/// under [models.auto] gets the category of its model type. The others pass
/// through unchanged. Metadata requests only.
inline std::vector<sources::ExpandedEntry> expand_entries(const std::vector<Entry>& entries, ResolveContext& context) {
    std::vector<sources::ExpandedEntry> out;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const Entry& entry = entries[i];
        if (entry.is_multi_file()) {
            for (auto& expanded : sources::expand_huggingface_entry(entry, i, context))
                out.push_back(std::move(expanded));
        } else if (entry.source == SourceKind::civitai && entry.category == "auto") {
            auto placed = sources::place_civitai_entry(entry, context);
            if (placed) out.push_back({std::move(placed).value(), i, std::nullopt});
            else out.push_back({entry, i, placed.error()});
        } else {
            out.push_back({entry, i, std::nullopt});
        }
    }
    return out;
}

}  // namespace provision

#endif
