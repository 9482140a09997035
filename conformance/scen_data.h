/* Scenarios: recv flags, FIONREAD/SIOCOUTQ, TCP_INFO, socket options. */

static void sc_msg_peek(void) {
    int fd = ctl("send 10");
    wait_inq(fd, 10);
    char buf[16] = {0};
    rv("peek 4", recv(fd, buf, 4, MSG_PEEK));
    out("peeked: %.4s\n", buf);
    rv("recv 4", recv(fd, buf, 4, 0));
    out("read: %.4s\n", buf);
    rv("recv rest", recv(fd, buf, sizeof buf, 0));
    out("rest: %.6s\n", buf);
}

static void sc_msg_peek_dontwait_empty(void) {
    int fd = ctl("echo");
    char buf[4];
    rv("peek", recv(fd, buf, 4, MSG_PEEK | MSG_DONTWAIT));
}

static void sc_msg_waitall(void) {
    int fd = ctl("slowsend 60000 7000 30");
    static char buf[60000];
    long n = recv(fd, buf, sizeof buf, MSG_WAITALL);
    out("recv WAITALL: %ld pattern %d\n", n, n > 0 && check_pat(buf, (size_t)n, 0));
}

static void sc_msg_waitall_eof(void) {
    int fd = ctl("send 10");
    char buf[100];
    rv("recv WAITALL 100", recv(fd, buf, sizeof buf, MSG_WAITALL));
    rv("recv again", recv(fd, buf, sizeof buf, MSG_WAITALL));
}

static void sc_msg_dontwait(void) {
    int fd = ctl("echo");
    char buf[8];
    rv("recv empty", recv(fd, buf, sizeof buf, MSG_DONTWAIT));
    send_all(fd, "abc", 3);
    pollrev(fd, POLLIN, 3000);
    wait_inq(fd, 3);
    rv("recv data", recv(fd, buf, sizeof buf, MSG_DONTWAIT));
    out("O_NONBLOCK still off: %d\n", !(fcntl(fd, F_GETFL) & O_NONBLOCK));
}

static void sc_nonblock_read_eagain(void) {
    int fd = ctl("echo");
    set_nonblock(fd, 1);
    char buf[8];
    rv("read", read(fd, buf, sizeof buf));
    rv("recv", recv(fd, buf, sizeof buf, 0));
}

static void sc_nonblock_send_fills(void) {
    int fd = ctl("hold");
    set_nonblock(fd, 1);
    static char buf[65536];
    long total = 0;
    int eagain = 0;
    long end = now_ms() + 5000;
    while (now_ms() < end) {
        ssize_t w = send(fd, buf, sizeof buf, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN) {
            /* The sender may drain into the network; settle, then retry once. */
            if (pollrev(fd, POLLOUT, 300) & POLLOUT)
                continue;
            eagain = 1;
            break;
        }
        if (w < 0) {
            out("send: -1 %s\n", en(errno));
            break;
        }
        total += w;
    }
    out("EAGAIN reached: %d, sent > 64 KiB: %d\n", eagain, total > 65536);
    show_poll("poll", fd, POLLIN | POLLOUT, 0);
}

static void sc_msg_trunc_tcp(void) {
    int fd = ctl("send 10");
    wait_inq(fd, 10);
    rv("recv MSG_TRUNC 4", recv(fd, NULL, 4, MSG_TRUNC));
    char buf[16] = {0};
    rv("recv", recv(fd, buf, sizeof buf, 0));
    out("data: %.6s\n", buf);
}

static void sc_readv_writev(void) {
    int fd = ctl("echo");
    struct iovec w[3] = {{"ab", 2}, {"cde", 3}, {"f", 1}};
    rv("writev", writev(fd, w, 3));
    wait_inq(fd, 6);
    char a[2], b[4];
    struct iovec r[2] = {{a, 2}, {b, 4}};
    rv("readv", readv(fd, r, 2));
    out("parts: %.2s %.4s\n", a, b);
}

static void sc_sendmsg_recvmsg_tcp(void) {
    int fd = ctl("echo");
    struct iovec w[2] = {{"hello ", 6}, {"world", 5}};
    struct msghdr m = {.msg_iov = w, .msg_iovlen = 2};
    rv("sendmsg", sendmsg(fd, &m, MSG_NOSIGNAL));
    wait_inq(fd, 11);
    char buf[32] = {0};
    struct iovec r = {buf, sizeof buf};
    struct sockaddr_storage ss;
    struct msghdr rm = {.msg_name = &ss, .msg_namelen = sizeof ss, .msg_iov = &r, .msg_iovlen = 1};
    rv("recvmsg", recvmsg(fd, &rm, 0));
    out("data: %s namelen %u flags %d\n", buf, rm.msg_namelen, rm.msg_flags);
}

