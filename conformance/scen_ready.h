/* Scenarios: readiness (select, poll, epoll level/edge/oneshot), shutdown,
 * close, resets. */

static void sc_poll_connected_idle(void) {
    int fd = ctl("echo");
    msleep(100);
    show_poll("poll", fd, ALLP, 0);
}

static void sc_poll_readable_after_data(void) {
    int fd = ctl("echo");
    send_all(fd, "abc", 3);
    show_poll("poll", fd, POLLIN, 3000);
    wait_inq(fd, 3);
    show_poll("poll all", fd, ALLP, 0);
}

static void sc_poll_fresh_socket(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    show_poll("tcp", fd, ALLP, 0);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    show_poll("udp", u, ALLP, 0);
}

static void sc_select_read_write(void) {
    int fd = ctl("echo");
    fd_set r, w;
    struct timeval tv = {0, 100000};
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(fd, &r);
    FD_SET(fd, &w);
    int n = select(fd + 1, &r, &w, NULL, &tv);
    out("select idle: %d read %d write %d\n", n, FD_ISSET(fd, &r), FD_ISSET(fd, &w));
    send_all(fd, "abc", 3);
    FD_ZERO(&r);
    FD_SET(fd, &r);
    tv.tv_sec = 3;
    n = select(fd + 1, &r, NULL, NULL, &tv);
    out("select after data: %d read %d\n", n, FD_ISSET(fd, &r));
}

static void sc_select_peer_close(void) {
    int fd = ctl("close");
    fd_set r, e;
    struct timeval tv = {3, 0};
    FD_ZERO(&r);
    FD_ZERO(&e);
    FD_SET(fd, &r);
    FD_SET(fd, &e);
    int n = select(fd + 1, &r, NULL, &e, &tv);
    out("select: %d read %d except %d\n", n, FD_ISSET(fd, &r), FD_ISSET(fd, &e));
    char c;
    rv("recv", recv(fd, &c, 1, 0));
}

static void sc_epoll_level(void) {
    int fd = ctl("echo");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    show_epoll("idle", ep, 100);
    ev.events = EPOLLIN | EPOLLRDHUP;
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    send_all(fd, "abc", 3);
    show_epoll("data", ep, 3000);
    show_epoll("again unread", ep, 0);
    char buf[8];
    read_n(fd, buf, 3, 1000);
    show_epoll("after read", ep, 100);
}

static void sc_epoll_edge(void) {
    int fd = ctl("echo");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    show_epoll("idle", ep, 100);
    send_all(fd, "abc", 3);
    show_epoll("data", ep, 3000);
    show_epoll("again unread", ep, 100);
    send_all(fd, "def", 3);
    show_epoll("more data", ep, 3000);
    char buf[8];
    out("read: %ld\n", read_n(fd, buf, 6, 1000));
    show_epoll("after read", ep, 100);
}

static void sc_epoll_edge_out(void) {
    int fd = ctl("echo");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLET};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    show_epoll("first", ep, 1000);
    show_epoll("second", ep, 100);
}

static void sc_epoll_oneshot(void) {
    int fd = ctl("echo");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    send_all(fd, "abc", 3);
    show_epoll("data", ep, 3000);
    send_all(fd, "def", 3);
    show_epoll("disarmed", ep, 300);
    rv("rearm", epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev));
    show_epoll("rearmed", ep, 3000);
}

static void sc_epoll_nonblock_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLET};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    rv("connect", do_connect(fd, PEER4, CTL_PORT));
    show_epoll("writable", ep, 3000);
    show_epoll("edge consumed", ep, 100);
    show_soerr(fd);
}

static void sc_epoll_rdhup(void) {
    int fd = ctl("hello");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    char buf[16];
    out("hello: %ld\n", read_n(fd, buf, 6, 3000));
    msleep(100);
    show_epoll("after peer FIN", ep, 3000);
    rv("recv", recv(fd, buf, sizeof buf, 0));
}

static void sc_epoll_hup_after_rst(void) {
    int fd = ctl("rst");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    msleep(300);
    show_epoll("after rst", ep, 3000);
}

