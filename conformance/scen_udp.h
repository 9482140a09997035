/* Scenarios: UDP and ICMP (ping) sockets. */

static void udp_show_from(int u, int ms) {
    char buf[9000];
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (!(pollrev(u, POLLIN, ms) & (POLLIN | POLLERR))) {
        out("recvfrom: timeout\n");
        return;
    }
    ssize_t r = recvfrom(u, buf, sizeof buf, MSG_DONTWAIT, (void *)&ss, &len);
    if (r < 0) {
        out("recvfrom: -1 %s\n", en(errno));
        return;
    }
    char a[128];
    fmt_addr((void *)&ss, len, a, sizeof a);
    out("recvfrom: %zd from %s data %.*s\n", r, a, (int)(r > 16 ? 16 : r), buf);
}

static void sc_udp_connected_echo(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    rv("connect", do_connect(u, PEER4, CTL_PORT));
    pname("peer", u, 1);
    pname("local", u, 0);
    rv("send", send(u, "ping", 4, 0));
    udp_show_from(u, 3000);
    char buf[8];
    rv("recv dontwait", recv(u, buf, sizeof buf, MSG_DONTWAIT));
}

static void sc_udp_unconnected_sendto(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    pname("local before", u, 0);
    struct sockaddr_storage ss;
    socklen_t len = mkaddr(PEER4, CTL_PORT, &ss);
    rv("sendto", sendto(u, "hello", 5, 0, (void *)&ss, len));
    pname("local after", u, 0);
    udp_show_from(u, 3000);
    len = mkaddr(PEER4, UDP2_PORT, &ss);
    rv("sendto second port", sendto(u, "two", 3, 0, (void *)&ss, len));
    udp_show_from(u, 3000);
    pname("peer", u, 1);
}

static void sc_udp_v6(void) {
    int u = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_storage ss;
    socklen_t len = mkaddr(PEER6, CTL_PORT, &ss);
    rv("sendto", sendto(u, "six", 3, 0, (void *)&ss, len));
    udp_show_from(u, 3000);
    pname("local", u, 0);
    rv("connect", do_connect(u, PEER6, UDP2_PORT));
    pname("local connected", u, 0);
    rv("send", send(u, "six2", 4, 0));
    udp_show_from(u, 3000);
}

static void sc_udp_v4mapped(void) {
    int u = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_storage ss;
    socklen_t len = mkaddr("::ffff:" PEER4, CTL_PORT, &ss);
    rv("sendto mapped", sendto(u, "mapped", 6, 0, (void *)&ss, len));
    udp_show_from(u, 3000);
    pname("local", u, 0);
}

static void sc_udp_connect_unspec(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    rv("connect", do_connect(u, PEER4, CTL_PORT));
    struct sockaddr sa = {.sa_family = AF_UNSPEC};
    rv("connect AF_UNSPEC", connect(u, &sa, sizeof sa));
    pname("peer", u, 1);
    pname("local", u, 0);
    rv("send", send(u, "x", 1, 0));
    struct sockaddr_storage ss;
    socklen_t len = mkaddr(PEER4, UDP2_PORT, &ss);
    rv("sendto", sendto(u, "after", 5, 0, (void *)&ss, len));
    udp_show_from(u, 3000);
    rv("connect AF_UNSPEC again", connect(u, &sa, sizeof sa));
}

static void sc_udp_reconnect(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    rv("connect 7000", do_connect(u, PEER4, CTL_PORT));
    rv("send", send(u, "one", 3, 0));
    udp_show_from(u, 3000);
    rv("connect 7002", do_connect(u, PEER4, UDP2_PORT));
    pname("peer", u, 1);
    rv("send", send(u, "two", 3, 0));
    udp_show_from(u, 3000);
}

static void sc_udp_connected_filters_others(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    int v = socket(AF_INET, SOCK_DGRAM, 0);
    /* v's datagrams to 7002 come back from 7002; u is connected to 7000. */
    do_bind(u, "0.0.0.0", 20301);
    do_connect(u, PEER4, CTL_PORT);
    struct sockaddr_storage ss;
    socklen_t len = mkaddr(PEER4, UDP2_PORT, &ss);
    sendto(v, "v", 1, 0, (void *)&ss, len);
    udp_show_from(v, 3000);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "udpto 20301 v4 stranger");
    int c = ctl(cmd);
    show_line("ctl", c);
    char buf[16];
    msleep(200);
    rv("connected socket sees stranger", recv(u, buf, sizeof buf, MSG_DONTWAIT));
}

static void sc_udp_refused_connected(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    rv("connect", do_connect(u, PEER4, CLOSED_PORT));
    rv("send", send(u, "x", 1, 0));
    pollrev(u, POLLIN, 3000);
    show_poll("poll", u, POLLIN | POLLOUT, 0);
    char buf[8];
    rv("recv", recv(u, buf, sizeof buf, MSG_DONTWAIT));
    rv("recv again", recv(u, buf, sizeof buf, MSG_DONTWAIT));
    rv("send again", send(u, "x", 1, 0));
    msleep(300);
    rv("send third", send(u, "x", 1, 0));
}

