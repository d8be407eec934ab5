// SPDX-License-Identifier: MIT
// Included first by every suite: pulls in the toolkit and proves which flavour
// (include/ tree or generated single header) this executable was built against.
#ifndef PROVISION_TESTS_COMMON_HPP
#define PROVISION_TESTS_COMMON_HPP

#include <provision/provision.hpp>

#include <doctest/doctest.h>

#if !defined(PROVISION_TEST_SINGLE_HEADER)
#error "tests must be built with -DPROVISION_TEST_SINGLE_HEADER=0 or 1"
#endif
#if PROVISION_SINGLE_HEADER != PROVISION_TEST_SINGLE_HEADER
#error "this test was meant for the other flavour of the toolkit: check the include path"
#endif

#endif
