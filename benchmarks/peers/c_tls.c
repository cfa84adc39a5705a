/*
 * The count protocol over TLS in C, with libssl and nothing else: the
 * reference the TLS benchmark measures the Python servers against.
 *
 *   c_tls --port P [--host ADDR] [--tls-cert FILE --tls-key FILE] [--quiet]
 *
 * One connection at a time, blocking: accept, the handshake (SSL_accept),
 * then read "LENGTH SP", echo LENGTH payload bytes as they come, send
 * close_notify and close. No event loop, no task, no buffer but one of 64
 * KiB: what it costs per handshake and per MB is libssl's and the kernel's.
 * Without --tls-cert it serves plain TCP the same way (its twin, so that
 * "what TLS adds" is measured on one program).
 *
 * The context is made as the Python peers make theirs (ssl.create_default_
 * context for a server): TLS 1.2 at least, session tickets sent, the
 * client's session never resumed (the load generator never offers one).
 * A malformed header (no digit, more than 19, or no space after them) ends
 * the connection. It is a reference, not a server: a client that stalls
 * stalls every other, which the benchmark's clients never do.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BUFFER 65536

struct conn {
    int fd;
    SSL *ssl; /* NULL over plain TCP */
};

static int conn_read(struct conn *c, char *buffer, int size) {
    if (c->ssl) {
        int n = SSL_read(c->ssl, buffer, size);
        return n > 0 ? n : -1;
    }
    ssize_t n = recv(c->fd, buffer, (size_t)size, 0);
    return n > 0 ? (int)n : -1;
}

static int conn_write(struct conn *c, const char *data, int size) {
    while (size > 0) {
        int n;
        if (c->ssl) n = SSL_write(c->ssl, data, size);
        else n = (int)send(c->fd, data, (size_t)size, MSG_NOSIGNAL);
        if (n <= 0) return -1;
        data += n;
        size -= n;
    }
    return 0;
}

/* One connection of the count protocol, to its end. */
static void serve(struct conn *c) {
    static char buffer[BUFFER];
    uint64_t length = 0, echoed = 0;
    int digits = 0, have_header = 0;
    for (;;) {
        int n = conn_read(c, buffer, BUFFER);
        if (n < 0) return;
        int at = 0;
        while (!have_header && at < n) {
            char ch = buffer[at++];
            if (ch >= '0' && ch <= '9' && digits < 19) {
                length = length * 10 + (uint64_t)(ch - '0');
                digits++;
            } else if (ch == ' ' && digits > 0) {
                have_header = 1;
            } else {
                return; /* not "LENGTH SP" */
            }
        }
        if (!have_header) continue;
        uint64_t left = length - echoed;
        int take = (uint64_t)(n - at) < left ? n - at : (int)left;
        if (take > 0 && conn_write(c, buffer + at, take) < 0) return;
        echoed += (uint64_t)take;
        if (echoed == length) {
            if (c->ssl) SSL_shutdown(c->ssl); /* close_notify; the client's is not awaited */
            return;
        }
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *cert = NULL, *key = NULL;
    int port = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
            continue;
        }
        if (i + 1 >= argc) goto usage;
        const char *v = argv[++i];
        if (!strcmp(argv[i - 1], "--port")) port = atoi(v);
        else if (!strcmp(argv[i - 1], "--host")) host = v;
        else if (!strcmp(argv[i - 1], "--tls-cert")) cert = v;
        else if (!strcmp(argv[i - 1], "--tls-key")) key = v;
        else goto usage;
    }
    if (!cert != !key) goto usage;
    (void)quiet; /* it never prints per connection */
    signal(SIGPIPE, SIG_IGN);

    SSL_CTX *ctx = NULL;
    if (cert) {
        ctx = SSL_CTX_new(TLS_server_method());
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            fprintf(stderr, "c_tls: cannot load %s and %s\n", cert, key);
            return 2;
        }
    }

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1 ||
        bind(listener, (struct sockaddr *)&address, sizeof address) < 0 ||
        listen(listener, 4096) < 0) {
        perror("c_tls: listen");
        return 2;
    }
    socklen_t size = sizeof address;
    getsockname(listener, (struct sockaddr *)&address, &size);
    printf("listening on %s:%d mode=count\n", host, ntohs(address.sin_port));
    fflush(stdout);

    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn c = {fd, NULL};
        if (ctx) {
            c.ssl = SSL_new(ctx);
            SSL_set_fd(c.ssl, fd);
            if (SSL_accept(c.ssl) == 1) serve(&c);
            SSL_free(c.ssl);
            ERR_clear_error();
        } else {
            serve(&c);
        }
        close(fd);
    }
usage:
    fprintf(stderr, "usage: c_tls --port P [--host ADDR] [--tls-cert FILE --tls-key FILE]\n");
    return 2;
}
