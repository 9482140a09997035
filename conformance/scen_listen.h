/* Scenarios: bind, listen, accept (the peer connects to us). */

static int listener(const char *ip, int port, int backlog) {
    int l = socket(fam(ip), SOCK_STREAM, 0);
    seti(l, SOL_SOCKET, SO_REUSEADDR, 1);
    must("bind", do_bind(l, ip, port));
    must("listen", listen(l, backlog));
    return l;
}

static void sc_accept4_flags(void) {
    int l = listener("0.0.0.0", 20201, 8);
    int c = ctl("connect 20201 v4 1");
    show_poll("listener poll", l, POLLIN, 3000);
    int a = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    rv("accept4", a >= 0 ? 0 : -1);
    out("O_NONBLOCK: %d FD_CLOEXEC: %d\n", !!(fcntl(a, F_GETFL) & O_NONBLOCK),
        !!(fcntl(a, F_GETFD) & FD_CLOEXEC));
    pname("peer", a, 1);
    pname("local", a, 0);
    show_line("read", a);
    show_line("ctl", c);
}

static void sc_accept_plain_flags(void) {
    int l = listener("0.0.0.0", 20202, 8);
    set_nonblock(l, 1);
    int c = ctl("connect 20202 v4 1");
    pollrev(l, POLLIN, 3000);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int a = accept(l, (void *)&ss, &len);
    rv("accept", a >= 0 ? 0 : -1);
    char buf[128];
    fmt_addr((void *)&ss, len, buf, sizeof buf);
    out("accept addr: %s len %u\n", buf, len);
    out("O_NONBLOCK: %d FD_CLOEXEC: %d\n", !!(fcntl(a, F_GETFL) & O_NONBLOCK),
        !!(fcntl(a, F_GETFD) & FD_CLOEXEC));
    show_line("read", a);
    show_line("ctl", c);
}

