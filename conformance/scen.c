/* wrapguard's differential conformance scenarios.
 *
 *   scen serve                 the server role (in the wireguard-go peer's namespace)
 *   scen list                  the scenario names, one a line
 *   scen client NAME…          runs each scenario in a child process of its own,
 *                              printing "== NAME", its result lines, then
 *                              "-- exit N" (or "-- signal N"); a crash or hang
 *                              (10 s alarm) of one does not hide the others:
 *                              after a hang it stops with status 4, and the
 *                              harness runs the rest in a fresh process
 *
 * Every line a scenario prints is a normalised observation (return values,
 * errno names, readiness masks, socket options, addresses with kernel-chosen
 * ports as "ephemeral", timings as booleans), so the kernel's run and
 * wrapguard's can be compared line by line (launcher/tests/conformance.rs).
 */
#include "common.h"
#include "server.h"
#include "scen_connect.h"
#include "scen_ready.h"
#include "scen_data.h"
#include "scen_proc.h"
#include "scen_listen.h"
#include "scen_udp.h"

#define SCEN_ALARM_SECS 10

struct scen {
    const char *name;
    void (*fn)(void);
};

#define S(n) {#n, sc_##n}
static const struct scen scens[] = {
    S(connect_blocking_v4),
    S(connect_blocking_v6),
    S(connect_nonblock_v4),
    S(connect_nonblock_v6),
    S(connect_sock_nonblock_flag),
    S(connect_nonblock_twice_pending),
    S(connect_refused_blocking_v4),
    S(connect_refused_blocking_v6),
    S(connect_refused_nonblock),
    S(connect_refused_then_open_nonblock),
    S(connect_refused_epoll),
    S(connect_sndtimeo_blackhole),
    S(connect_sndtimeo_ok),
    S(connect_nonblock_blackhole),
    S(connect_v4mapped),
    S(connect_v4mapped_v6only),
    S(connect_wrong_family),
    S(connect_short_addrlen),
    S(connect_unspec_tcp),
    S(connect_bound_port),
    S(connect_bound_tunnel_addr),
    S(connect_whoami_v4),
    S(connect_whoami_v6),
    S(so_error_connected),
    S(unconnected_calls),
    S(connect_many_parallel),
    S(msg_peek),
    S(msg_peek_dontwait_empty),
    S(msg_waitall),
    S(msg_waitall_eof),
    S(msg_dontwait),
    S(nonblock_read_eagain),
    S(nonblock_send_fills),
    S(msg_trunc_tcp),
    S(readv_writev),
    S(sendmsg_recvmsg_tcp),
    S(sendto_connected_tcp_with_addr),
    S(recvfrom_tcp_addr),
    S(bulk_echo_order),
    S(fionread_siocoutq),
    S(fionread_listen_and_fresh),
    S(tcp_info_states),
    S(tcp_info_close_wait),
    S(tcp_info_fin_wait2),
    S(tcp_maxseg_connected),
    S(tcp_maxseg_unconnected),
    S(buffer_sizes_default),
    S(buffer_sizes_set_doubles),
    S(buffer_set_before_connect),
    S(nodelay_cork),
    S(nodelay_before_connect),
    S(keepalive_options),
    S(misc_sockopts),
    S(ipv6_sockopts),
    S(so_rcvtimeo),
    S(accept4_flags),
    S(accept_plain_flags),
    S(accept_nonblock_eagain),
    S(accept_v6_dual_stack),
    S(accept_v6only),
    S(accept_bound_tunnel_addr),
    S(accept_peer_data_and_close),
    S(listen_backlog),
    S(listen_twice_and_unbound),
    S(listen_ephemeral_getsockname),
    S(bind_eaddrinuse),
    S(bind_reuseaddr_both),
    S(bind_after_accepted_close),
    S(bind_rules),
    S(dup_shares_socket),
    S(dup2_onto_socket),
    S(fork_child_uses_socket),
    S(fork_child_closes),
    S(fork_child_connects),
    S(fork_shutdown_shared),
    S(exec_inherits_socket),
    S(exec_cloexec_socket),
    S(exec_inherits_listener),
    S(thread_close_vs_file_write),
    S(thread_shutdown_wakes_recv),
    S(threads_parallel_connects),
    S(poll_connected_idle),
    S(poll_readable_after_data),
    S(poll_fresh_socket),
    S(select_read_write),
    S(select_peer_close),
    S(epoll_level),
    S(epoll_edge),
    S(epoll_edge_out),
    S(epoll_oneshot),
    S(epoll_nonblock_connect),
    S(epoll_rdhup),
    S(epoll_hup_after_rst),
    S(poll_peer_fin),
    S(poll_peer_rst),
    S(so_error_after_rst),
    S(send_after_rst),
    S(send_after_peer_close),
    S(shutdown_wr_peer_sees_eof),
    S(shutdown_wr_then_send),
    S(sigpipe_on_send_after_shutdown),
    S(shutdown_rd),
    S(shutdown_rdwr),
    S(shutdown_invalid_how),
    S(peer_shutdown_we_still_send),
    S(close_normal_fin),
    S(close_unread_data_rst),
    S(linger0_rst),
    S(linger_timeout_normal),
    S(shutdown_then_close_peer_eof),
    S(peer_sends_first),
    S(udp_connected_echo),
    S(udp_unconnected_sendto),
    S(udp_v6),
    S(udp_v4mapped),
    S(udp_connect_unspec),
    S(udp_reconnect),
    S(udp_connected_filters_others),
    S(udp_refused_connected),
    S(udp_refused_so_error),
    S(udp_refused_v6),
    S(udp_refused_unconnected),
    S(udp_fionread_and_trunc),
    S(udp_empty_datagram),
    S(udp_sizes),
    S(udp_sendmsg_iov_recvmsg_name),
    S(udp_bound_receives_from_peer),
    S(udp_bind_eaddrinuse),
    S(udp_dup_and_fork),
    S(udp_getsockopts),
    S(udp_epoll_edge),
    S(icmp_ping_v4),
    S(icmp_ping_v6),
    S(icmp_ping_connected),
    S(icmp_ping_blackhole),
};
#define NSCEN (sizeof scens / sizeof scens[0])

