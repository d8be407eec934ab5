// SPDX-License-Identifier: MIT
// provision: error kinds, the Error value and the Result<T> carrier.
//
// Network and file code returns results instead of throwing (a failed download
// is an expected outcome, not an exceptional one). Each error kind maps to a
// stable process exit code so container tooling can react to the class of
// failure without parsing text.
#ifndef PROVISION_ERROR_HPP
#define PROVISION_ERROR_HPP

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace provision {

/// The class of a failure. Values are stable; `exit_code()` maps them to the CLI's exit status.
enum class errc {
    usage = 1,     ///< bad command line or environment
    config,        ///< the TOML manifest is malformed or invalid
    auth,          ///< a token is missing, invalid or not allowed to see the resource
    not_found,     ///< the repo, file, version or URL does not exist
    network,       ///< connection, TLS or protocol failure that survived retries
    rate_limited,  ///< the service kept answering 429
    disk_full,     ///< not enough space on the target filesystem
    integrity,     ///< size or digest mismatch, or a web page where a model was expected
    unsafe,        ///< something we refuse on principle (path escape, https->http, ...)
    io,            ///< local file-system failure other than a full disk
    cancelled,     ///< stopped by a signal or by the caller
    internal,      ///< a bug in provision
};

/// A short stable name for an error kind, used in reports and JSON output.
inline const char* to_string(errc code) noexcept {
    switch (code) {
    case errc::usage: return "usage";
    case errc::config: return "config";
    case errc::auth: return "auth";
    case errc::not_found: return "not_found";
    case errc::network: return "network";
    case errc::rate_limited: return "rate_limited";
    case errc::disk_full: return "disk_full";
    case errc::integrity: return "integrity";
    case errc::unsafe: return "unsafe";
    case errc::io: return "io";
    case errc::cancelled: return "cancelled";
    case errc::internal: return "internal";
    }
    return "internal";
}

/// The CLI's exit status for a failure class (documented in the README and --help).
inline int exit_code(errc code) noexcept {
    switch (code) {
    case errc::usage:
    case errc::config: return 2;
    case errc::auth: return 3;
    case errc::not_found: return 4;
    case errc::network: return 5;
    case errc::rate_limited: return 6;
    case errc::disk_full: return 7;
    case errc::integrity:
    case errc::unsafe: return 8;
    case errc::io: return 9;
    case errc::cancelled: return 130;
    case errc::internal: return 70;
    }
    return 1;
}

/// A failure with the words a user can act on.
struct Error {
    errc code = errc::internal;
    std::string message;
};

/// Thrown only by the convenience APIs that cannot return a Result (e.g. the
/// ProvisioningSystem constructor given impossible options).
class error : public std::runtime_error {
  public:
    error(errc code, const std::string& message) : std::runtime_error(message), code_(code) {}
    errc code() const noexcept { return code_; }

  private:
    errc code_;
};

/// Either a value or an Error. Deliberately small: `ok()`, `value()`, `error()`.
template <class T>
class Result {
  public:
    Result(T value) : state_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
    Result(Error failure) : state_(std::move(failure)) {}  // NOLINT(google-explicit-constructor)
    bool ok() const noexcept { return state_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    T& value() & { return std::get<0>(state_); }
    const T& value() const& { return std::get<0>(state_); }
    T&& value() && { return std::get<0>(std::move(state_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const { return std::get<1>(state_); }

  private:
    std::variant<T, Error> state_;
};

/// Result<void>: success or an Error.
template <>
class Result<void> {
  public:
    Result() = default;
    Result(Error failure) : failure_(std::move(failure)), failed_(true) {}  // NOLINT(google-explicit-constructor)
    bool ok() const noexcept { return !failed_; }
    explicit operator bool() const noexcept { return ok(); }
    const Error& error() const { return failure_; }

  private:
    Error failure_;
    bool failed_ = false;
};

/// Shorthand for building an Error in a return statement.
inline Error make_error(errc code, std::string message) { return Error{code, std::move(message)}; }

}  // namespace provision

#endif
