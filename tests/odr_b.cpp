// SPDX-License-Identifier: MIT
// Second translation unit: uses the same inline functions as odr_a.cpp, so a
// definition without `inline` would fail to link.
#include "common.hpp"

std::string odr_b_redacted() { return provision::parse_url("https://example.com/x?token=secret")->redacted(); }
