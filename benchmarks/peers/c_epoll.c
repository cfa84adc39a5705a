/*
 * The physical reference: the count protocol served by one thread on epoll,
 * in C, so that the language costs nothing. Same command line as the other
 * peers: --port PORT --mode count|echo|framed [--host ADDR].
 *
 * It keeps the protocol's written behaviour: the length text is checked byte
 * by byte (ASCII digits, no leading zero, at most 64 MiB), the payload is
 * echoed as it arrives, a count connection closes after the last echo byte
 * (or, if the peer sent more after its message, half-closes and closes when
 * the peer does, as trio_echo does), bytes after the payload are not echoed,
 * and unsent echo bytes are bounded per connection (past the bound it stops
 * reading). It has no timeouts and no connection cap: it is a measure of
 * speed, not a server to deploy.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_MESSAGE (64u * 1024u * 1024u)
#define MAX_DIGITS 8
#define BUFFER_LIMIT MAX_MESSAGE
#define READ_SIZE (64 * 1024)

enum mode { COUNT, ECHO, FRAMED };
enum state { HEADER, PAYLOAD, DONE, LINGER };

struct conn {
    int fd;
    enum state state;
    char digits[MAX_DIGITS + 1];
    int ndigits;
    uint64_t remaining;
    char *out;
    size_t out_len, out_off, out_cap;
    int peer_eof;
    int trailing; /* count: bytes came after the message */
    uint32_t events;
};

static enum mode mode = COUNT;
static int epfd;

static void set_events(struct conn *c, uint32_t events) {
    if (events == c->events) return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

static void conn_close(struct conn *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

static int queue(struct conn *c, const char *data, size_t n) {
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    if (c->out_len + n > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 4096;
            while (cap < c->out_len + n) cap *= 2;
            char *out = realloc(c->out, cap);
            if (!out) return -1;
            c->out = out;
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
    return 0;
}

/* Frame `n` received bytes; queue the echo. Returns -1 on a protocol error. */
static int frame(struct conn *c, const char *data, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (c->state == HEADER) {
            char b = data[i++];
            if (b == ' ') {
                if (c->ndigits == 0) return -1;
                c->digits[c->ndigits] = 0;
                c->remaining = strtoull(c->digits, NULL, 10);
                if (mode == FRAMED) {
                    char header[MAX_DIGITS + 2];
                    int len = snprintf(header, sizeof header, "%s ", c->digits);
                    if (queue(c, header, (size_t)len) < 0) return -1;
                }
                c->ndigits = 0;
                c->state = PAYLOAD;
            } else {
                if (b < '0' || b > '9') return -1;
                if (c->ndigits == 1 && c->digits[0] == '0') return -1;
                if (c->ndigits == MAX_DIGITS) return -1;
                c->digits[c->ndigits++] = b;
                c->digits[c->ndigits] = 0;
                if (strtoull(c->digits, NULL, 10) > MAX_MESSAGE) return -1;
            }
        }
        if (c->state == PAYLOAD) {
            size_t take = n - i;
            if (take > c->remaining) take = (size_t)c->remaining;
            if (take && queue(c, data + i, take) < 0) return -1;
            i += take;
            c->remaining -= take;
            if (c->remaining == 0) {
                if (mode == COUNT) {
                    c->state = DONE;
                    c->trailing = i < n;
                    return 0; /* bytes after the payload are not echoed */
                }
                c->state = HEADER;
            }
        }
    }
    return 0;
}

/* Send what is queued; returns -1 if the connection broke. */
static int flush(struct conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t sent = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EAGAIN) return 0;
            if (errno == EINTR) continue;
            return -1;
        }
        c->out_off += (size_t)sent;
    }
    return 0;
}

/* Decide what to wait for next, or close. */
static void settle(struct conn *c) {
    int pending = c->out_off < c->out_len;
    if (!pending && c->state == DONE) {
        if (!c->trailing) { /* nothing unread: closing sends no reset */
            conn_close(c);
            return;
        }
        shutdown(c->fd, SHUT_WR);
        c->state = LINGER;
    }
    if (!pending && c->peer_eof) {
        conn_close(c);
        return;
    }
    uint32_t events = 0;
    if (pending) events |= EPOLLOUT;
    int reading = !c->peer_eof && (c->state == LINGER || c->state != DONE) &&
                  c->out_len - c->out_off < BUFFER_LIMIT;
    if (reading) events |= EPOLLIN;
    set_events(c, events);
}

static void on_readable(struct conn *c) {
    static char buf[READ_SIZE];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        conn_close(c);
        return;
    }
    if (n == 0) {
        c->peer_eof = 1;
        int clean = mode == ECHO || c->state == LINGER || (mode == FRAMED && c->state == HEADER && c->ndigits == 0);
        if (!clean) {
            conn_close(c);
            return;
        }
    } else if (c->state == LINGER) {
        /* discard what comes after the message */
    } else if (mode == ECHO) {
        if (queue(c, buf, (size_t)n) < 0) {
            conn_close(c);
            return;
        }
    } else if (frame(c, buf, (size_t)n) < 0) {
        conn_close(c);
        return;
    }
    if (flush(c) < 0) {
        conn_close(c);
        return;
    }
    settle(c);
}

static void on_writable(struct conn *c) {
    if (flush(c) < 0) {
        conn_close(c);
        return;
    }
    settle(c);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 50007;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
            const char *m = argv[++i];
            mode = !strcmp(m, "echo") ? ECHO : !strcmp(m, "framed") ? FRAMED : COUNT;
        } else if (!strcmp(argv[i], "--quiet")) {
        } else {
            fprintf(stderr, "usage: c_epoll [--host ADDR] [--port PORT] [--mode count|echo|framed]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    int v6 = strchr(host, ':') != NULL;
    int lfd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_storage addr = {0};
    socklen_t addrlen;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, host, &a->sin6_addr);
        addrlen = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, host, &a->sin_addr);
        addrlen = sizeof *a;
    }
    if (bind(lfd, (struct sockaddr *)&addr, addrlen) < 0 || listen(lfd, 4096) < 0) {
        fprintf(stderr, "c_epoll: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
        return 3;
    }
    getsockname(lfd, (struct sockaddr *)&addr, &addrlen);
    port = ntohs(v6 ? ((struct sockaddr_in6 *)&addr)->sin6_port : ((struct sockaddr_in *)&addr)->sin_port);
    printf("listening on %s%s%s:%d mode=%s\n", v6 ? "[" : "", host, v6 ? "]" : "", port,
           mode == ECHO ? "echo" : mode == FRAMED ? "framed" : "count");
    fflush(stdout);

    epfd = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epfd, events, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == NULL) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    c->events = EPOLLIN;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (events[i].events & (EPOLLOUT)) {
                on_writable(c);
                continue; /* c may be freed; a still-readable socket reports again */
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
        }
    }
}