static void sc_poll_peer_fin(void) {
    int fd = ctl("close");
    pollrev(fd, POLLRDHUP, 3000);
    show_poll("poll", fd, ALLP, 0);
    char c;
    rv("recv", recv(fd, &c, 1, 0));
    rv("recv again", recv(fd, &c, 1, 0));
    show_state("state", fd, TCP_CLOSE_WAIT);
}

static void sc_poll_peer_rst(void) {
    int fd = ctl("rst");
    pollrev(fd, POLLERR, 3000);
    show_poll("poll", fd, ALLP, 0);
    char c;
    rv("recv", recv(fd, &c, 1, 0));
    rv("recv again", recv(fd, &c, 1, 0));
    show_poll("poll after", fd, ALLP, 0);
}

static void sc_so_error_after_rst(void) {
    int fd = ctl("rst");
    pollrev(fd, POLLERR, 3000);
    show_soerr(fd);
    show_soerr(fd);
    char c;
    rv("recv", recv(fd, &c, 1, 0));
}

static void sc_send_after_rst(void) {
    int fd = ctl("rst");
    pollrev(fd, POLLERR, 3000);
    rv("send", send(fd, "x", 1, MSG_NOSIGNAL));
    rv("send again", send(fd, "x", 1, MSG_NOSIGNAL));
}

static void sc_send_after_peer_close(void) {
    int fd = ctl("close");
    pollrev(fd, POLLRDHUP, 3000);
    rv("send", send(fd, "x", 1, MSG_NOSIGNAL));
    msleep(500);
    show_poll("poll", fd, ALLP, 0);
    rv("send again", send(fd, "x", 1, MSG_NOSIGNAL));
    rv("send third", send(fd, "x", 1, MSG_NOSIGNAL));
}

static void sc_shutdown_wr_peer_sees_eof(void) {
    int fd = ctl("report");
    char buf[10000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = pat(i);
    send_all(fd, buf, sizeof buf);
    rv("shutdown SHUT_WR", shutdown(fd, SHUT_WR));
    show_line("server", fd);
    char c;
    rv("recv after", recv(fd, &c, 1, 0));
}

static void sc_shutdown_wr_then_send(void) {
    /* The peer stays open 1.5 s after our FIN: no race with its close. */
    int fd = ctl("linger 1500");
    rv("shutdown", shutdown(fd, SHUT_WR));
    rv("send", send(fd, "x", 1, MSG_NOSIGNAL));
    show_poll("poll", fd, ALLP, 0);
    rv("shutdown again", shutdown(fd, SHUT_WR));
    show_state("state", fd, TCP_FIN_WAIT2);
    pollrev(fd, POLLRDHUP, 3000);
    show_poll("poll after the peer's FIN", fd, ALLP, 0);
    rv("shutdown after the peer's FIN", shutdown(fd, SHUT_WR));
}

static volatile sig_atomic_t got_pipe;
static void on_pipe(int s) {
    (void)s;
    got_pipe++;
}

static void sc_sigpipe_on_send_after_shutdown(void) {
    signal(SIGPIPE, on_pipe);
    int fd = ctl("echo");
    shutdown(fd, SHUT_WR);
    rv("send", send(fd, "x", 1, 0));
    rv("write", write(fd, "x", 1));
    out("SIGPIPE: %d\n", (int)got_pipe);
}

static void sc_shutdown_rd(void) {
    int fd = ctl("echo");
    rv("shutdown SHUT_RD", shutdown(fd, SHUT_RD));
    char buf[16];
    rv("recv", recv(fd, buf, sizeof buf, MSG_DONTWAIT));
    show_poll("poll", fd, ALLP, 0);
    rv("send", send(fd, "abc", 3, MSG_NOSIGNAL));
    msleep(300);
    rv("recv after echo", recv(fd, buf, sizeof buf, MSG_DONTWAIT));
}

static void sc_shutdown_rdwr(void) {
    int fd = ctl("hello");
    char buf[8];
    read_n(fd, buf, 6, 3000);
    rv("shutdown SHUT_RDWR", shutdown(fd, SHUT_RDWR));
    show_poll("poll", fd, ALLP, 1000);
    rv("recv", recv(fd, buf, sizeof buf, 0));
    show_state("state", fd, TCP_CLOSE);
}

static void sc_shutdown_invalid_how(void) {
    int fd = ctl("echo");
    rv("shutdown 7", shutdown(fd, 7));
    rv("shutdown on file", shutdown(0, SHUT_WR));
}

static void sc_peer_shutdown_we_still_send(void) {
    int fd = ctl("hello");
    char buf[16];
    long n = read_n(fd, buf, 6, 3000);
    out("got hello: %d\n", n == 6 && memcmp(buf, "hello\n", 6) == 0);
    rv("recv eof", recv(fd, buf, sizeof buf, 0));
    char data[100];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = pat(i);
    rv("send", send(fd, data, sizeof data, MSG_NOSIGNAL));
    show_state("state", fd, TCP_CLOSE_WAIT);
    rv("close", close(fd));
}

static void close_observed(const char *tag, int unread, int linger0, int sendn) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "%s %s %d", unread ? "sendsink" : "sink", tag, unread);
    int fd = ctl(cmd);
    if (unread)
        out("unread bytes waiting: %d\n", wait_inq(fd, unread));
    if (sendn) {
        char data[64];
        for (int i = 0; i < sendn; i++)
            data[i] = pat((size_t)i);
        send_all(fd, data, (size_t)sendn);
    }
    if (linger0) {
        struct linger lg = {1, 0};
        rv("SO_LINGER 0", setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    }
    rv("close", close(fd));
    snprintf(cmd, sizeof cmd, "obs %s", tag);
    int o = ctl(cmd);
    show_line("peer saw", o);
}

