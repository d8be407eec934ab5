// SPDX-License-Identifier: MIT
// provision tests: a throwaway certificate authority made at test time.
//
// Tests never ship keys or certificates in the tree: the first call to
// test_ca() makes a fresh CA in a private temp directory, and issue() signs
// server certificates for whatever host names a test needs. Everything is
// written as PEM files because that is what both cpp-httplib's server and our
// own --cacert / SSL_CERT_FILE paths consume. The directory is removed when the
// process exits normally.
//
// Keys are EC P-256: generating one takes well under a millisecond, so a test
// binary can afford many leaves.
#ifndef PROVISION_TEST_SUPPORT_TEST_CA_HPP
#define PROVISION_TEST_SUPPORT_TEST_CA_HPP

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace provision_test {

/// The two PEM files a TLS server needs.
struct LeafFiles {
    std::string cert_path;
    std::string key_path;
};

namespace ca_detail {

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
    void operator()(X509* p) const { X509_free(p); }
};
struct FileClose {
    void operator()(std::FILE* f) const { std::fclose(f); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;

/// Throws with OpenSSL's own explanation attached: a failure here is a broken
/// test environment, and the queued error says which step broke.
[[noreturn]] inline void fail(const std::string& what) {
    std::string message = "test CA: " + what;
    unsigned long code = ERR_get_error();
    if (code != 0) {
        char buffer[256];
        ERR_error_string_n(code, buffer, sizeof buffer);
        message += ": ";
        message += buffer;
    }
    ERR_clear_error();
    throw std::runtime_error(message);
}

inline Pkey make_key() {
    Pkey key(EVP_EC_gen("P-256"));
    if (!key) fail("EC P-256 key generation failed");
    return key;
}

/// True for an IPv4 or IPv6 literal; those go into subjectAltName as IP
/// entries, which is what a verifier compares an IP host against.
inline bool is_ip_literal(const std::string& name) {
    unsigned char buffer[16];
    return inet_pton(AF_INET, name.c_str(), buffer) == 1 || inet_pton(AF_INET6, name.c_str(), buffer) == 1;
}

inline void set_random_serial(X509* cert) {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) fail("RAND_bytes failed");
    bytes[0] &= 0x7f;  // serial numbers must be positive
    std::unique_ptr<BIGNUM, void (*)(BIGNUM*)> bn(BN_bin2bn(bytes, sizeof bytes, nullptr), BN_free);
    if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert))) fail("setting the serial number failed");
}

inline void set_common_name(X509_NAME* name, const std::string& common_name) {
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("provision tests"),
                                    -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0))
        fail("building a subject name failed");
}

/// Adds one extension in openssl.cnf syntax ("critical,CA:TRUE", ...). The
/// context ties subject and issuer together so keyid references resolve.
inline void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
    if (extension == nullptr) fail("building extension " + std::string(OBJ_nid2sn(nid)) + "=" + value + " failed");
    int added = X509_add_ext(cert, extension, -1);
    X509_EXTENSION_free(extension);
    if (!added) fail("adding extension " + std::string(OBJ_nid2sn(nid)) + " failed");
}

/// Validity in seconds relative to now; negative values reach into the past.
inline void set_validity(X509* cert, long not_before, long not_after) {
    if (!X509_gmtime_adj(X509_getm_notBefore(cert), not_before) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert), not_after))
        fail("setting the validity period failed");
}

inline void write_pem_cert(const std::string& path, X509* cert) {
    std::unique_ptr<std::FILE, FileClose> file(std::fopen(path.c_str(), "wb"));
    if (!file) throw std::runtime_error("test CA: cannot write " + path);
    if (!PEM_write_X509(file.get(), cert)) fail("writing " + path + " failed");
}

inline void write_pem_key(const std::string& path, EVP_PKEY* key) {
    std::unique_ptr<std::FILE, FileClose> file(std::fopen(path.c_str(), "wb"));
    if (!file) throw std::runtime_error("test CA: cannot write " + path);
    if (!PEM_write_PrivateKey(file.get(), key, nullptr, nullptr, 0, nullptr, nullptr))
        fail("writing " + path + " failed");
}

constexpr long day = 24L * 60 * 60;

}  // namespace ca_detail

/// A certificate authority living in its own temp directory for the lifetime
/// of the test process. Thread-safe: tests running in parallel may issue
/// leaves concurrently.
class TestCa {
  public:
    std::string dir;           ///< the private temp directory holding every PEM file
    std::string ca_cert_path;  ///< the CA certificate: what a client must trust
    std::string ca_key_path;   ///< the CA's private key (rarely needed by tests)

    TestCa() {
        char pattern[] = "/tmp/provision-test-ca-XXXXXX";
        if (mkdtemp(pattern) == nullptr) throw std::runtime_error("test CA: mkdtemp failed");
        dir = pattern;
        ca_cert_path = dir + "/ca.pem";
        ca_key_path = dir + "/ca-key.pem";
        try {
            make_ca();
        } catch (...) {
            std::error_code ignored;
            std::filesystem::remove_all(dir, ignored);
            throw;
        }
    }

