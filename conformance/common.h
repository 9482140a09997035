/* Shared helpers of the conformance scenarios: printing results the same
 * way in every world (errno names, readiness masks, addresses with
 * ephemeral ports normalised), and small socket utilities. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <netinet/icmp6.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PEER4 "10.77.0.1"
#define PEER6 "fd77::1"
#define OUR4 "10.77.0.2"
#define OUR6 "fd77::2"
/* In the peer's /24 but no host: the peer does not forward, so a black hole. */
#define BLACK4 "10.77.0.9"
#define CTL_PORT 7000
#define UDP2_PORT 7002
#define CLOSED_PORT 7999

static void out(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static const char *en(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

/* "what: r" or "what: -1 ENAME"; errno is read first. */
static long rv(const char *what, long r) {
    int e = errno;
    if (r < 0)
        out("%s: -1 %s\n", what, en(e));
    else
        out("%s: %ld\n", what, r);
    errno = e;
    return r;
}

static void msleep(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Ports we chose print as numbers, the kernel's picks as "ephemeral". */
static int fixed_port(int p) {
    return p == 0 || (p >= 7000 && p <= 7999) || (p >= 20000 && p <= 20999);
}

static void fmt_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t n) {
    char ip[INET6_ADDRSTRLEN], port[16];
    int p;
    if (len == 0) {
        snprintf(buf, n, "(empty)");
        return;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)sa;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
        p = ntohs(s->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)sa;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
        p = ntohs(s->sin6_port);
    } else {
        snprintf(buf, n, "family %d", sa->sa_family);
        return;
    }
    if (fixed_port(p))
        snprintf(port, sizeof port, "%d", p);
    else
        snprintf(port, sizeof port, "ephemeral");
    if (sa->sa_family == AF_INET)
        snprintf(buf, n, "%s:%s", ip, port);
    else
        snprintf(buf, n, "[%s]:%s", ip, port);
}

static int port_of(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* Prints getsockname (peer = 0) or getpeername (peer = 1) of fd. */
static void pname(const char *what, int fd, int peer) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char buf[128];
    memset(&ss, 0, sizeof ss);
    int r = peer ? getpeername(fd, (void *)&ss, &len) : getsockname(fd, (void *)&ss, &len);
    if (r < 0) {
        out("%s: -1 %s\n", what, en(errno));
        return;
    }
    fmt_addr((void *)&ss, len, buf, sizeof buf);
    out("%s: %s\n", what, buf);
}

static socklen_t mkaddr(const char *ip, int port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s = (void *)ss;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(port);
        inet_pton(AF_INET6, ip, &s->sin6_addr);
        return sizeof *s;
    }
    struct sockaddr_in *s = (void *)ss;
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    inet_pton(AF_INET, ip, &s->sin_addr);
    return sizeof *s;
}

static int fam(const char *ip) { return strchr(ip, ':') ? AF_INET6 : AF_INET; }

static int do_connect(int fd, const char *ip, int port) {
    struct sockaddr_storage ss;
    socklen_t len = mkaddr(ip, port, &ss);
    return connect(fd, (void *)&ss, len);
}

static int do_bind(int fd, const char *ip, int port) {
    struct sockaddr_storage ss;
    socklen_t len = mkaddr(ip, port, &ss);
    return bind(fd, (void *)&ss, len);
}

/* A setup step that must work: on failure the scenario says so and ends. */
static void must(const char *what, long r) {
    if (r < 0) {
        out("setup failed: %s: %s\n", what, en(errno));
        _exit(3);
    }
}

static int tcp_to(const char *ip, int port) {
    int fd = socket(fam(ip), SOCK_STREAM, 0);
    must("socket", fd);
    must("connect", do_connect(fd, ip, port));
    return fd;
}

static void send_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        must("send", w);
        p += w;
        n -= (size_t)w;
    }
}

/* A connection to the peer's command server with `cmd` sent. */
static int ctl_at(const char *ip, const char *cmd) {
    int fd = tcp_to(ip, CTL_PORT);
    char line[256];
    snprintf(line, sizeof line, "%s\n", cmd);
    send_all(fd, line, strlen(line));
    return fd;
}

static int ctl(const char *cmd) { return ctl_at(PEER4, cmd); }

static int pollrev(int fd, short events, int ms) {
    struct pollfd p = {fd, events, 0};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r > 0 ? p.revents : 0;
}

static const char *pmask(int m) {
    static char buf[128];
    buf[0] = 0;
    struct {
        int bit;
        const char *n;
    } b[] = {{POLLIN, "IN"}, {POLLPRI, "PRI"}, {POLLOUT, "OUT"}, {POLLERR, "ERR"},
             {POLLHUP, "HUP"}, {POLLRDHUP, "RDHUP"}, {POLLNVAL, "NVAL"}};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if (m & b[i].bit) {
            if (buf[0])
                strcat(buf, "|");
            strcat(buf, b[i].n);
        }
    return buf[0] ? buf : "0";
}