/* The tag must be unique per run: the pid of the scenario process. */
static const char *tag(const char *base) {
    static char buf[64];
    snprintf(buf, sizeof buf, "%s-%d", base, (int)getpid());
    return buf;
}

static void sc_close_normal_fin(void) { close_observed(tag("fin"), 0, 0, 5); }
static void sc_close_unread_data_rst(void) { close_observed(tag("unread"), 100, 0, 0); }
static void sc_linger0_rst(void) { close_observed(tag("linger0"), 0, 1, 5); }

static void sc_linger_timeout_normal(void) {
    char cmd[64];
    const char *t = tag("linger1");
    snprintf(cmd, sizeof cmd, "sink %s", t);
    int fd = ctl(cmd);
    struct linger lg = {1, 2};
    rv("SO_LINGER 1,2", setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    struct linger g;
    socklen_t l = sizeof g;
    getsockopt(fd, SOL_SOCKET, SO_LINGER, &g, &l);
    out("SO_LINGER: %d %d\n", g.l_onoff, g.l_linger);
    send_all(fd, "abc", 3);
    long t0 = now_ms();
    rv("close", close(fd));
    out("close quick: %d\n", now_ms() - t0 < 1500);
    snprintf(cmd, sizeof cmd, "obs %s", t);
    show_line("peer saw", ctl(cmd));
}

static void sc_shutdown_then_close_peer_eof(void) {
    char cmd[64];
    const char *t = tag("shutclose");
    snprintf(cmd, sizeof cmd, "sink %s", t);
    int fd = ctl(cmd);
    send_all(fd, "abcdefg", 7);
    rv("shutdown", shutdown(fd, SHUT_WR));
    snprintf(cmd, sizeof cmd, "obs %s", t);
    show_line("peer saw", ctl(cmd));
    rv("close", close(fd));
}

static void sc_peer_sends_first(void) {
    int fd = ctl("send 5");
    show_poll("poll", fd, POLLIN, 3000);
    char buf[16];
    long n = read_n(fd, buf, sizeof buf, 3000);
    out("read: %ld pattern %d\n", n, n > 0 && check_pat(buf, (size_t)n, 0));
    rv("recv at eof", recv(fd, buf, sizeof buf, 0));
}
