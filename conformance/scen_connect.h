/* Scenarios: connect in every form, addresses, SO_ERROR. */

static void sc_connect_blocking_v4(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    rv("connect", do_connect(fd, PEER4, CTL_PORT));
    pname("peer", fd, 1);
    pname("local", fd, 0);
    show_soerr(fd);
    rv("connect again", do_connect(fd, PEER4, CTL_PORT));
}

static void sc_connect_blocking_v6(void) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    rv("connect", do_connect(fd, PEER6, CTL_PORT));
    pname("peer", fd, 1);
    pname("local", fd, 0);
    rv("connect again", do_connect(fd, PEER6, CTL_PORT));
}

static void nonblock_connect(int fd, const char *ip) {
    rv("connect", do_connect(fd, ip, CTL_PORT));
    show_poll("poll", fd, ALLP, 3000);
    show_soerr(fd);
    rv("connect 2", do_connect(fd, ip, CTL_PORT));
    rv("connect 3", do_connect(fd, ip, CTL_PORT));
    pname("peer", fd, 1);
    pname("local", fd, 0);
}

static void sc_connect_nonblock_v4(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    set_nonblock(fd, 1);
    nonblock_connect(fd, PEER4);
}

static void sc_connect_nonblock_v6(void) {
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
    nonblock_connect(fd, PEER6);
}

static void sc_connect_sock_nonblock_flag(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    nonblock_connect(fd, PEER4);
    out("O_NONBLOCK: %d\n", !!(fcntl(fd, F_GETFL) & O_NONBLOCK));
}

static void sc_connect_nonblock_twice_pending(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    rv("connect", do_connect(fd, BLACK4, CTL_PORT));
    rv("connect again while pending", do_connect(fd, BLACK4, CTL_PORT));
    show_poll("poll after 300ms", fd, ALLP, 300);
    show_soerr(fd);
}

static void sc_connect_refused_blocking_v4(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    rv("connect", do_connect(fd, PEER4, CLOSED_PORT));
    show_soerr(fd);
    pname("peer", fd, 1);
    rv("connect to open port", do_connect(fd, PEER4, CTL_PORT));
    pname("peer", fd, 1);
}

static void sc_connect_refused_blocking_v6(void) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    rv("connect", do_connect(fd, PEER6, CLOSED_PORT));
    show_soerr(fd);
    rv("connect again", do_connect(fd, PEER6, CLOSED_PORT));
}

static void sc_connect_refused_nonblock(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    rv("connect", do_connect(fd, PEER4, CLOSED_PORT));
    show_poll("poll", fd, ALLP, 3000);
    show_soerr(fd);
    show_soerr(fd);
    char c;
    rv("recv", recv(fd, &c, 1, 0));
    rv("send", send(fd, "x", 1, MSG_NOSIGNAL));
    rv("connect again", do_connect(fd, PEER4, CLOSED_PORT));
    show_poll("poll again", fd, ALLP, 3000);
    show_soerr(fd);
}

static void sc_connect_refused_then_open_nonblock(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    do_connect(fd, PEER4, CLOSED_PORT);
    pollrev(fd, POLLOUT, 3000);
    show_soerr(fd);
    rv("connect open port", do_connect(fd, PEER4, CTL_PORT));
    show_poll("poll", fd, ALLP, 3000);
    show_soerr(fd);
    pname("peer", fd, 1);
}

static void sc_connect_refused_epoll(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    rv("connect", do_connect(fd, PEER4, CLOSED_PORT));
    show_epoll("epoll", ep, 3000);
    show_soerr(fd);
}

static void sc_connect_sndtimeo_blackhole(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {0, 300000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    long t0 = now_ms();
    rv("connect", do_connect(fd, BLACK4, CTL_PORT));
    long dt = now_ms() - t0;
    out("waited about the timeout: %d\n", dt >= 250 && dt < 2000);
    show_soerr(fd);
    rv("connect again", do_connect(fd, BLACK4, CTL_PORT));
}

static void sc_connect_sndtimeo_ok(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    rv("connect", do_connect(fd, PEER4, CTL_PORT));
    struct timeval got;
    socklen_t l = sizeof got;
    getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &got, &l);
    out("SO_SNDTIMEO: %ld.%06ld\n", (long)got.tv_sec, (long)got.tv_usec);
}

static void sc_connect_nonblock_blackhole(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    rv("connect", do_connect(fd, BLACK4, CTL_PORT));
    show_poll("poll 400ms", fd, ALLP, 400);
    show_soerr(fd);
    pname("peer", fd, 1);
    char c;
    rv("recv", recv(fd, &c, 1, 0));
    rv("send", send(fd, "x", 1, MSG_NOSIGNAL));
}

