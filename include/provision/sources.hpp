// SPDX-License-Identifier: MIT
// provision: entry -> download plan, dispatched by source.
#ifndef PROVISION_SOURCES_HPP
#define PROVISION_SOURCES_HPP

#include "config.hpp"
#include "plan.hpp"
#include "sources/civitai.hpp"
#include "sources/huggingface.hpp"
#include "sources/huggingface_auth.hpp"
#include "sources/huggingface_tree.hpp"
#include "sources/url_source.hpp"

namespace provision {

/// Resolves one entry into a download plan (metadata requests only, no file bytes).
inline Result<DownloadPlan> resolve_entry(const Entry& entry, ResolveContext& context) {
    switch (entry.source) {
    case SourceKind::url: return sources::resolve_url(entry, context);
    case SourceKind::civitai: return sources::resolve_civitai(entry, context);
    case SourceKind::huggingface: return sources::resolve_huggingface(entry, context);
    }
    return make_error(errc::config, entry.key_path + ": source \"" + std::string(to_string(entry.source)) +
                                        "\" is not available in this build");
}

}  // namespace provision

#endif