static void sc_udp_refused_so_error(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    do_connect(u, PEER4, CLOSED_PORT);
    send(u, "x", 1, 0);
    pollrev(u, POLLERR, 3000);
    show_soerr(u);
    show_soerr(u);
}

static void sc_udp_refused_v6(void) {
    int u = socket(AF_INET6, SOCK_DGRAM, 0);
    do_connect(u, PEER6, CLOSED_PORT);
    rv("send", send(u, "x", 1, 0));
    pollrev(u, POLLIN, 3000);
    show_poll("poll", u, POLLIN | POLLOUT, 0);
    char buf[8];
    rv("recv", recv(u, buf, sizeof buf, MSG_DONTWAIT));
}

static void sc_udp_refused_unconnected(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_storage ss;
    socklen_t len = mkaddr(PEER4, CLOSED_PORT, &ss);
    rv("sendto", sendto(u, "x", 1, 0, (void *)&ss, len));
    msleep(400);
    show_poll("poll", u, POLLIN | POLLOUT, 0);
    char buf[8];
    rv("recv", recv(u, buf, sizeof buf, MSG_DONTWAIT));
    show_soerr(u);
}

static void sc_udp_fionread_and_trunc(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    do_connect(u, PEER4, CTL_PORT);
    send(u, "abcdefgh", 8, 0);
    pollrev(u, POLLIN, 3000);
    msleep(50);
    send(u, "xyz", 3, 0);
    msleep(300);
    int v = -1;
    ioctl(u, FIONREAD, &v);
    out("FIONREAD (first datagram): %d\n", v);
    char buf[4];
    struct iovec io = {buf, 4};
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1};
    rv("recvmsg 4 MSG_TRUNC", recvmsg(u, &m, MSG_TRUNC));
    out("msg_flags MSG_TRUNC: %d data %.4s\n", !!(m.msg_flags & MSG_TRUNC), buf);
    rv("recv peek", recv(u, buf, 4, MSG_PEEK));
    rv("recv", recv(u, buf, 4, 0));
    rv("recv empty", recv(u, buf, 4, MSG_DONTWAIT));
}

static void sc_udp_empty_datagram(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    do_connect(u, PEER4, CTL_PORT);
    rv("send 0 bytes", send(u, "", 0, 0));
    show_poll("poll", u, POLLIN, 3000);
    char buf[4];
    rv("recv", recv(u, buf, sizeof buf, MSG_DONTWAIT));
    rv("recv again", recv(u, buf, sizeof buf, MSG_DONTWAIT));
}

static void sc_udp_sizes(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    do_connect(u, PEER4, CTL_PORT);
    static char buf[9000], rb[9000];
    int sizes[] = {1, 1200, 1392, 1393, 1500, 8000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int k = 0; k < sizes[i]; k++)
            buf[k] = pat((size_t)k + i);
        ssize_t w = send(u, buf, (size_t)sizes[i], 0);
        ssize_t r = -1;
        int e = 0;
        if (pollrev(u, POLLIN, 2000) & POLLIN) {
            r = recv(u, rb, sizeof rb, MSG_DONTWAIT);
            e = errno;
        }
        out("size %d: sent %zd echoed %zd%s%s intact %d\n", sizes[i], w, r, r < 0 && e ? " " : "",
            r < 0 && e ? en(e) : "", r == sizes[i] && memcmp(buf, rb, (size_t)r) == 0);
    }
}

static void sc_udp_sendmsg_iov_recvmsg_name(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_storage ss, from;
    socklen_t len = mkaddr(PEER4, CTL_PORT, &ss);
    struct iovec w[2] = {{"par", 3}, {"ts", 2}};
    struct msghdr m = {.msg_name = &ss, .msg_namelen = len, .msg_iov = w, .msg_iovlen = 2};
    rv("sendmsg", sendmsg(u, &m, 0));
    pollrev(u, POLLIN, 3000);
    char a[2], b[8] = {0};
    struct iovec r[2] = {{a, 2}, {b, 8}};
    struct msghdr rm = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = r, .msg_iovlen = 2};
    rv("recvmsg", recvmsg(u, &rm, MSG_DONTWAIT));
    char s[128];
    fmt_addr((void *)&from, rm.msg_namelen, s, sizeof s);
    out("from %s parts %.2s %.3s\n", s, a, b);
}

