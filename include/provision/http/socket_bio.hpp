// SPDX-License-Identifier: MIT
// provision: the one way TLS bytes reach a socket, and it cannot raise SIGPIPE.
//
// OpenSSL's own socket BIO writes with write(2). Every SSL_* call may write:
// SSL_connect (the handshake), SSL_read (a key update, an alert, a TLS 1.3
// post-handshake answer), SSL_write and SSL_shutdown. On a socket the peer or
// our own watchdog has shut down, that write raises SIGPIPE, whose default
// action ends the whole process, and provision runs inside programs that have
// not ignored it. This BIO sends with MSG_NOSIGNAL and reads with recv(2), so
// a dead peer is an EPIPE error on the one connection, on every path through
// OpenSSL, without touching the host program's signal dispositions or masks.
// Everything else (fd bookkeeping, BIO_eof, close flags) is the socket BIO's.
#ifndef PROVISION_HTTP_SOCKET_BIO_HPP
#define PROVISION_HTTP_SOCKET_BIO_HPP

#include <openssl/bio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>

namespace provision {
namespace detail {

inline int socket_bio_write(BIO* bio, const char* data, int size) {
    int fd = -1;
    BIO_get_fd(bio, &fd);
    ssize_t sent;
    do {
        sent = ::send(fd, data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    BIO_clear_retry_flags(bio);
    if (sent <= 0 && BIO_sock_should_retry(static_cast<int>(sent))) BIO_set_retry_write(bio);
    return static_cast<int>(sent);
}

inline int socket_bio_read(BIO* bio, char* into, int size) {
    if (!into) return 0;
    int fd = -1;
    BIO_get_fd(bio, &fd);
    ssize_t got;
    do {
        got = ::recv(fd, into, static_cast<std::size_t>(size), 0);
    } while (got < 0 && errno == EINTR);
    BIO_clear_retry_flags(bio);
    if (got <= 0) {
        if (BIO_sock_should_retry(static_cast<int>(got))) BIO_set_retry_read(bio);
        else if (got == 0) BIO_set_flags(bio, BIO_FLAGS_IN_EOF);  // what BIO_eof() reports, as the socket BIO does
    }
    return static_cast<int>(got);
}

inline int socket_bio_puts(BIO* bio, const char* text) {
    std::size_t length = 0;
    while (text[length]) ++length;
    return socket_bio_write(bio, text, static_cast<int>(length));
}

/// The method, made once (thread-safe static initialisation) and never freed:
/// connections on any thread share it. Null if OpenSSL could not allocate it.
inline const BIO_METHOD* no_sigpipe_socket_method() {
    static BIO_METHOD* method = [] {
        const BIO_METHOD* socket = BIO_s_socket();
        BIO_METHOD* made = BIO_meth_new(BIO_TYPE_SOCKET, "provision socket (MSG_NOSIGNAL)");
        if (!made) return made;
        bool ok = BIO_meth_set_write(made, socket_bio_write) == 1 && BIO_meth_set_read(made, socket_bio_read) == 1 &&
                  BIO_meth_set_puts(made, socket_bio_puts) == 1 &&
                  BIO_meth_set_ctrl(made, BIO_meth_get_ctrl(socket)) == 1 &&
                  BIO_meth_set_create(made, BIO_meth_get_create(socket)) == 1 &&
                  BIO_meth_set_destroy(made, BIO_meth_get_destroy(socket)) == 1;
        if (!ok) {
            BIO_meth_free(made);
            return static_cast<BIO_METHOD*>(nullptr);
        }
        return made;
    }();
    return method;
}

/// A BIO over `fd` (not closed with the BIO), or null on failure.
inline BIO* new_no_sigpipe_socket_bio(int fd) {
    const BIO_METHOD* method = no_sigpipe_socket_method();
    if (!method) return nullptr;
    BIO* bio = BIO_new(method);
    if (!bio) return nullptr;
    if (BIO_set_fd(bio, fd, BIO_NOCLOSE) != 1) {
        BIO_free(bio);
        return nullptr;
    }
    return bio;
}

}  // namespace detail
}  // namespace provision

#endif