    ~TestCa() {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }

    TestCa(const TestCa&) = delete;
    TestCa& operator=(const TestCa&) = delete;

    /// A server certificate for `names` (DNS names; IP literals such as
    /// "127.0.0.1" become IP entries), signed by this CA. The first name is
    /// also the subject CN. With `expired`, notAfter lies a day in the past.
    /// Repeated calls with the same arguments return the same files.
    LeafFiles issue(const std::vector<std::string>& names, bool expired = false) {
        return leaf(names, expired, /*self_signed=*/false);
    }

    /// A server certificate for `names` that signs itself: no client trusting
    /// only this CA (or the system store) will accept it.
    LeafFiles self_signed(const std::vector<std::string>& names, bool expired = false) {
        return leaf(names, expired, /*self_signed=*/true);
    }

  private:
    void make_ca() {
        ca_key_ = ca_detail::make_key();
        ca_cert_.reset(X509_new());
        X509* cert = ca_cert_.get();
        if (cert == nullptr || !X509_set_version(cert, 2)) ca_detail::fail("X509_new failed");
        ca_detail::set_random_serial(cert);
        ca_detail::set_validity(cert, -ca_detail::day, 3650 * ca_detail::day);
        ca_detail::set_common_name(X509_get_subject_name(cert), "provision test CA");
        if (!X509_set_issuer_name(cert, X509_get_subject_name(cert)) || !X509_set_pubkey(cert, ca_key_.get()))
            ca_detail::fail("filling in the CA certificate failed");
        ca_detail::add_extension(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
        ca_detail::add_extension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
        ca_detail::add_extension(cert, cert, NID_subject_key_identifier, "hash");
        if (!X509_sign(cert, ca_key_.get(), EVP_sha256())) ca_detail::fail("signing the CA certificate failed");

        ca_detail::write_pem_cert(ca_cert_path, cert);
        ca_detail::write_pem_key(ca_key_path, ca_key_.get());
    }

    LeafFiles leaf(const std::vector<std::string>& names, bool expired, bool self_signed) {
        if (names.empty()) throw std::invalid_argument("test CA: a certificate needs at least one name");
        std::string cache_key = std::string(expired ? "expired" : "valid") + (self_signed ? "/self/" : "/ca/");
        for (const auto& name : names) cache_key += name + '\n';

        std::lock_guard<std::mutex> lock(mutex_);
        auto found = leaves_.find(cache_key);
        if (found != leaves_.end()) return found->second;

        ca_detail::Pkey key = ca_detail::make_key();
        ca_detail::Cert owned(X509_new());
        X509* cert = owned.get();
        if (cert == nullptr || !X509_set_version(cert, 2)) ca_detail::fail("X509_new failed");
        ca_detail::set_random_serial(cert);
        if (expired) ca_detail::set_validity(cert, -30 * ca_detail::day, -ca_detail::day);
        else ca_detail::set_validity(cert, -ca_detail::day, 365 * ca_detail::day);
        ca_detail::set_common_name(X509_get_subject_name(cert), names.front());

        X509* issuer = self_signed ? cert : ca_cert_.get();
        EVP_PKEY* signing_key = self_signed ? key.get() : ca_key_.get();
        if (!X509_set_issuer_name(cert, X509_get_subject_name(issuer)) || !X509_set_pubkey(cert, key.get()))
            ca_detail::fail("filling in a leaf certificate failed");

        std::string alt_names;
        for (const auto& name : names) {
            if (!alt_names.empty()) alt_names += ',';
            alt_names += (ca_detail::is_ip_literal(name) ? "IP:" : "DNS:") + name;
        }
        ca_detail::add_extension(cert, issuer, NID_subject_alt_name, alt_names);
        ca_detail::add_extension(cert, issuer, NID_basic_constraints, "critical,CA:FALSE");
        ca_detail::add_extension(cert, issuer, NID_key_usage, "critical,digitalSignature");
        ca_detail::add_extension(cert, issuer, NID_ext_key_usage, "serverAuth");
        ca_detail::add_extension(cert, issuer, NID_subject_key_identifier, "hash");
        if (!self_signed) ca_detail::add_extension(cert, issuer, NID_authority_key_identifier, "keyid:always");
        if (!X509_sign(cert, signing_key, EVP_sha256())) ca_detail::fail("signing a leaf certificate failed");

        std::string stem = dir + "/leaf-" + std::to_string(leaves_.size());
        LeafFiles files{stem + ".pem", stem + "-key.pem"};
        ca_detail::write_pem_cert(files.cert_path, cert);
        ca_detail::write_pem_key(files.key_path, key.get());
        leaves_.emplace(cache_key, files);
        return files;
    }

    ca_detail::Pkey ca_key_;
    ca_detail::Cert ca_cert_;
    std::mutex mutex_;
    std::map<std::string, LeafFiles> leaves_;
};

/// The process-wide test CA, made on first use.
inline TestCa& test_ca() {
    static TestCa ca;
    return ca;
}

}  // namespace provision_test

#endif