static void sc_udp_bound_receives_from_peer(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    rv("bind", do_bind(u, "0.0.0.0", 20302));
    int c = ctl("udpto 20302 v4 unsolicited");
    show_line("ctl", c);
    udp_show_from(u, 3000);
    int u6 = socket(AF_INET6, SOCK_DGRAM, 0);
    rv("bind v6", do_bind(u6, "::", 20303));
    int c6 = ctl("udpto 20303 v6 unsolicited6");
    show_line("ctl", c6);
    udp_show_from(u6, 3000);
}

static void sc_udp_bind_eaddrinuse(void) {
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    rv("bind a", do_bind(a, "0.0.0.0", 20304));
    rv("bind b", do_bind(b, "0.0.0.0", 20304));
    int c = socket(AF_INET, SOCK_DGRAM, 0), d = socket(AF_INET, SOCK_DGRAM, 0);
    seti(c, SOL_SOCKET, SO_REUSEADDR, 1);
    seti(d, SOL_SOCKET, SO_REUSEADDR, 1);
    rv("bind c reuse", do_bind(c, "0.0.0.0", 20305));
    rv("bind d reuse", do_bind(d, "0.0.0.0", 20305));
}

static void sc_udp_dup_and_fork(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    do_connect(u, PEER4, CTL_PORT);
    int d = dup(u);
    rv("send via dup", send(d, "dup", 3, 0));
    udp_show_from(u, 3000);
    pid_t p = fork();
    if (p == 0) {
        send(u, "child", 5, 0);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    udp_show_from(d, 3000);
}

static void sc_udp_getsockopts(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    do_connect(u, PEER4, CTL_PORT);
    show_opt("SO_TYPE", u, SOL_SOCKET, SO_TYPE);
    show_opt("SO_PROTOCOL", u, SOL_SOCKET, SO_PROTOCOL);
    rv("set SO_RCVBUF 65536", seti(u, SOL_SOCKET, SO_RCVBUF, 65536));
    show_opt("SO_RCVBUF", u, SOL_SOCKET, SO_RCVBUF);
    rv("set IP_TOS", seti(u, IPPROTO_IP, IP_TOS, 0x10));
    show_opt("IP_TOS", u, IPPROTO_IP, IP_TOS);
    rv("set SO_BROADCAST", seti(u, SOL_SOCKET, SO_BROADCAST, 1));
    show_opt("SO_BROADCAST", u, SOL_SOCKET, SO_BROADCAST);
    rv("set IP_RECVERR", seti(u, IPPROTO_IP, IP_RECVERR, 1));
    show_opt("IP_RECVERR", u, IPPROTO_IP, IP_RECVERR);
}

static void sc_udp_epoll_edge(void) {
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    do_connect(u, PEER4, CTL_PORT);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
    epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev);
    show_epoll("idle", ep, 100);
    send(u, "a", 1, 0);
    show_epoll("datagram", ep, 3000);
    show_epoll("again", ep, 100);
}

/* ICMP echo over a ping socket: type, code, seq and payload (ids are the
 * kernel's socket "port", not printed). */
static void ping(const char *ip, int connect_first) {
    int v6 = fam(ip) == AF_INET6;
    int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
    if (s < 0) {
        out("socket: -1 %s\n", en(errno));
        return;
    }
    struct sockaddr_storage ss;
    socklen_t len = mkaddr(ip, 0, &ss);
    unsigned char pkt[64] = {0};
    pkt[0] = v6 ? 128 : 8;
    pkt[6] = 0;
    pkt[7] = 7; /* seq 7 */
    memcpy(pkt + 8, "wrapguard-ping", 14);
    ssize_t w;
    if (connect_first) {
        rv("connect", connect(s, (void *)&ss, len));
        pname("peer", s, 1);
        w = send(s, pkt, 22, 0);
    } else {
        w = sendto(s, pkt, 22, 0, (void *)&ss, len);
    }
    rv("send", w);
    unsigned char rb[128];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    if (!(pollrev(s, POLLIN, 2000) & POLLIN)) {
        out("reply: timeout\n");
        return;
    }
    ssize_t r = recvfrom(s, rb, sizeof rb, MSG_DONTWAIT, (void *)&from, &fl);
    if (r < 0) {
        out("recvfrom: -1 %s\n", en(errno));
        return;
    }
    char a[128];
    ((struct sockaddr_in *)&from)->sin_port = 0;
    fmt_addr((void *)&from, fl, a, sizeof a);
    out("reply: %zd bytes type %d code %d seq %d payload same %d from %s\n", r, rb[0], rb[1],
        rb[6] << 8 | rb[7], r == 22 && memcmp(rb + 8, pkt + 8, 14) == 0, a);
}

static void sc_icmp_ping_v4(void) { ping(PEER4, 0); }
static void sc_icmp_ping_v6(void) { ping(PEER6, 0); }
static void sc_icmp_ping_connected(void) { ping(PEER4, 1); }
static void sc_icmp_ping_blackhole(void) { ping(BLACK4, 0); }
