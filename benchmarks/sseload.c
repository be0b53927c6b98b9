/*
 * sseload: a compiled load generator for twisted-sse benchmarks (epoll, one thread).
 *
 *   sseload stream HOST PORT PATH N SECONDS   N streams; measure deliveries and latency
 *   sseload churn  HOST PORT PATH RATE SECONDS open streams at RATE/s, drop each by RST
 *                                             once its first bytes arrived
 *   sseload post   HOST PORT PATH CONC SECONDS TOKEN   CONC keep-alive connections POSTing
 *   sseload postbatch HOST PORT PATH CONC SECONDS TOKEN BATCH   the same, each POST an ndjson batch of
 *                                             BATCH events on channel "pub" (responses counts POSTs)
 *   sseload resume HOST PORT PATH N SECONDS TOKEN LASTID EXPECTED SPREAD HASH   a reconnect storm: N
 *                                             streams opened over SPREAD s, each with Last-Event-ID LASTID,
 *                                             caught up once EXPECTED ids arrived; every stream stays open
 *                                             until all are caught up. HASH: FNV-1a 64 (hex) of the expected
 *                                             ids, each followed by LF: a stream whose ids hash otherwise
 *                                             lost, doubled or reordered an event
 *
 * stream: an event's data is expected to start with "<publish time, ns since epoch> <seq>";
 * latency is arrival time minus publish time (same machine, same clock), and a jump in
 * seq on one connection counts as lost events. Results are one line of JSON on stdout,
 * including this process's own CPU time, so the load generator can be shown not to be
 * the bottleneck.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKET_US 100
#define BUCKETS 600000 /* 60 s */
#define BUF 65536

typedef struct {
    int fd;
    int state; /* 0 connecting, 1 open, 2 done */
    char line[8192];
    int line_len;
    long long last_seq;
    int got_first;
    int waiting; /* post: a request is in flight */
    long long ids;       /* resume: ids received */
    uint64_t hash;       /* resume: FNV-1a of the ids received */
} conn_t;

static uint32_t hist[BUCKETS + 1];
static long long deliveries, lost, refused_or_closed, connected_count, errors_count, unparsed;
static const char *host, *path, *token;
static int port;
static struct sockaddr_in addr;
static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static long long wall_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int open_conn(int ep, conn_t *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->last_seq = -1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static void rst_close(int ep, conn_t *c) {
    struct linger l = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = 2;
}

static const char *last_event_id;

static void send_get(conn_t *c) {
    char req[1024];
    int n = last_event_id
                ? snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nLast-Event-ID: %s\r\n\r\n", path, host,
                           last_event_id)
                : snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path,
                           host);
    if (write(c->fd, req, n) != n) errors_count++;
}

static int batch;

static void send_batch(conn_t *c, long long seq) {
    static char *body, *req;
    if (!body) {
        body = malloc(batch * 96 + 1);
        req = malloc(batch * 96 + 1024);
    }
    int bl = 0;
    for (int i = 0; i < batch; i++)
        bl += sprintf(body + bl, "{\"channel\": \"pub\", \"data\": \"%lld %lld\"}\n", wall_ns(), seq * batch + i);
    int n = sprintf(req,
                    "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                    "Content-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n%s",
                    path, host, token, bl, body);
    if (write(c->fd, req, n) != n) errors_count++;
    c->waiting = 1;
}

static void send_post(conn_t *c, long long seq) {
    if (batch) {
        send_batch(c, seq);
        return;
    }
    char body[64], req[1024];
    int bl = snprintf(body, sizeof body, "%lld %lld", wall_ns(), seq);
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", path,
                     host, token, bl, body);
    if (write(c->fd, req, n) != n) errors_count++;
    c->waiting = 1;
}

static void on_line(conn_t *c, const char *line, int len) {
    if (len < 6 || memcmp(line, "data: ", 6) != 0) return;
    char *end;
    long long ts = strtoll(line + 6, &end, 10);
    if (end == line + 6) {
        unparsed++;
        return;
    }
    long long seq = strtoll(end, NULL, 10);
    long long us = (wall_ns() - ts) / 1000;
    if (us < 0) us = 0;
    long long b = us / BUCKET_US;
    hist[b > BUCKETS ? BUCKETS : b]++;
    deliveries++;
    if (c->last_seq >= 0 && seq > c->last_seq + 1) lost += seq - c->last_seq - 1;
    if (seq > c->last_seq) c->last_seq = seq;
}

static int resuming;
static long long resume_expected, resume_done, resume_wrong;
static uint64_t resume_hash;
static double resume_start, resume_last;

static void on_resume_line(conn_t *c, const char *line, int len) {
    if (len < 4 || memcmp(line, "id: ", 4) != 0 || c->ids >= resume_expected) return;
    for (int i = 4; i <= len; i++) {
        c->hash ^= (unsigned char)(i < len ? line[i] : '\n');
        c->hash *= 1099511628211ULL;
    }
    if (++c->ids == resume_expected) {
        resume_done++;
        if (c->hash != resume_hash) resume_wrong++;
        resume_last = now_s() - resume_start;
    }
}

static void feed(conn_t *c, const char *data, int n) {
    for (int i = 0; i < n; i++) {
        char ch = data[i];
        if (ch == '\n') {
            int len = c->line_len;
            if (len && c->line[len - 1] == '\r') len--;
            if (resuming)
                on_resume_line(c, c->line, len);
            else
                on_line(c, c->line, len);
            c->line_len = 0;
        } else if (c->line_len < (int)sizeof c->line - 1) {
            c->line[c->line_len++] = ch;
        }
    }
}

