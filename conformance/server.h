/* The server role (`scen serve`), run in the wireguard-go peer's namespace:
 * a TCP command server on [::]:7000 (one thread per connection; the first
 * line names the behaviour) and UDP echo servers on [::]:7000 and 7002.
 *
 * Commands (one line):
 *   echo                 echo until EOF, then close
 *   whoami               reply "<our view of the client's address>", then echo
 *   close                close at once
 *   rst                  close with SO_LINGER 0 (the client gets a RST)
 *   hello                send "hello\n", shutdown(SHUT_WR), read to EOF, close
 *   send N               send N pattern bytes, then close
 *   slowsend N CH MS     send N pattern bytes in CH-byte pieces MS ms apart, close
 *   report               read to the end, reply "read N ok|bad end=EOF|ENAME", close
 *   sink TAG             read to the end, record "read N end=…" as TAG, close
 *   sendsink TAG N       send N pattern bytes, then like sink
 *   linger MS            read to EOF, wait MS ms, close
 *   hold                 read nothing; close when the client hangs up (15 s at most)
 *   obs TAG              reply TAG's record (waiting up to 5 s), close
 *   connect PORT FAM N   connect back N times to the client (FAM v4|v6) at PORT,
 *                        700 ms per try, sending "peer-hello I\n" on each success;
 *                        reply "connected K of N", hold them until the client's EOF
 *   udpto PORT FAM MSG   send MSG in a datagram to the client at PORT; reply "sent"
 */

#define NOBS 512
static struct {
    char tag[64];
    char text[128];
} obs[NOBS];
static int nobs;
static pthread_mutex_t obs_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t obs_cv = PTHREAD_COND_INITIALIZER;

static void obs_put(const char *tag, const char *text) {
    pthread_mutex_lock(&obs_mu);
    if (nobs < NOBS) {
        snprintf(obs[nobs].tag, sizeof obs[nobs].tag, "%s", tag);
        snprintf(obs[nobs].text, sizeof obs[nobs].text, "%s", text);
        nobs++;
    }
    pthread_cond_broadcast(&obs_cv);
    pthread_mutex_unlock(&obs_mu);
}

static int obs_get(const char *tag, char *buf, size_t n) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    pthread_mutex_lock(&obs_mu);
    for (;;) {
        for (int i = nobs - 1; i >= 0; i--)
            if (strcmp(obs[i].tag, tag) == 0) {
                snprintf(buf, n, "%s", obs[i].text);
                pthread_mutex_unlock(&obs_mu);
                return 1;
            }
        if (pthread_cond_timedwait(&obs_cv, &obs_mu, &dl) != 0)
            break;
    }
    pthread_mutex_unlock(&obs_mu);
    snprintf(buf, n, "no observation");
    return 0;
}

static void srv_send(int fd, const char *s) { send(fd, s, strlen(s), MSG_NOSIGNAL); }