static void sc_sendto_connected_tcp_with_addr(void) {
    int fd = ctl("echo");
    struct sockaddr_storage ss;
    socklen_t len = mkaddr(PEER4, CLOSED_PORT, &ss);
    rv("sendto other addr", sendto(fd, "abc", 3, MSG_NOSIGNAL, (void *)&ss, len));
    char buf[8];
    out("echo: %ld\n", read_n(fd, buf, 3, 2000));
}

static void sc_recvfrom_tcp_addr(void) {
    int fd = ctl("echo");
    send_all(fd, "abc", 3);
    wait_inq(fd, 3);
    char buf[8];
    struct sockaddr_storage ss;
    memset(&ss, 0xa5, sizeof ss);
    socklen_t len = sizeof ss;
    rv("recvfrom", recvfrom(fd, buf, sizeof buf, 0, (void *)&ss, &len));
    out("addrlen: %u\n", len);
}

static void sc_bulk_echo_order(void) {
    int fd = ctl("echo");
    size_t n = 400000, sent = 0, got = 0;
    static char buf[16384], rb[16384];
    int ok = 1;
    set_nonblock(fd, 1);
    long end = now_ms() + 20000;
    while (got < n && now_ms() < end) {
        struct pollfd p = {fd, POLLIN | (sent < n ? POLLOUT : 0), 0};
        poll(&p, 1, 1000);
        if ((p.revents & POLLOUT) && sent < n) {
            size_t k = n - sent < sizeof buf ? n - sent : sizeof buf;
            for (size_t i = 0; i < k; i++)
                buf[i] = pat(sent + i);
            ssize_t w = send(fd, buf, k, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        if (p.revents & POLLIN) {
            ssize_t r = recv(fd, rb, sizeof rb, 0);
            if (r <= 0)
                break;
            if (!check_pat(rb, (size_t)r, got))
                ok = 0;
            got += (size_t)r;
        }
    }
    out("echoed %zu of %zu in order: %d\n", got, n, ok);
}

static void sc_fionread_siocoutq(void) {
    int fd = ctl("echo");
    int v = -1;
    rv("ioctl FIONREAD idle", ioctl(fd, FIONREAD, &v));
    out("FIONREAD: %d\n", v);
    send_all(fd, "0123456789", 10);
    out("SIOCOUTQ after ack: %d\n", wait_outq0(fd));
    out("FIONREAD after echo: %d\n", wait_inq(fd, 10));
    rv("ioctl SIOCINQ", ioctl(fd, SIOCINQ, &v));
    out("SIOCINQ: %d\n", v);
    rv("ioctl SIOCOUTQNSD", ioctl(fd, SIOCOUTQNSD, &v));
    out("SIOCOUTQNSD: %d\n", v);
}

static void sc_fionread_listen_and_fresh(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int v = -1;
    rv("FIONREAD fresh", ioctl(l, FIONREAD, &v));
    do_bind(l, "0.0.0.0", 20102);
    listen(l, 4);
    rv("FIONREAD listen", ioctl(l, FIONREAD, &v));
    rv("SIOCOUTQ listen", ioctl(l, SIOCOUTQ, &v));
}

static void sc_tcp_info_states(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    out("fresh: %s\n", state_name(tcp_state(fd)));
    do_connect(fd, PEER4, CTL_PORT);
    send_all(fd, "echo\n", 5);
    out("connected: %s\n", state_name(tcp_state(fd)));
    struct tcp_info ti;
    socklen_t l = sizeof ti;
    memset(&ti, 0, sizeof ti);
    send_all(fd, "abc", 3);
    char buf[4];
    read_n(fd, buf, 3, 2000);
    getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l);
    out("info len >= 104: %d\n", l >= 104);
    out("rtt > 0: %d, snd_mss > 0: %d, rcv_mss > 0: %d\n", ti.tcpi_rtt > 0, ti.tcpi_snd_mss > 0,
        ti.tcpi_rcv_mss > 0);
    out("ca_state: %d, retransmits: %d, unacked: %u\n", ti.tcpi_ca_state, ti.tcpi_retransmits,
        ti.tcpi_unacked);
    shutdown(fd, SHUT_WR);
    show_state("after shutdown, peer closes", fd, TCP_CLOSE);
    int l2 = socket(AF_INET, SOCK_STREAM, 0);
    do_bind(l2, "0.0.0.0", 20103);
    listen(l2, 1);
    out("listener: %s\n", state_name(tcp_state(l2)));
}

static void sc_tcp_info_close_wait(void) {
    int fd = ctl("close");
    show_state("after peer FIN", fd, TCP_CLOSE_WAIT);
    shutdown(fd, SHUT_WR);
    show_state("after our FIN", fd, TCP_CLOSE);
}

static void sc_tcp_info_fin_wait2(void) {
    int fd = ctl("linger 1500");
    shutdown(fd, SHUT_WR);
    show_state("after our FIN, peer open", fd, TCP_FIN_WAIT2);
    show_poll("poll", fd, ALLP, 0);
    show_state("after the peer's FIN", fd, TCP_CLOSE);
}

static void sc_tcp_maxseg_connected(void) {
    int fd = ctl("echo");
    show_opt("TCP_MAXSEG", fd, IPPROTO_TCP, TCP_MAXSEG);
    struct tcp_info ti;
    socklen_t l = sizeof ti;
    getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l);
    out("tcpi_snd_mss: %u\n", ti.tcpi_snd_mss);
}

