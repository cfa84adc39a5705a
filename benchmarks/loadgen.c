/*
 * The load generator: one thread, epoll, in C, so that the client costs
 * little beside a Python server. It can still be the limit of the fastest
 * servers (C epoll, uvloop, and the asyncio protocol on large messages): it
 * reports the CPU it used, and the harness flags a run in which it used 90%
 * of its core or more. It checks every echo byte for byte and prints one
 * JSON object with what it measured, its own time waiting for a CPU
 * included (client_wait_seconds, from /proc/self/schedstat). It says
 * "measuring" on standard error when it starts to measure (but for idle),
 * so that whoever reads the server's CPU can read it from then on.
 *
 *   loadgen --port P [--host 127.0.0.1] --workload count|echo|framed|idle
 *           [--size BYTES] [--connections N] [--duration SECONDS]
 *           [--warmup SECONDS] [--messages N] [--rate MESSAGES_PER_SECOND]
 *           [--pipeline K] [--settle]
 *
 * count:  a new connection per message ("length SP payload"; the echo is
 *         read until the server closes), the original's pattern;
 * echo:   persistent connections, one payload in flight on each;
 * framed: persistent connections, K framed messages in flight on each
 *         (--pipeline K, sent back to back; 1 by default);
 * idle:   open N connections, say "ready N" on standard error, hold them
 *         (until SIGTERM, if it comes first)
 *         for the duration (the harness measures the server meanwhile).
 *
 * --settle (echo, framed): measure only once every connection is open and
 * has had one echo, then for the duration (30 s at most to get there; the
 * output's "settled" says how many had when measuring began); without it,
 * measuring starts at the end of the warm-up, however many connections are
 * open by then. Nothing stops a run before it has started to measure.
 *
 * Closed loop by default: each connection starts its next message when the
 * last one ends. With --rate, messages are due at fixed intervals whatever
 * the server does (open loop), and a message's latency counts from when it
 * was due, so a stalled server cannot hide its stall (no coordinated
 * omission).
 *
 * TLS (built with -DLOADGEN_TLS and linked with -lssl -lcrypto; see
 * benchmarks/build.py): --tls or --tls-ca FILE makes every connection a TLS
 * 1.3 client through libssl. Each connection is a full handshake: a new
 * SSL object with no session set, and no session cache, so nothing is
 * resumed. With --tls-ca, the server's chain is verified (not its name).
 * The client never sends close_notify: in count, the server closes first.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef LOADGEN_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

enum workload { COUNT, ECHO, FRAMED, IDLE };
enum cstate { FREE, CONNECTING, BUSY, WAITING, OPEN_IDLE };

struct lconn {
    int fd;
    enum cstate state;
    size_t sent, received;
    int echoed;      /* has had one echo (--settle) */
    double due;      /* when the current message was due (latency origin) */
#ifdef LOADGEN_TLS
    SSL *ssl;        /* NULL without --tls */
#endif
};

#ifdef LOADGEN_TLS
static SSL_CTX *tls_ctx; /* NULL without --tls */
#endif

static enum workload workload = COUNT;
static struct sockaddr_storage server_addr;
static socklen_t server_addrlen;
static int epfd;
static char *message;   /* what is sent for one message */
static size_t message_len;
static char *expected;  /* what must come back */
static size_t expected_len;

static uint32_t *latencies; /* microseconds */
static size_t nlat, caplat;
static uint64_t completed, errors, connect_errors;
static char first_error[160];
static double warmup_end, stop_at;
static volatile sig_atomic_t cut_short; /* SIGTERM: an idle hold ends now */

static void on_sigterm(int sig) {
    (void)sig;
    cut_short = 1;
}
static int recording;
static int settled; /* connections that have had one echo */