static void sc_connect_v4mapped(void) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    rv("connect", do_connect(fd, "::ffff:" PEER4, CTL_PORT));
    pname("peer", fd, 1);
    pname("local", fd, 0);
}

static void sc_connect_v4mapped_v6only(void) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    seti(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    rv("connect", do_connect(fd, "::ffff:" PEER4, CTL_PORT));
}

static void sc_connect_wrong_family(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    rv("connect v6 addr on v4 socket", do_connect(fd, PEER6, CTL_PORT));
    int fd6 = socket(AF_INET6, SOCK_STREAM, 0);
    rv("connect v4 addr on v6 socket", do_connect(fd6, PEER4, CTL_PORT));
}

static void sc_connect_short_addrlen(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_storage ss;
    mkaddr(PEER4, CTL_PORT, &ss);
    rv("connect addrlen 4", connect(fd, (void *)&ss, 4));
}

static void sc_connect_unspec_tcp(void) {
    int fd = tcp_to(PEER4, CTL_PORT);
    struct sockaddr sa = {.sa_family = AF_UNSPEC};
    rv("connect AF_UNSPEC", connect(fd, &sa, sizeof sa));
    pname("peer", fd, 1);
    rv("connect again", do_connect(fd, PEER4, CTL_PORT));
    pname("peer", fd, 1);
}

static void sc_connect_bound_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    seti(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    rv("bind", do_bind(fd, "0.0.0.0", 20101));
    rv("connect", do_connect(fd, PEER4, CTL_PORT));
    pname("local", fd, 0);
    send_all(fd, "whoami\n", 7);
    show_line("server sees", fd);
}

static void sc_connect_bound_tunnel_addr(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    rv("bind", do_bind(fd, OUR4, 0));
    pname("local after bind", fd, 0);
    rv("connect", do_connect(fd, PEER4, CTL_PORT));
    pname("local", fd, 0);
}

static void whoami(const char *ip, int v6sock) {
    int fd = socket(v6sock ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    must("connect", do_connect(fd, ip, CTL_PORT));
    send_all(fd, "whoami\n", 7);
    char buf[256];
    long n = read_n(fd, buf, sizeof buf - 1, 2000);
    if (n < 0)
        n = 0;
    buf[n] = 0;
    char ip2[128] = "";
    int port = -1;
    sscanf(buf, "%127s %d", ip2, &port);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (void *)&ss, &len);
    out("server sees address: %s\n", ip2);
    out("server sees our getsockname port: %d\n", port == port_of(&ss));
}

static void sc_connect_whoami_v4(void) { whoami(PEER4, 0); }
static void sc_connect_whoami_v6(void) { whoami(PEER6, 1); }

static void sc_so_error_connected(void) {
    int fd = ctl("echo");
    show_soerr(fd);
    show_opt("SO_TYPE", fd, SOL_SOCKET, SO_TYPE);
    show_opt("SO_DOMAIN", fd, SOL_SOCKET, SO_DOMAIN);
    show_opt("SO_PROTOCOL", fd, SOL_SOCKET, SO_PROTOCOL);
    show_opt("SO_ACCEPTCONN", fd, SOL_SOCKET, SO_ACCEPTCONN);
}

static void sc_unconnected_calls(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char c;
    pname("peer", fd, 1);
    pname("local", fd, 0);
    rv("recv", recv(fd, &c, 1, 0));
    rv("send", send(fd, "x", 1, MSG_NOSIGNAL));
    rv("shutdown", shutdown(fd, SHUT_WR));
    show_poll("poll", fd, ALLP, 0);
    show_soerr(fd);
}

static void sc_connect_many_parallel(void) {
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        do_connect(fds[i], PEER4, CTL_PORT);
    }
    int ok = 0;
    for (int i = 0; i < 8; i++)
        if ((pollrev(fds[i], POLLOUT, 3000) & POLLOUT) && geti(fds[i], SOL_SOCKET, SO_ERROR) == 0)
            ok++;
    out("connected: %d of 8\n", ok);
    for (int i = 0; i < 8; i++) {
        set_nonblock(fds[i], 0);
        send_all(fds[i], "echo\nabc", 8);
    }
    int echoed = 0;
    for (int i = 0; i < 8; i++) {
        char buf[4];
        if (read_n(fds[i], buf, 3, 2000) == 3 && memcmp(buf, "abc", 3) == 0)
            echoed++;
    }
    out("echoed: %d of 8\n", echoed);
}
