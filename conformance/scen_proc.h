/* Scenarios: dup, fork, exec, threads. */

static char self_exe[4096];

static int echo_ok(int fd, const char *msg) {
    size_t n = strlen(msg);
    char buf[128];
    if (send(fd, msg, n, MSG_NOSIGNAL) != (ssize_t)n)
        return 0;
    return read_n(fd, buf, n, 3000) == (long)n && memcmp(buf, msg, n) == 0;
}

static void sc_dup_shares_socket(void) {
    int fd = ctl("echo");
    int d = dup(fd);
    out("dup echo: %d\n", echo_ok(d, "via-dup"));
    out("orig echo: %d\n", echo_ok(fd, "via-orig"));
    rv("close orig", close(fd));
    out("dup echo after close: %d\n", echo_ok(d, "again"));
    pname("dup peer", d, 1);
    int d3 = fcntl(d, F_DUPFD_CLOEXEC, 100);
    out("F_DUPFD_CLOEXEC >= 100: %d cloexec %d\n", d3 >= 100, !!(fcntl(d3, F_GETFD) & FD_CLOEXEC));
    out("F_DUPFD_CLOEXEC echo: %d\n", echo_ok(d3, "three"));
}

static void sc_dup2_onto_socket(void) {
    int a = ctl("echo");
    int b = ctl("whoami");
    char buf[128];
    read_n(b, buf, sizeof buf, 500);
    rv("dup2", dup2(a, b) == b ? 0 : -1);
    out("echo via replaced fd: %d\n", echo_ok(b, "dup2"));
    pname("peer", b, 1);
    int f = open("/dev/null", O_RDONLY);
    rv("dup2 file over socket", dup2(f, a) == a ? 0 : -1);
    show_opt("SO_TYPE on the file", a, SOL_SOCKET, SO_TYPE);
}