/* Say that measuring starts now (see the top). */
static void start_measuring(void) {
    recording = 1;
    if (workload != IDLE) {
        fputs("measuring\n", stderr);
        fflush(stderr);
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Time this process has spent runnable but waiting for a CPU, in seconds. */
static double wait_seconds(void) {
    unsigned long long running = 0, waiting = 0;
    FILE *f = fopen("/proc/self/schedstat", "r");
    if (!f) return 0;
    if (fscanf(f, "%llu %llu", &running, &waiting) != 2) waiting = 0;
    fclose(f);
    return waiting / 1e9;
}

static void fail(struct lconn *c, const char *what) {
    errors++;
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", what);
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
#ifdef LOADGEN_TLS
    if (c->ssl) SSL_free(c->ssl);
    c->ssl = NULL;
#endif
    c->fd = -1;
    c->state = FREE;
}

static size_t batch = 1; /* framed: messages sent back to back per round */

static void record(double due) {
    double us = (now() - due) * 1e6;
    for (size_t k = 0; k < batch; k++) {
        completed++;
        if (!recording) continue;
        if (nlat == caplat) {
            caplat = caplat ? caplat * 2 : 1 << 16;
            latencies = realloc(latencies, caplat * sizeof *latencies);
        }
        latencies[nlat++] = us > 4e9 ? 4000000000u : (uint32_t)us;
    }
}

static int inflight; /* messages begun and not ended (connecting included) */
static int rate_mode, stopping;

static void begin(struct lconn *c, double due);

/* Open a connection for a new message due at `due` (count) or for the
 * persistent workloads (due 0: begin when connected, or wait for a rate tick). */
static int open_connection(struct lconn *c, double due) {
    int fd = socket(server_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(fd, (struct sockaddr *)&server_addr, server_addrlen);
    if (rc < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->due = due;
    c->state = CONNECTING;
#ifdef LOADGEN_TLS
    if (tls_ctx) {
        c->ssl = SSL_new(tls_ctx);
        SSL_set_fd(c->ssl, fd);
        SSL_set_connect_state(c->ssl);
    }
#endif
    /* Edge-triggered: no epoll_ctl call per message, only one per connection. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    if (workload != IDLE && (due > 0 || !rate_mode)) inflight++;
    return 0;
}

#ifdef LOADGEN_TLS
/* 1 once the handshake is done, 0 while it waits for the socket, -1 on failure. */
static int tls_handshake(struct lconn *c) {
    if (SSL_is_init_finished(c->ssl)) return 1;
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) return 1;
    int err = SSL_get_error(c->ssl, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
    inflight--;
    fail(c, "TLS handshake failed");
    return -1;
}

static void tls_send_some(struct lconn *c) {
    if (tls_handshake(c) <= 0) return;
    while (c->sent < message_len) {
        size_t chunk = message_len - c->sent;
        if (chunk > (1u << 30)) chunk = 1u << 30;
        ERR_clear_error();
        int n = SSL_write(c->ssl, message + c->sent, (int)chunk);
        if (n <= 0) {
            int err = SSL_get_error(c->ssl, n);
            if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) return;
            inflight--;
            fail(c, "TLS send failed (reset?)");
            return;
        }
        c->sent += (size_t)n;
    }
}
#endif

static void send_some(struct lconn *c) {
#ifdef LOADGEN_TLS
    if (c->ssl) {
        tls_send_some(c);
        return;
    }
#endif
    while (c->sent < message_len) {
        ssize_t n = send(c->fd, message + c->sent, message_len - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) return; /* the next EPOLLOUT edge resumes */
            if (errno == EINTR) continue;
            inflight--;
            fail(c, "send failed (reset?)");
            return;
        }
        c->sent += (size_t)n;
    }
}

/* Begin a message on a connected connection. */
static void begin(struct lconn *c, double due) {
    c->sent = c->received = 0;
    c->due = due;
    c->state = BUSY;
    send_some(c);
}

/* Returns 1 when the message is complete, 0 for more to come, -1 on failure. */
static int receive_some(struct lconn *c) {
    static char buf[256 * 1024];
    for (;;) {
        size_t want = sizeof buf;
        if (workload != COUNT && expected_len - c->received < want) want = expected_len - c->received;
        ssize_t n;
#ifdef LOADGEN_TLS
        if (c->ssl) {
            if (!SSL_is_init_finished(c->ssl)) {
                int hs = tls_handshake(c);
                if (hs < 0) return -2; /* failed, and already counted */
                if (hs == 0) return 0;
                send_some(c);          /* the message waits for the handshake */
                if (c->fd < 0) return -2;
            }
            ERR_clear_error();
            int got = SSL_read(c->ssl, buf, want > (1u << 30) ? 1 << 30 : (int)want);
            if (got <= 0) {
                int err = SSL_get_error(c->ssl, got);
                if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
                if (err != SSL_ERROR_ZERO_RETURN) {
                    fail(c, "TLS receive failed (reset?)");
                    return -1;
                }
                got = 0; /* close_notify, or the end of the stream */
            }
            n = got;
        } else
#endif
        n = recv(c->fd, buf, want, 0);
        if (n < 0) {
            if (errno == EAGAIN) return 0;
            if (errno == EINTR) continue;
            fail(c, "receive failed (reset?)");
            return -1;
        }
        if (n == 0) {
            if (workload == COUNT && c->received == expected_len) return 1;
            fail(c, "the server closed before the echo was complete");
            return -1;
        }
        if (c->received + (size_t)n > expected_len) {
            fail(c, "the echo was longer than the message");
            return -1;
        }
        if (memcmp(buf, expected + c->received, (size_t)n) != 0) {
            fail(c, "the echo differs from the message");
            return -1;
        }
        c->received += (size_t)n;
        if (c->received == expected_len && workload != COUNT) return 1;
    }
}

/* A free or waiting connection takes a message due at `due`. */
static void start_message(struct lconn *c, double due) {
    if (c->state == FREE) {
        if (open_connection(c, due) < 0) {
            connect_errors++;
            fail(c, "connect failed");
        }
        return;
    }
    inflight++;
    begin(c, due);
}

/* A message ended: record it, free the connection, and in a closed loop
 * start the next one at once. */
static void complete(struct lconn *c) {
    record(c->due);
    inflight--;
    if (!c->echoed) {
        c->echoed = 1;
        settled++;
    }
    if (workload == COUNT) {
#ifdef LOADGEN_TLS
        if (c->ssl) SSL_free(c->ssl);
        c->ssl = NULL;
#endif
        close(c->fd);
        c->fd = -1;
        c->state = FREE;
    } else {
        c->state = WAITING;
    }
    if (!rate_mode && !stopping) start_message(c, now());
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port P [--host ADDR] --workload count|echo|framed|idle [--size B]\n"
            "               [--connections N] [--duration S] [--warmup S] [--messages N] [--rate R]\n"
            "               [--pipeline K] [--settle] [--tls [--tls-ca FILE]]\n");
    exit(2);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double fraction) {
    if (!nlat) return 0;
    size_t rank = (size_t)(fraction * nlat + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > nlat) rank = nlat;
    return latencies[rank - 1];
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0, nconn = 10;
    size_t size = 100;
    double duration = 5, warmup = 0, rate = 0;
    uint64_t max_messages = 0;
    int pipeline = 1, tls = 0, settle = 0;
    const char *tls_ca = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--tls")) {
            tls = 1;
            continue;
        }
        if (!strcmp(a, "--settle")) {
            settle = 1;
            continue;
        }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--size")) size = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--connections")) nconn = atoi(v);
        else if (!strcmp(a, "--duration")) duration = atof(v);
        else if (!strcmp(a, "--warmup")) warmup = atof(v);
        else if (!strcmp(a, "--rate")) rate = atof(v);
        else if (!strcmp(a, "--messages")) max_messages = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--pipeline")) pipeline = atoi(v);
        else if (!strcmp(a, "--tls-ca")) tls_ca = v, tls = 1;
        else if (!strcmp(a, "--workload")) {
            workload = !strcmp(v, "count") ? COUNT : !strcmp(v, "echo") ? ECHO
                     : !strcmp(v, "framed") ? FRAMED : !strcmp(v, "idle") ? IDLE : (usage(), COUNT);
        } else usage();
    }
    if (port <= 0 || nconn <= 0 || pipeline < 1 || (pipeline > 1 && workload != FRAMED)) usage();
    if (settle && (workload == COUNT || workload == IDLE || rate > 0)) usage();
    batch = (size_t)pipeline;
    if (tls) {
#ifdef LOADGEN_TLS
        tls_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(tls_ctx, TLS1_3_VERSION);
        SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(tls_ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        if (tls_ca) {
            if (SSL_CTX_load_verify_locations(tls_ctx, tls_ca, NULL) != 1) {
                fprintf(stderr, "loadgen: cannot load %s\n", tls_ca);
                return 2;
            }
            SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
        }
#else
        (void)tls_ca;
        fprintf(stderr, "loadgen: built without TLS (-DLOADGEN_TLS, -lssl -lcrypto)\n");
        return 2;
#endif
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_sigterm);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(&server_addr, 0, sizeof server_addr);
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&server_addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, host, &a->sin6_addr);
        server_addrlen = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&server_addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, host, &a->sin_addr);
        server_addrlen = sizeof *a;
    }

    /* The payload: a pattern that differs from byte to byte and message to header. */
    char header[32];
    int hlen = snprintf(header, sizeof header, "%zu ", size);
    size_t hdr = workload == ECHO ? 0 : (size_t)hlen;
    message_len = (hdr + size) * batch;
    message = malloc(message_len + 1);
    memcpy(message, header, hdr);
    for (size_t i = 0; i < size; i++) message[hdr + i] = (char)((i * 131 + 7) & 0xff);
    for (size_t k = 1; k < batch; k++) memcpy(message + k * (hdr + size), message, hdr + size);
    if (workload == FRAMED) {
        expected = message;
        expected_len = message_len;
    } else {
        expected = message + hdr;
        expected_len = size;
    }

    epfd = epoll_create1(0);
    struct lconn *conns = calloc((size_t)nconn, sizeof *conns);
    for (int i = 0; i < nconn; i++) conns[i].fd = -1;

    double start = now();
    warmup_end = start + warmup;
    stop_at = settle ? 1e300 : warmup_end + duration; /* --settle: set once measuring */
    double cpu_start = cpu_seconds(), cpu_at_warmup = cpu_start;
    double wait_start = wait_seconds();
    int settled_at_start = 0;
    if (warmup <= 0 && !settle) start_measuring();
    double interval = rate > 0 ? 1.0 / rate : 0;
    double next_due = start;
    /* Open loop: messages due but not begun, as a FIFO of due times. */
    size_t qcap = 1 << 20, qhead = 0, qtail = 0;
    double *queue = rate > 0 ? malloc(qcap * sizeof *queue) : NULL;

    int open_count = 0, announced = 0;
    rate_mode = rate > 0;
    for (int i = 0; i < nconn; i++) {
        if (open_connection(&conns[i], 0) < 0) {
            connect_errors++;
            fail(&conns[i], "connect failed");
        }
    }
    struct epoll_event events[512];
    double measure_start = recording ? start : 0, measure_end = 0;
    for (;;) {
        double t = now();
        if (!recording && t >= warmup_end &&
            (!settle || settled >= nconn || t >= warmup_end + 30)) {
            start_measuring();
            settled_at_start = settled;
            measure_start = t;
            cpu_at_warmup = cpu_seconds();
            wait_start = wait_seconds();
            if (settle) stop_at = t + duration;
        }
        if (!stopping && workload != IDLE && recording &&
            (t >= stop_at || (max_messages && completed >= max_messages))) {
            stopping = 1;
            measure_end = t;
        }
        if (stopping && (inflight <= 0 || t > measure_end + 10)) break;
        if (workload == IDLE && announced && (t >= stop_at || cut_short)) break;

        if (rate_mode && !stopping) {
            /* Open loop: queue what is due, hand it to free connections. */
            while (next_due <= t) {
                if ((qtail + 1) % qcap != qhead) {
                    queue[qtail] = next_due;
                    qtail = (qtail + 1) % qcap;
                }
                next_due += interval;
            }
            for (int i = 0; i < nconn && qhead != qtail; i++) {
                struct lconn *c = &conns[i];
                if (c->state != WAITING && c->state != FREE) continue;
                start_message(c, queue[qhead]);
                qhead = (qhead + 1) % qcap;
            }
        } else if (!rate_mode && !stopping && workload != IDLE) {
            /* Closed loop: replace connections that failed. */
            for (int i = 0; i < nconn; i++)
                if (conns[i].state == FREE) start_message(&conns[i], t);
        }
        if (workload == IDLE && !announced && open_count + (int)connect_errors >= nconn) {
            fprintf(stderr, "ready %d\n", open_count);
            fflush(stderr);
            announced = 1;
            stop_at = now() + duration;
        }

        int timeout = 100;
        if (rate_mode && !stopping) {
            double wait = next_due - now();
            timeout = wait <= 0 ? 0 : (int)(wait * 1000) + 1;
            if (timeout > 100) timeout = 100;
        }
        int n = epoll_wait(epfd, events, 512, timeout);
        for (int e = 0; e < n; e++) {
            struct lconn *c = events[e].data.ptr;
            if (c->fd < 0) continue;
            uint32_t ev = events[e].events;
            if (c->state == CONNECTING) {
                if (ev & (EPOLLERR | EPOLLHUP)) {
                    if (workload != IDLE && (c->due > 0 || !rate_mode)) inflight--;
                    connect_errors++;
                    fail(c, "connect failed");
                    continue;
                }
                if (!(ev & EPOLLOUT)) continue;
                if (workload == IDLE) {
                    c->state = OPEN_IDLE;
                    open_count++;
                    continue;
                }
                if (c->due == 0 && rate_mode) {
                    c->state = WAITING; /* opened at the start: wait for a message */
                    continue;
                }
                begin(c, c->due ? c->due : now());
                if (c->fd < 0) continue;
                ev &= ~(uint32_t)EPOLLOUT;
            }
            if (c->state == OPEN_IDLE) {
                if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                    fail(c, "the server closed an idle connection");
                    open_count--;
                }
                continue;
            }
            if (c->state != BUSY) continue;
            if (ev & EPOLLOUT) {
                send_some(c);
                if (c->fd < 0) continue;
            }
            if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                int done = receive_some(c);
                if (done == 1) complete(c);
                else if (done == -1) inflight--; /* -2: counted where it failed */
            }
        }
    }
    double end = now();
    if (!measure_end) measure_end = end;
    double cpu_end = cpu_seconds();
    double wait_end = wait_seconds();
    double elapsed = measure_end - measure_start;
    if (elapsed <= 0) elapsed = 1e-9;
    qsort(latencies, nlat, sizeof *latencies, cmp_u32);
    double mps = nlat / elapsed;
    printf("{\"workload\": \"%s\", \"size\": %zu, \"connections\": %d, \"pipeline\": %zu, \"rate\": %.1f, "
           "\"seconds\": %.6f, \"messages\": %zu, \"messages_per_second\": %.1f, "
           "\"megabytes_per_second\": %.3f, "
           "\"latency_us\": {\"p1\": %.0f, \"p10\": %.0f, \"p25\": %.0f, \"p50\": %.0f, "
           "\"p75\": %.0f, \"p90\": %.0f, \"p95\": %.0f, \"p99\": %.0f, \"p999\": %.0f, \"max\": %.0f}, "
           "\"errors\": %llu, \"connect_errors\": %llu, \"open_connections\": %d, "
           "\"client_cpu_seconds\": %.6f, \"client_cpu_utilization\": %.3f, "
           "\"client_wait_seconds\": %.6f, \"settled\": %d, \"first_error\": \"%s\"}\n",
           workload == COUNT ? "count" : workload == ECHO ? "echo" : workload == FRAMED ? "framed" : "idle",
           size, nconn, batch, rate, elapsed, nlat, mps, mps * size / 1e6, pct(0.01), pct(0.1), pct(0.25), pct(0.5),
           pct(0.75), pct(0.9), pct(0.95), pct(0.99), pct(0.999),
           nlat ? (double)latencies[nlat - 1] : 0.0, (unsigned long long)errors,
           (unsigned long long)connect_errors, open_count, cpu_end - cpu_at_warmup,
           (cpu_end - cpu_at_warmup) / (end - measure_start), wait_end - wait_start,
           settled_at_start, first_error);
    return 0;
}
