// SPDX-License-Identifier: MIT
// provision: streaming SHA-256 and git blob SHA-1 over OpenSSL's EVP interface.
#ifndef PROVISION_SUPPORT_DIGEST_HPP
#define PROVISION_SUPPORT_DIGEST_HPP

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace provision {
namespace detail {

/// Incremental hash; `Sha256()` for file digests, `git_blob_sha1(size)` for the
/// SHA-1 git stores for small (non-LFS) files: sha1("blob <size>\0" + content).
class Hasher {
  public:
    static Hasher sha256() { return Hasher(EVP_sha256()); }
    static Hasher git_blob_sha1(std::uint64_t size) {
        Hasher hasher(EVP_sha1());
        std::string prefix = "blob " + std::to_string(size);
        hasher.update(prefix.data(), prefix.size() + 1);  // includes the terminating NUL
        return hasher;
    }

    void update(const void* data, std::size_t size) { EVP_DigestUpdate(context_.get(), data, size); }

    /// Lower-case hex digest; the hasher cannot be updated afterwards.
    std::string hex_digest() {
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int length = 0;
        EVP_DigestFinal_ex(context_.get(), digest, &length);
        static const char* hex = "0123456789abcdef";
        std::string out;
        for (unsigned int i = 0; i < length; ++i) {
            out += hex[digest[i] >> 4];
            out += hex[digest[i] & 15];
        }
        return out;
    }

  private:
    explicit Hasher(const EVP_MD* algorithm) : context_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) {
        if (!context_ || EVP_DigestInit_ex(context_.get(), algorithm, nullptr) != 1)
            throw std::runtime_error("OpenSSL could not initialise a digest");
    }
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context_;
};

inline std::string sha256_hex(const std::string& data) {
    auto hasher = Hasher::sha256();
    hasher.update(data.data(), data.size());
    return hasher.hex_digest();
}

}  // namespace detail
}  // namespace provision

#endif
