// SPDX-License-Identifier: MIT
// First of two translation units linked into one program (see odr_b.cpp).
//
// The whole standard library comes first, as in a user's program: an
// unqualified call inside the toolkit that argument-dependent lookup could
// steer to a std:: function of the same name (std::quoted, std::size, ...)
// then fails to compile here instead of in someone else's project.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <utility>

#include "common.hpp"
#include <provision/provision.hpp>  // twice in one TU: the include guard must hold

std::string odr_a_user_agent() { return provision::user_agent; }
std::string odr_b_redacted();  // defined in odr_b.cpp

TEST_CASE("odr: two translation units share one toolkit") {
    CHECK(odr_a_user_agent() == std::string("provision/") + PROVISION_VERSION_STRING);
    CHECK(odr_b_redacted() == "https://example.com/x?token=***");
    CHECK(provision::parse_url("https://example.com/x?token=secret")->redacted() == odr_b_redacted());
}
