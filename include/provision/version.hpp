// SPDX-License-Identifier: MIT
// provision: the single source of truth for the toolkit's version.
#ifndef PROVISION_VERSION_HPP
#define PROVISION_VERSION_HPP

#define PROVISION_VERSION_MAJOR 0
#define PROVISION_VERSION_MINOR 1
#define PROVISION_VERSION_PATCH 0
#define PROVISION_VERSION_STRING "0.1.0"
#define PROVISION_VERSION (PROVISION_VERSION_MAJOR * 10000 + PROVISION_VERSION_MINOR * 100 + PROVISION_VERSION_PATCH)

// Set to 1 by tools/amalgamate.py in the generated single header, so tests can
// prove which flavour of the toolkit they were compiled against.
#ifndef PROVISION_SINGLE_HEADER
#define PROVISION_SINGLE_HEADER 0
#endif

namespace provision {
/// The User-Agent every request carries: names the tool and its version, and is
/// deliberately not a browser string (CivitAI treats browser agents differently).
inline constexpr const char* user_agent = "provision/" PROVISION_VERSION_STRING;
}  // namespace provision

#endif