static void sc_tcp_maxseg_unconnected(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    show_opt("TCP_MAXSEG", fd, IPPROTO_TCP, TCP_MAXSEG);
    rv("set 1000", seti(fd, IPPROTO_TCP, TCP_MAXSEG, 1000));
    show_opt("TCP_MAXSEG after set", fd, IPPROTO_TCP, TCP_MAXSEG);
    rv("set 10", seti(fd, IPPROTO_TCP, TCP_MAXSEG, 10));
}

static void bufs(int fd, const char *label) {
    int s = geti(fd, SOL_SOCKET, SO_SNDBUF), r = geti(fd, SOL_SOCKET, SO_RCVBUF);
    out("%s: SO_SNDBUF > 0: %d, SO_RCVBUF > 0: %d\n", label, s > 0, r > 0);
}

static void sc_buffer_sizes_default(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bufs(fd, "fresh");
    do_connect(fd, PEER4, CTL_PORT);
    bufs(fd, "connected");
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    bufs(u, "udp");
}

static void sc_buffer_sizes_set_doubles(void) {
    int fd = ctl("echo");
    rv("set SO_SNDBUF 65536", seti(fd, SOL_SOCKET, SO_SNDBUF, 65536));
    show_opt("SO_SNDBUF", fd, SOL_SOCKET, SO_SNDBUF);
    rv("set SO_RCVBUF 65536", seti(fd, SOL_SOCKET, SO_RCVBUF, 65536));
    show_opt("SO_RCVBUF", fd, SOL_SOCKET, SO_RCVBUF);
    rv("set SO_SNDBUF 1", seti(fd, SOL_SOCKET, SO_SNDBUF, 1));
    show_opt("SO_SNDBUF min", fd, SOL_SOCKET, SO_SNDBUF);
    rv("set SO_RCVBUF 1", seti(fd, SOL_SOCKET, SO_RCVBUF, 1));
    show_opt("SO_RCVBUF min", fd, SOL_SOCKET, SO_RCVBUF);
}

static void sc_buffer_set_before_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    seti(fd, SOL_SOCKET, SO_SNDBUF, 32768);
    seti(fd, SOL_SOCKET, SO_RCVBUF, 32768);
    rv("connect", do_connect(fd, PEER4, CTL_PORT));
    show_opt("SO_SNDBUF", fd, SOL_SOCKET, SO_SNDBUF);
    show_opt("SO_RCVBUF", fd, SOL_SOCKET, SO_RCVBUF);
    send_all(fd, "echo\nabc", 8);
    char buf[4];
    out("echo: %ld\n", read_n(fd, buf, 3, 2000));
}

