// SPDX-License-Identifier: MIT
// provision: the one rule for every thread the library starts.
//
// An exception that leaves a thread's function calls std::terminate and ends
// the host program, every other download with it. So no thread of ours runs
// its work bare: run_guarded() hands whatever escapes to the owner of that
// work (the entry it was serving), which records it as that entry's failure.
#ifndef PROVISION_SUPPORT_GUARDED_HPP
#define PROVISION_SUPPORT_GUARDED_HPP

#include <exception>
#include <string>
#include <utility>

namespace provision {
namespace detail {

/// Runs `body()`. If it throws, calls `on_escape(what)` with a sentence about
/// the exception; if that throws as well, the second exception is dropped:
/// the thread ends quietly rather than taking the process down.
template <class Body, class OnEscape>
void run_guarded(Body&& body, OnEscape&& on_escape) noexcept {
    std::string what;
    try {
        std::forward<Body>(body)();
        return;
    } catch (const std::exception& e) {
        try {
            what = std::string("unexpected failure: ") + e.what();
        } catch (...) {
        }
    } catch (...) {
        what = "unexpected failure (an exception that is not a std::exception)";
    }
    try {
        std::forward<OnEscape>(on_escape)(what);
    } catch (...) {
    }
}

}  // namespace detail
}  // namespace provision

#endif
