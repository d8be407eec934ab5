// SPDX-License-Identifier: MIT
// provision: one HTTP header, a name and a value.
//
// Its own header because three layers share it: the config (headers a user
// gives an entry), the HTTP client (what goes on the wire) and the resolvers
// (what they add, such as Authorization). The client needs nothing else from
// the config, so it does not include it (and with it toml++).
#ifndef PROVISION_HEADER_HPP
#define PROVISION_HEADER_HPP

#include <string>
#include <utility>

namespace provision {

/// One HTTP header: name, value.
using Header = std::pair<std::string, std::string>;

}  // namespace provision

#endif  // PROVISION_HEADER_HPP