static void sc_nodelay_cork(void) {
    int fd = ctl("echo");
    show_opt("TCP_NODELAY", fd, IPPROTO_TCP, TCP_NODELAY);
    rv("set TCP_NODELAY", seti(fd, IPPROTO_TCP, TCP_NODELAY, 1));
    show_opt("TCP_NODELAY", fd, IPPROTO_TCP, TCP_NODELAY);
    show_opt("TCP_CORK", fd, IPPROTO_TCP, TCP_CORK);
    rv("set TCP_CORK", seti(fd, IPPROTO_TCP, TCP_CORK, 1));
    show_opt("TCP_CORK", fd, IPPROTO_TCP, TCP_CORK);
    send_all(fd, "ab", 2);
    send_all(fd, "cd", 2);
    rv("unset TCP_CORK", seti(fd, IPPROTO_TCP, TCP_CORK, 0));
    char buf[8];
    out("echo: %ld\n", read_n(fd, buf, 4, 2000));
}

static void sc_nodelay_before_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    seti(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    seti(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    seti(fd, IPPROTO_TCP, TCP_KEEPIDLE, 77);
    do_connect(fd, PEER4, CTL_PORT);
    show_opt("TCP_NODELAY", fd, IPPROTO_TCP, TCP_NODELAY);
    show_opt("SO_KEEPALIVE", fd, SOL_SOCKET, SO_KEEPALIVE);
    show_opt("TCP_KEEPIDLE", fd, IPPROTO_TCP, TCP_KEEPIDLE);
}

static void sc_keepalive_options(void) {
    int fd = ctl("echo");
    show_opt("SO_KEEPALIVE", fd, SOL_SOCKET, SO_KEEPALIVE);
    rv("set SO_KEEPALIVE", seti(fd, SOL_SOCKET, SO_KEEPALIVE, 1));
    show_opt("SO_KEEPALIVE", fd, SOL_SOCKET, SO_KEEPALIVE);
    rv("set TCP_KEEPIDLE", seti(fd, IPPROTO_TCP, TCP_KEEPIDLE, 30));
    rv("set TCP_KEEPINTVL", seti(fd, IPPROTO_TCP, TCP_KEEPINTVL, 5));
    rv("set TCP_KEEPCNT", seti(fd, IPPROTO_TCP, TCP_KEEPCNT, 3));
    show_opt("TCP_KEEPIDLE", fd, IPPROTO_TCP, TCP_KEEPIDLE);
    show_opt("TCP_KEEPINTVL", fd, IPPROTO_TCP, TCP_KEEPINTVL);
    show_opt("TCP_KEEPCNT", fd, IPPROTO_TCP, TCP_KEEPCNT);
    rv("set TCP_USER_TIMEOUT", seti(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 5000));
    show_opt("TCP_USER_TIMEOUT", fd, IPPROTO_TCP, TCP_USER_TIMEOUT);
}

static void sc_misc_sockopts(void) {
    int fd = ctl("echo");
    show_opt("SO_REUSEADDR", fd, SOL_SOCKET, SO_REUSEADDR);
    rv("set IP_TOS", seti(fd, IPPROTO_IP, IP_TOS, 0x10));
    show_opt("IP_TOS", fd, IPPROTO_IP, IP_TOS);
    show_opt("IP_TTL", fd, IPPROTO_IP, IP_TTL);
    rv("set SO_PRIORITY", seti(fd, SOL_SOCKET, SO_PRIORITY, 3));
    show_opt("SO_PRIORITY", fd, SOL_SOCKET, SO_PRIORITY);
    show_opt("SO_OOBINLINE", fd, SOL_SOCKET, SO_OOBINLINE);
    show_opt("TCP_QUICKACK", fd, IPPROTO_TCP, TCP_QUICKACK);
    char cc[32] = {0};
    socklen_t l = sizeof cc;
    rv("TCP_CONGESTION", getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &l));
    out("congestion name nonempty: %d\n", cc[0] != 0);
}

static void sc_ipv6_sockopts(void) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    show_opt("IPV6_V6ONLY", fd, IPPROTO_IPV6, IPV6_V6ONLY);
    do_connect(fd, PEER6, CTL_PORT);
    rv("set IPV6_TCLASS", seti(fd, IPPROTO_IPV6, IPV6_TCLASS, 0x20));
    show_opt("IPV6_TCLASS", fd, IPPROTO_IPV6, IPV6_TCLASS);
    show_opt("IPV6_V6ONLY connected", fd, IPPROTO_IPV6, IPV6_V6ONLY);
    show_opt("IPV6_UNICAST_HOPS", fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS);
}

static void sc_so_rcvtimeo(void) {
    int fd = ctl("echo");
    struct timeval tv = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char c;
    long t0 = now_ms();
    rv("recv", recv(fd, &c, 1, 0));
    long dt = now_ms() - t0;
    out("waited about the timeout: %d\n", dt >= 150 && dt < 2000);
}