static void srv_send_pat(int fd, size_t n) {
    char buf[16384];
    size_t off = 0;
    while (off < n) {
        size_t k = n - off < sizeof buf ? n - off : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = pat(off + i);
        ssize_t w = send(fd, buf, k, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

/* Reads to EOF or error: "read N ok|bad end=EOF|ENAME". */
static void srv_sink(int fd, char *res, size_t n) {
    char buf[16384];
    size_t total = 0;
    int ok = 1;
    const char *end = "EOF";
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            end = en(errno);
            break;
        }
        if (r == 0)
            break;
        if (!check_pat(buf, (size_t)r, total))
            ok = 0;
        total += (size_t)r;
    }
    snprintf(res, n, "read %zu %s end=%s", total, ok ? "ok" : "bad", end);
}

static void srv_connect_back(int c, int port, const char *family, int n) {
    int fds[16], k = 0;
    const char *ip = strcmp(family, "v6") == 0 ? OUR6 : OUR4;
    for (int i = 0; i < n && i < 16; i++) {
        int fd = socket(fam(ip), SOCK_STREAM | SOCK_NONBLOCK, 0);
        do_connect(fd, ip, port);
        int m = pollrev(fd, POLLOUT, 700);
        if ((m & POLLOUT) && geti(fd, SOL_SOCKET, SO_ERROR) == 0) {
            set_nonblock(fd, 0);
            char line[64];
            snprintf(line, sizeof line, "peer-hello %d\n", i);
            srv_send(fd, line);
            fds[k++] = fd;
        } else {
            close(fd);
        }
    }
    char line[64];
    snprintf(line, sizeof line, "connected %d of %d\n", k, n);
    srv_send(c, line);
    char buf[256];
    while (recv(c, buf, sizeof buf, 0) > 0) {
    }
    for (int i = 0; i < k; i++)
        close(fds[i]);
}

static void *serve_conn(void *arg) {
    int fd = (int)(intptr_t)arg;
    char line[256];
    size_t n = 0;
    while (n + 1 < sizeof line) {
        ssize_t r = recv(fd, line + n, 1, 0);
        if (r <= 0)
            break;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = 0;
    char a[64] = "", b[64] = "", c[192] = "";
    if (sscanf(line, "%63s %63s %191[^\n]", a, b, c) < 1)
        a[0] = 0;
    char res[256];
    if (strcmp(a, "echo") == 0 || strcmp(a, "whoami") == 0) {
        if (strcmp(a, "whoami") == 0) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof ss;
            getpeername(fd, (void *)&ss, &len);
            char ip[INET6_ADDRSTRLEN];
            const struct sockaddr_in6 *s6 = (const void *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
            snprintf(res, sizeof res, "%s %d\n", ip, ntohs(s6->sin6_port));
            srv_send(fd, res);
        }
        char buf[16384];
        for (;;) {
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r <= 0)
                break;
            send(fd, buf, (size_t)r, MSG_NOSIGNAL);
        }
    } else if (strcmp(a, "close") == 0) {
    } else if (strcmp(a, "rst") == 0) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    } else if (strcmp(a, "hello") == 0) {
        srv_send(fd, "hello\n");
        shutdown(fd, SHUT_WR);
        srv_sink(fd, res, sizeof res);
    } else if (strcmp(a, "send") == 0) {
        srv_send_pat(fd, (size_t)atol(b));
    } else if (strcmp(a, "slowsend") == 0) {
        size_t total = (size_t)atol(b), ch = 0, off = 0;
        int ms = 0;
        sscanf(c, "%zu %d", &ch, &ms);
        char buf[65536];
        while (off < total && ch > 0 && ch <= sizeof buf) {
            size_t k = total - off < ch ? total - off : ch;
            for (size_t i = 0; i < k; i++)
                buf[i] = pat(off + i);
            if (send(fd, buf, k, MSG_NOSIGNAL) != (ssize_t)k)
                break;
            off += k;
            msleep(ms);
        }
    } else if (strcmp(a, "report") == 0) {
        srv_sink(fd, res, sizeof res);
        strcat(res, "\n");
        srv_send(fd, res);
    } else if (strcmp(a, "sink") == 0) {
        srv_sink(fd, res, sizeof res);
        obs_put(b, res);
    } else if (strcmp(a, "sendsink") == 0) {
        srv_send_pat(fd, (size_t)atol(c));
        srv_sink(fd, res, sizeof res);
        obs_put(b, res);
    } else if (strcmp(a, "linger") == 0) {
        srv_sink(fd, res, sizeof res);
        msleep(atoi(b));
    } else if (strcmp(a, "hold") == 0) {
        pollrev(fd, POLLRDHUP, 15000);
    } else if (strcmp(a, "obs") == 0) {
        obs_get(b, res, sizeof res);
        strcat(res, "\n");
        srv_send(fd, res);
    } else if (strcmp(a, "connect") == 0) {
        char family[16] = "v4";
        int cnt = 1;
        sscanf(c, "%15s %d", family, &cnt);
        srv_connect_back(fd, atoi(b), family, cnt);
    } else if (strcmp(a, "udpto") == 0) {
        char family[16] = "v4", msg[128] = "";
        sscanf(c, "%15s %127s", family, msg);
        const char *ip = strcmp(family, "v6") == 0 ? OUR6 : OUR4;
        int u = socket(fam(ip), SOCK_DGRAM, 0);
        struct sockaddr_storage ss;
        socklen_t len = mkaddr(ip, atoi(b), &ss);
        sendto(u, msg, strlen(msg), 0, (void *)&ss, len);
        close(u);
        srv_send(fd, "sent\n");
    } else {
        srv_send(fd, "unknown command\n");
    }
    close(fd);
    return NULL;
}

static void *udp_echo(void *arg) {
    int port = (int)(intptr_t)arg;
    int u = socket(AF_INET6, SOCK_DGRAM, 0);
    seti(u, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    if (do_bind(u, "::", port) < 0) {
        perror("udp bind");
        exit(1);
    }
    char buf[65536];
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        ssize_t r = recvfrom(u, buf, sizeof buf, 0, (void *)&ss, &len);
        if (r >= 0)
            sendto(u, buf, (size_t)r, 0, (void *)&ss, len);
    }
    return NULL;
}

static int serve(void) {
    signal(SIGPIPE, SIG_IGN);
    pthread_t t;
    pthread_create(&t, NULL, udp_echo, (void *)(intptr_t)CTL_PORT);
    pthread_create(&t, NULL, udp_echo, (void *)(intptr_t)UDP2_PORT);
    int l = socket(AF_INET6, SOCK_STREAM, 0);
    seti(l, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    seti(l, SOL_SOCKET, SO_REUSEADDR, 1);
    if (do_bind(l, "::", CTL_PORT) < 0 || listen(l, 128) < 0) {
        perror("listen");
        return 1;
    }
    printf("serving\n");
    fflush(stdout);
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            continue;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_create(&t, &at, serve_conn, (void *)(intptr_t)c);
        pthread_attr_destroy(&at);
    }
}