#define ALLP (POLLIN | POLLPRI | POLLOUT | POLLRDHUP)

/* poll mask for `events` now (after waiting up to ms for any of `wait_for`). */
static void show_poll(const char *what, int fd, short events, int wait_ms) {
    int m = pollrev(fd, events, wait_ms);
    out("%s: %s\n", what, pmask(m));
}

static const char *emask(uint32_t m) {
    static char buf[128];
    buf[0] = 0;
    struct {
        uint32_t bit;
        const char *n;
    } b[] = {{EPOLLIN, "IN"}, {EPOLLPRI, "PRI"}, {EPOLLOUT, "OUT"}, {EPOLLERR, "ERR"},
             {EPOLLHUP, "HUP"}, {EPOLLRDHUP, "RDHUP"}};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if (m & b[i].bit) {
            if (buf[0])
                strcat(buf, "|");
            strcat(buf, b[i].n);
        }
    return buf[0] ? buf : "0";
}

static void show_epoll(const char *what, int ep, int ms) {
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, ms);
    if (n <= 0) {
        out("%s: %d events\n", what, n < 0 ? -1 : 0);
        return;
    }
    out("%s: %d events %s\n", what, n, emask(ev[0].events));
}

static char pat(size_t i) { return (char)('a' + i % 26); }

/* Reads up to n bytes (until EOF, error or ms of silence); returns count, -errno. */
static long read_n(int fd, char *buf, size_t n, int ms) {
    size_t got = 0;
    while (got < n) {
        if (!(pollrev(fd, POLLIN, ms) & (POLLIN | POLLHUP | POLLERR)))
            break;
        ssize_t r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0)
            return got ? (long)got : -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long)got;
}

/* Reads one line (without "\n") into buf; prints "what: <line>" or the end. */
static void show_line(const char *what, int fd) {
    char buf[512];
    size_t n = 0;
    while (n + 1 < sizeof buf) {
        if (!(pollrev(fd, POLLIN, 5000) & (POLLIN | POLLHUP | POLLERR)))
            break;
        ssize_t r = recv(fd, buf + n, 1, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r < 0) {
            out("%s: -1 %s\n", what, en(errno));
            return;
        }
        if (r == 0 || buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = 0;
    out("%s: %s\n", what, buf);
}

static int check_pat(const char *buf, size_t n, size_t off) {
    for (size_t i = 0; i < n; i++)
        if (buf[i] != pat(off + i))
            return 0;
    return 1;
}

static int geti(int fd, int level, int opt) {
    int v = -12345;
    socklen_t l = sizeof v;
    if (getsockopt(fd, level, opt, &v, &l) < 0)
        return -1000 - errno;
    return v;
}

static void show_opt(const char *what, int fd, int level, int opt) {
    int v = 0;
    socklen_t l = sizeof v;
    if (getsockopt(fd, level, opt, &v, &l) < 0)
        out("%s: -1 %s\n", what, en(errno));
    else
        out("%s: %d\n", what, v);
}

static void show_soerr(int fd) {
    int v = 0;
    socklen_t l = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &l) < 0)
        out("SO_ERROR: -1 %s\n", en(errno));
    else
        out("SO_ERROR: %s\n", v ? en(v) : "0");
}

static int seti(int fd, int level, int opt, int v) {
    return setsockopt(fd, level, opt, &v, sizeof v);
}

static void set_nonblock(int fd, int on) {
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Waits until FIONREAD reaches n (or 3 s); returns the last value. */
static int wait_inq(int fd, int n) {
    int v = -1;
    long end = now_ms() + 3000;
    while (now_ms() < end) {
        if (ioctl(fd, FIONREAD, &v) < 0)
            return -1000 - errno;
        if (v >= n)
            return v;
        msleep(10);
    }
    return v;
}

/* Waits until SIOCOUTQ is 0 (all acknowledged) or 3 s; returns it. */
static int wait_outq0(int fd) {
    int v = -1;
    long end = now_ms() + 3000;
    while (now_ms() < end) {
        if (ioctl(fd, SIOCOUTQ, &v) < 0)
            return -1000 - errno;
        if (v == 0)
            return 0;
        msleep(10);
    }
    return v;
}

static int tcp_state(int fd) {
    struct tcp_info ti;
    socklen_t l = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0)
        return -1;
    return ti.tcpi_state;
}

static const char *state_name(int s) {
    static const char *n[] = {"?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1",
                              "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK",
                              "LISTEN", "CLOSING"};
    return s >= 0 && s <= 11 ? n[s] : "invalid";
}

/* Waits (up to 3 s) for the TCP state to become `want`; prints the state. */
static void show_state(const char *what, int fd, int want) {
    long end = now_ms() + 3000;
    int s = tcp_state(fd);
    while (s != want && now_ms() < end) {
        msleep(10);
        s = tcp_state(fd);
    }
    out("%s: %s\n", what, state_name(s));
}