static void sc_fork_child_uses_socket(void) {
    int fd = ctl("echo");
    pid_t p = fork();
    if (p == 0) {
        send(fd, "from-child", 10, MSG_NOSIGNAL);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    char buf[16];
    long n = read_n(fd, buf, 10, 3000);
    out("parent read child's echo: %d\n", n == 10 && memcmp(buf, "from-child", 10) == 0);
    out("parent echo: %d\n", echo_ok(fd, "parent"));
}

static void sc_fork_child_closes(void) {
    int fd = ctl("echo");
    pid_t p = fork();
    if (p == 0) {
        close(fd);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    out("parent echo after child close: %d\n", echo_ok(fd, "still"));
}

static void sc_fork_child_connects(void) {
    pid_t p = fork();
    if (p == 0) {
        int fd = ctl("echo");
        _exit(echo_ok(fd, "child-own") ? 0 : 1);
    }
    int st;
    waitpid(p, &st, 0);
    out("child's own connection: %d\n", WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void sc_fork_shutdown_shared(void) {
    int fd = ctl("report");
    pid_t p = fork();
    if (p == 0) {
        send(fd, "abcde", 5, MSG_NOSIGNAL);
        shutdown(fd, SHUT_WR);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    show_line("server", fd);
}

/* `scen exec-helper FD`: what an exec'd program sees of an inherited fd. */
static int exec_helper(int fd) {
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0) {
        out("helper: fcntl: -1 %s\n", en(errno));
        return 0;
    }
    out("helper: type %d\n", geti(fd, SOL_SOCKET, SO_TYPE));
    pname("helper: peer", fd, 1);
    out("helper: echo %d\n", echo_ok(fd, "exec"));
    return 0;
}

static void run_helper(int fd) {
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        char a[16];
        snprintf(a, sizeof a, "%d", fd);
        execl(self_exe, self_exe, "exec-helper", a, (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    out("helper exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void sc_exec_inherits_socket(void) {
    int fd = ctl("echo");
    run_helper(fd);
    out("parent echo after: %d\n", echo_ok(fd, "after"));
}

static void sc_exec_cloexec_socket(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    do_connect(fd, PEER4, CTL_PORT);
    send_all(fd, "echo\n", 5);
    out("FD_CLOEXEC: %d\n", !!(fcntl(fd, F_GETFD) & FD_CLOEXEC));
    run_helper(fd);
}

static void sc_exec_inherits_listener(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    seti(l, SOL_SOCKET, SO_REUSEADDR, 1);
    do_bind(l, "0.0.0.0", 20104);
    listen(l, 4);
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        char a[16];
        snprintf(a, sizeof a, "%d", l);
        execl(self_exe, self_exe, "exec-accept", a, (char *)NULL);
        _exit(127);
    }
    msleep(300);
    int c = ctl("connect 20104 v4 1");
    int st;
    waitpid(p, &st, 0);
    out("helper exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    show_line("ctl", c);
}

static int exec_accept(int l) {
    int c = accept(l, NULL, NULL);
    if (c < 0) {
        out("helper: accept: -1 %s\n", en(errno));
        return 1;
    }
    show_line("helper: read", c);
    return 0;
}

struct race {
    volatile int stop;
    int sock_errors, file_errors, enotsock, iters;
};

static void *race_sockets(void *arg) {
    struct race *r = arg;
    for (int i = 0; i < 150 && !r->stop; i++) {
        int u = socket(AF_INET, i % 2 ? SOCK_DGRAM : SOCK_STREAM, 0);
        if (u < 0) {
            r->sock_errors++;
            continue;
        }
        if (i % 2) {
            if (do_connect(u, PEER4, CTL_PORT) < 0)
                r->sock_errors++;
        } else if (i % 10 == 0) {
            if (do_connect(u, PEER4, CTL_PORT) < 0)
                r->sock_errors++;
        }
        close(u);
    }
    r->stop = 1;
    return NULL;
}

static void sc_thread_close_vs_file_write(void) {
    struct race r = {0};
    pthread_t t;
    pthread_create(&t, NULL, race_sockets, &r);
    char path[64];
    snprintf(path, sizeof path, "/tmp/scen-race-%d", (int)getpid());
    while (!r.stop) {
        int f = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (f < 0) {
            r.file_errors++;
            continue;
        }
        if (write(f, "x", 1) != 1) {
            r.file_errors++;
            if (errno == ENOTSOCK)
                r.enotsock++;
        }
        struct stat sb;
        if (fstat(f, &sb) < 0 || !S_ISREG(sb.st_mode))
            r.file_errors++;
        close(f);
        r.iters++;
    }
    pthread_join(t, NULL);
    unlink(path);
    out("socket errors: %d, file errors: %d, ENOTSOCK: %d, file writes ran: %d\n", r.sock_errors,
        r.file_errors, r.enotsock, r.iters > 0);
}

static void *blocked_recv(void *arg) {
    int fd = (int)(intptr_t)arg;
    char c;
    ssize_t r = recv(fd, &c, 1, 0);
    return (void *)(intptr_t)(r < 0 ? -errno : r);
}

static void sc_thread_shutdown_wakes_recv(void) {
    int fd = ctl("echo");
    pthread_t t;
    pthread_create(&t, NULL, blocked_recv, (void *)(intptr_t)fd);
    msleep(300);
    rv("shutdown SHUT_RDWR", shutdown(fd, SHUT_RDWR));
    void *res;
    pthread_join(t, &res);
    long v = (long)(intptr_t)res;
    if (v < 0)
        out("blocked recv: -1 %s\n", en((int)-v));
    else
        out("blocked recv: %ld\n", v);
}

static void *thread_echo(void *arg) {
    (void)arg;
    int fd = ctl("echo");
    intptr_t ok = echo_ok(fd, "threaded");
    close(fd);
    return (void *)ok;
}

static void sc_threads_parallel_connects(void) {
    pthread_t t[6];
    for (int i = 0; i < 6; i++)
        pthread_create(&t[i], NULL, thread_echo, NULL);
    int ok = 0;
    for (int i = 0; i < 6; i++) {
        void *r;
        pthread_join(t[i], &r);
        ok += (int)(intptr_t)r;
    }
    out("threads echoed: %d of 6\n", ok);
}