static void sc_accept_nonblock_eagain(void) {
    int l = listener("0.0.0.0", 20203, 8);
    set_nonblock(l, 1);
    rv("accept", accept(l, NULL, NULL));
    int l2 = listener("0.0.0.0", 20213, 8);
    struct timeval tv = {0, 100000};
    setsockopt(l2, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    rv("accept with SO_RCVTIMEO", accept(l2, NULL, NULL));
    show_poll("listener poll", l, ALLP, 0);
}

static void sc_accept_v6_dual_stack(void) {
    int l = socket(AF_INET6, SOCK_STREAM, 0);
    seti(l, SOL_SOCKET, SO_REUSEADDR, 1);
    seti(l, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    must("bind", do_bind(l, "::", 20204));
    must("listen", listen(l, 8));
    int c4 = ctl("connect 20204 v4 1");
    int a = accept(l, NULL, NULL);
    pname("v4 peer", a, 1);
    pname("v4 local", a, 0);
    show_line("v4 read", a);
    show_line("ctl", c4);
    int c6 = ctl("connect 20204 v6 1");
    int b = accept(l, NULL, NULL);
    pname("v6 peer", b, 1);
    pname("v6 local", b, 0);
    show_line("v6 read", b);
    show_line("ctl", c6);
}

static void sc_accept_v6only(void) {
    int l = socket(AF_INET6, SOCK_STREAM, 0);
    seti(l, SOL_SOCKET, SO_REUSEADDR, 1);
    seti(l, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    must("bind", do_bind(l, "::", 20205));
    must("listen", listen(l, 8));
    set_nonblock(l, 1);
    int c4 = ctl("connect 20205 v4 1");
    show_line("ctl v4", c4);
    rv("accept", accept(l, NULL, NULL));
}

static void sc_accept_bound_tunnel_addr(void) {
    int l = listener(OUR4, 20206, 8);
    pname("listener", l, 0);
    int c = ctl("connect 20206 v4 1");
    int a = accept(l, NULL, NULL);
    pname("local", a, 0);
    show_line("read", a);
    show_line("ctl", c);
}

static void sc_accept_peer_data_and_close(void) {
    int l = listener("0.0.0.0", 20207, 8);
    int c = ctl("connect 20207 v4 1");
    int a = accept(l, NULL, NULL);
    show_line("read", a);
    show_line("ctl", c);
    close(c);
    pollrev(a, POLLRDHUP, 3000);
    show_poll("after peer close", a, ALLP, 0);
    char ch;
    rv("recv", recv(a, &ch, 1, 0));
    rv("send", send(a, "back", 4, MSG_NOSIGNAL));
}

static void sc_listen_backlog(void) {
    int l = listener("0.0.0.0", 20208, 1);
    int c = ctl("connect 20208 v4 4");
    show_line("ctl", c);
    set_nonblock(l, 1);
    int n = 0;
    while (accept(l, NULL, NULL) >= 0)
        n++;
    out("accepted: %d\n", n);
}

static void sc_listen_twice_and_unbound(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    rv("listen unbound", listen(l, 4));
    pname("auto-bound", l, 0);
    rv("listen again", listen(l, 16));
    show_opt("SO_ACCEPTCONN", l, SOL_SOCKET, SO_ACCEPTCONN);
    rv("connect on listener", do_connect(l, PEER4, CTL_PORT));
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    rv("listen udp", listen(u, 4));
}

static void sc_listen_ephemeral_getsockname(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    rv("bind port 0", do_bind(l, "0.0.0.0", 0));
    pname("bound", l, 0);
    rv("listen", listen(l, 4));
    pname("listening", l, 0);
    int l6 = socket(AF_INET6, SOCK_STREAM, 0);
    rv("bind [::]:0", do_bind(l6, "::", 0));
    pname("bound v6", l6, 0);
}

static void sc_bind_eaddrinuse(void) {
    int a = socket(AF_INET, SOCK_STREAM, 0);
    rv("bind a", do_bind(a, "0.0.0.0", 20209));
    int b = socket(AF_INET, SOCK_STREAM, 0);
    rv("bind b same port", do_bind(b, "0.0.0.0", 20209));
    rv("bind b tunnel addr same port", do_bind(b, OUR4, 20209));
    rv("listen a", listen(a, 4));
    int c = socket(AF_INET, SOCK_STREAM, 0);
    seti(c, SOL_SOCKET, SO_REUSEADDR, 1);
    rv("bind c with SO_REUSEADDR, a listening", do_bind(c, "0.0.0.0", 20209));
}

static void sc_bind_reuseaddr_both(void) {
    int a = socket(AF_INET, SOCK_STREAM, 0), b = socket(AF_INET, SOCK_STREAM, 0);
    seti(a, SOL_SOCKET, SO_REUSEADDR, 1);
    seti(b, SOL_SOCKET, SO_REUSEADDR, 1);
    rv("bind a", do_bind(a, "0.0.0.0", 20210));
    rv("bind b", do_bind(b, "0.0.0.0", 20210));
    rv("listen a", listen(a, 4));
    rv("listen b", listen(b, 4));
    int c = socket(AF_INET, SOCK_STREAM, 0), d = socket(AF_INET, SOCK_STREAM, 0);
    seti(c, SOL_SOCKET, SO_REUSEPORT, 1);
    seti(d, SOL_SOCKET, SO_REUSEPORT, 1);
    rv("bind c SO_REUSEPORT", do_bind(c, "0.0.0.0", 20211));
    rv("bind d SO_REUSEPORT", do_bind(d, "0.0.0.0", 20211));
    rv("listen c", listen(c, 4));
    rv("listen d", listen(d, 4));
}

static void sc_bind_after_accepted_close(void) {
    int l = listener("0.0.0.0", 20212, 8);
    int c = ctl("connect 20212 v4 1");
    int a = accept(l, NULL, NULL);
    show_line("read", a);
    show_line("ctl", c);
    /* We close first: TIME_WAIT is on our side. */
    close(a);
    close(c);
    msleep(300);
    close(l);
    int b = socket(AF_INET, SOCK_STREAM, 0);
    rv("rebind without SO_REUSEADDR", do_bind(b, "0.0.0.0", 20212));
    int r = socket(AF_INET, SOCK_STREAM, 0);
    seti(r, SOL_SOCKET, SO_REUSEADDR, 1);
    rv("rebind with SO_REUSEADDR", do_bind(r, "0.0.0.0", 20212));
}

static void sc_bind_rules(void) {
    int a = socket(AF_INET, SOCK_STREAM, 0);
    rv("bind tunnel addr", do_bind(a, OUR4, 0));
    pname("bound", a, 0);
    rv("bind twice", do_bind(a, OUR4, 0));
    int b = socket(AF_INET, SOCK_STREAM, 0);
    rv("bind peer addr", do_bind(b, PEER4, 0));
    int c = socket(AF_INET6, SOCK_STREAM, 0);
    rv("bind v6 tunnel addr", do_bind(c, OUR6, 0));
    pname("bound v6", c, 0);
    int d = socket(AF_INET6, SOCK_STREAM, 0);
    rv("bind v6 peer addr", do_bind(d, PEER6, 0));
    int e = socket(AF_INET, SOCK_STREAM, 0);
    rv("bind wrong family", do_bind(e, OUR6, 0));
}
