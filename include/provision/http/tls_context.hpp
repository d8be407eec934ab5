// SPDX-License-Identifier: MIT
// provision: the one TLS client set-up every connection of an HttpClient uses.
//
// Built once, before any connection exists, and never changed afterwards:
// each connection only calls SSL_new() on it, which OpenSSL allows from any
// number of threads. Everything that fills the trust store happens here, at
// once: the system bundle, the certificates of SSL_CERT_DIR when it is set,
// and the user's --cacert files. Nothing is looked up lazily during a
// handshake (OpenSSL's hashed-directory lookup adds certificates to the store
// as handshakes need them), so no handshake writes to what another reads,
// and the bundle is parsed once per run instead of once per connection.
//
// Every set-up call is checked and a failure refuses to build the context:
// verification is on, at least TLS 1.2, and a name check without partial
// wildcards ("*" must be a whole left-most label) is set on every connection.
#ifndef PROVISION_HTTP_TLS_CONTEXT_HPP
#define PROVISION_HTTP_TLS_CONTEXT_HPP

#include "../error.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace provision {
namespace detail {

/// Bytes OpenSSL reads from the socket at once (see create()).
inline constexpr std::size_t tls_read_ahead_size = 256 * 1024;

class TlsClientContext {
  public:
    /// Builds the context: the system trust store plus `extra_ca_files` (PEM).
    /// Errors name the file or the step that failed.
    static Result<std::shared_ptr<const TlsClientContext>> create(const std::vector<std::string>& extra_ca_files);

    ~TlsClientContext() { SSL_CTX_free(context_); }
    TlsClientContext(const TlsClientContext&) = delete;
    TlsClientContext& operator=(const TlsClientContext&) = delete;

    /// A new TLS session for one connection that will verify `host` (a DNS
    /// name or an IP literal); null if OpenSSL refused any step.
    SSL* new_session(const std::string& host, bool host_is_ip) const;

  private:
    explicit TlsClientContext(SSL_CTX* context) : context_(context) {}
    SSL_CTX* context_;
};

// ----------------------------------------------------------------------------
// implementation

inline std::string openssl_reason() {
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return "no reason given";
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
}

/// Loads every certificate of a PEM file into `store`; false if there was none.
inline bool load_pem_file(X509_STORE* store, const std::string& path) {
    ERR_clear_error();
    bool loaded = X509_STORE_load_file(store, path.c_str()) == 1;
    ERR_clear_error();
    return loaded;
}

inline Result<std::shared_ptr<const TlsClientContext>> TlsClientContext::create(
    const std::vector<std::string>& extra_ca_files) {
    ERR_clear_error();
    SSL_CTX* context = SSL_CTX_new(TLS_client_method());
    if (!context) return make_error(errc::unsafe, "cannot set up TLS: " + openssl_reason());
    std::shared_ptr<const TlsClientContext> owner(new TlsClientContext(context));
    auto failed = [&](const std::string& step) {
        return make_error(errc::unsafe, "cannot set up TLS (" + step + "): " + openssl_reason());
    };
    if (SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) != 1) return failed("TLS 1.2 as the oldest version");
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
    X509_VERIFY_PARAM_set_hostflags(SSL_CTX_get0_param(context), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    // Read ahead into a buffer as large as a connection's own: one recv()
    // then holds many TLS records, which RawConnection::receive() decrypts
    // without another system call. Without it OpenSSL asks the socket twice
    // per 16 KiB record (its 5-byte header, then the rest): 131,000 recv()
    // calls per GiB, against 4,300 for plain HTTP.
    SSL_CTX_set_read_ahead(context, 1);
    SSL_CTX_set_default_read_buffer_len(context, tls_read_ahead_size);
    X509_STORE* store = SSL_CTX_get_cert_store(context);
    if (!store) return failed("the trust store");

    // The system's bundle, or the one SSL_CERT_FILE names (as OpenSSL itself would choose).
    const char* file_variable = X509_get_default_cert_file_env();
    const char* chosen_file = std::getenv(file_variable);
    std::string bundle = chosen_file && *chosen_file ? chosen_file : X509_get_default_cert_file();
    std::error_code ignored;
    bool bundle_exists = std::filesystem::is_regular_file(bundle, ignored);
    if (chosen_file && *chosen_file && !bundle_exists)
        return make_error(errc::usage,
                          std::string(file_variable) + " names \"" + bundle + "\", which is not a readable file");
    if (bundle_exists && !load_pem_file(store, bundle) && chosen_file && *chosen_file)
        return make_error(errc::usage,
                          std::string(file_variable) + " names \"" + bundle + "\", which holds no PEM certificate");

    // A certificate directory: SSL_CERT_DIR when set, or the system's when
    // there is no bundle. Read now, file by file, instead of looked up lazily.
    const char* dir_variable = X509_get_default_cert_dir_env();
    const char* chosen_dir = std::getenv(dir_variable);
    std::string directories =
        chosen_dir && *chosen_dir ? chosen_dir : (bundle_exists ? "" : X509_get_default_cert_dir());
    std::size_t start = 0;
    while (start < directories.size()) {
        std::size_t colon = directories.find(':', start);
        if (colon == std::string::npos) colon = directories.size();
        std::filesystem::path directory = directories.substr(start, colon - start);
        start = colon + 1;
        for (std::filesystem::directory_iterator it(directory, ignored), end; !ignored && it != end;
             it.increment(ignored))
            if (it->is_regular_file(ignored)) load_pem_file(store, it->path().string());
        ignored.clear();
    }

    for (const auto& file : extra_ca_files)
        if (!load_pem_file(store, file))
            return make_error(errc::usage,
                              "cannot read CA certificates from \"" + file + "\": it must be a readable PEM file");
    return owner;
}

inline SSL* TlsClientContext::new_session(const std::string& host, bool host_is_ip) const {
    SSL* ssl = SSL_new(context_);
    if (!ssl) return nullptr;
    bool named = host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1
                            : SSL_set_tlsext_host_name(ssl, host.c_str()) == 1 && SSL_set1_host(ssl, host.c_str()) == 1;
    if (!named) {
        SSL_free(ssl);
        return nullptr;
    }
    return ssl;
}

}  // namespace detail
}  // namespace provision

#endif
