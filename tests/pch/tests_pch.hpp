// SPDX-License-Identifier: MIT
// Precompiled for every suite of a test program: the toolkit, doctest and the
// loopback servers' cpp-httplib are most of what each suite's compiler reads.
#include <provision/provision.hpp>

#include <doctest/doctest.h>
#include <httplib.h>