static int run_one(const struct scen *s) {
    out("== %s\n", s->name);
    pid_t p = fork();
    if (p < 0) {
        out("-- fork: %s\n", en(errno));
        return 1;
    }
    if (p == 0) {
        setpgid(0, 0);
        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        alarm(SCEN_ALARM_SECS);
        s->fn();
        fflush(stdout);
        _exit(0);
    }
    int st;
    while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
    }
    /* Whatever the scenario left behind (a helper stuck in accept) goes
     * with it, so it cannot hold stdout open or disturb the next one. */
    kill(-p, SIGKILL);
    if (WIFSIGNALED(st))
        out("-- signal %d\n", WTERMSIG(st));
    else
        out("-- exit %d\n", WEXITSTATUS(st));
    /* A hang may have wedged what carries our calls: stop, so the harness
     * runs the rest in a fresh process (exit status 4). */
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM;
}

int main(int argc, char **argv) {
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    self_exe[n > 0 ? n : 0] = 0;
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return serve();
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        for (size_t i = 0; i < NSCEN; i++)
            printf("%s\n", scens[i].name);
        return 0;
    }
    if (argc >= 3 && strncmp(argv[1], "exec-", 5) == 0)
        alarm(SCEN_ALARM_SECS); /* helpers: never outlive a scenario */
    if (argc >= 3 && strcmp(argv[1], "exec-helper") == 0)
        return exec_helper(atoi(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "exec-accept") == 0)
        return exec_accept(atoi(argv[2]));
    if (argc >= 2 && strcmp(argv[1], "client") == 0) {
        for (int a = 2; a < argc; a++) {
            size_t i;
            for (i = 0; i < NSCEN; i++)
                if (strcmp(scens[i].name, argv[a]) == 0)
                    break;
            if (i == NSCEN) {
                out("== %s\n-- unknown scenario\n", argv[a]);
                continue;
            }
            if (run_one(&scens[i]))
                return 4;
        }
        return 0;
    }
    fprintf(stderr, "usage: scen serve | list | client NAME...\n");
    return 2;
}