static double percentile(double p) {
    long long total = 0, seen = 0;
    for (int i = 0; i <= BUCKETS; i++) total += hist[i];
    if (!total) return -1;
    long long want = (long long)(p * total);
    for (int i = 0; i <= BUCKETS; i++) {
        seen += hist[i];
        if (seen > want) return (i + 0.5) * BUCKET_US / 1000.0;
    }
    return -1;
}

static void report(const char *mode, double elapsed, long long extra_count, const char *extra_name) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("{\"mode\": \"%s\", \"seconds\": %.3f, \"connected\": %lld, \"deliveries\": %lld, \"lost\": %lld, "
           "\"p50_ms\": %.2f, \"p99_ms\": %.2f, \"p999_ms\": %.2f, \"closed_by_server\": %lld, \"errors\": %lld, "
           "\"unparsed\": %lld, \"%s\": %lld, \"loadgen_cpu_s\": %.3f}\n",
           mode, elapsed, connected_count, deliveries, lost, percentile(0.5), percentile(0.99), percentile(0.999),
           refused_or_closed, errors_count, unparsed, extra_name, extra_count, cpu);
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: sseload stream|churn|post|postbatch HOST PORT PATH N SECONDS [TOKEN [BATCH]]\n");
        return 2;
    }
    const char *mode = argv[1];
    host = argv[2];
    port = atoi(argv[3]);
    path = argv[4];
    int n = atoi(argv[5]);
    double seconds = atof(argv[6]);
    token = argc > 7 ? argv[7] : "";
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, host, &addr.sin_addr);

    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    int ep = epoll_create1(0);
    resuming = !strcmp(mode, "resume");
    double spread = 0;
    if (resuming) {
        if (argc < 12) {
            fprintf(stderr, "usage: sseload resume HOST PORT PATH N SECONDS TOKEN LASTID EXPECTED SPREAD HASH\n");
            return 2;
        }
        last_event_id = argv[8];
        resume_expected = atoll(argv[9]);
        spread = atof(argv[10]);
        resume_hash = strtoull(argv[11], NULL, 16);
    }
    int is_stream = !strcmp(mode, "stream") || resuming, is_churn = !strcmp(mode, "churn");
    int is_post = !strcmp(mode, "post") || !strcmp(mode, "postbatch");
    if (!strcmp(mode, "postbatch")) batch = argc > 8 ? atoi(argv[8]) : 100;
    int slots = is_churn ? 65536 : n;
    conn_t *conns = calloc(slots, sizeof(conn_t));
    struct epoll_event events[1024];
    static char buf[BUF];
    long long opened = 0, completed = 0, post_seq = 0;
    double start = now_s(), next_open = start;
    int churn_slot = 0;

    if ((is_stream && !resuming) || is_post)
        for (int i = 0; i < n; i++)
            if (open_conn(ep, &conns[i]) < 0) errors_count++;
    int resume_opened = 0;
    resume_start = start;

    for (;;) {
        double t = now_s();
        if (t - start >= seconds || stopping) break;
        if (resuming) {
            if (resume_done == n) break;
            while (resume_opened < n && start + spread * resume_opened / n <= t) {
                if (open_conn(ep, &conns[resume_opened]) < 0) errors_count++;
                conns[resume_opened].hash = 14695981039346656037ULL;
                resume_opened++;
            }
        }
        if (is_churn) {
            while (next_open <= t) {
                conn_t *c = &conns[churn_slot];
                churn_slot = (churn_slot + 1) % slots;
                if (c->fd && c->state != 2) rst_close(ep, c); /* a slot still in use after a lap: give up on it */
                if (open_conn(ep, c) < 0) errors_count++;
                opened++;
                next_open += 1.0 / n;
            }
        }
        int k = epoll_wait(ep, events, 1024, 5);
        for (int i = 0; i < k; i++) {
            conn_t *c = events[i].data.ptr;
            if (c->state == 2) continue;
            if (c->state == 0 && (events[i].events & EPOLLOUT)) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    errors_count++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    c->state = 2;
                    continue;
                }
                c->state = 1;
                connected_count++;
                struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                if (is_post)
                    send_post(c, post_seq++);
                else
                    send_get(c);
            }
            if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                int r = read(c->fd, buf, sizeof buf);
                if (r <= 0) {
                    if (r < 0 && errno == EAGAIN) continue;
                    refused_or_closed++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    c->state = 2;
                    continue;
                }
                if (is_stream) {
                    feed(c, buf, r);
                } else if (is_churn) {
                    completed++;
                    rst_close(ep, c);
                } else if (is_post) {
                    /* one response per request: count status lines */
                    for (int j = 0; j + 12 <= r; j++)
                        if (!memcmp(buf + j, "HTTP/1.1 200", 12) || !memcmp(buf + j, "HTTP/1.1 202", 12)) completed++;
                    send_post(c, post_seq++);
                }
            }
        }
    }
    double elapsed = now_s() - start;
    if (resuming) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
        printf("{\"mode\": \"resume\", \"clients\": %d, \"caught_up\": %lld, \"wrong\": %lld, "
               "\"last_caught_up_s\": %.3f, \"errors\": %lld, \"closed_by_server\": %lld, \"loadgen_cpu_s\": %.3f}\n",
               n, resume_done, resume_wrong, resume_last, errors_count, refused_or_closed, cpu);
        return 0;
    }
    report(mode, elapsed, is_churn ? completed : is_post ? completed : opened, is_churn ? "cycles" : "responses");
    return 0;
}
