#!/bin/sh
# The cost of auto mode's hand-off of an exec into seccomp mode: a shell
# (dynamically linked: the shim) runs a statically linked program N times.
# Three ways, round-robin in one run (the machine is shared and noisy):
#
#   plain    sh runs it, no wrapguard
#   seccomp  wrapguard --mode=seccomp: the whole tree is trapped already,
#            each exec is an ordinary exec
#   auto     wrapguard (auto): sh has the shim, and each exec of the static
#            program goes through `wrapguard --internal-seccomp-exec`
#            (one more exec, a filter, a supervisor thread)
#
# Prints milliseconds per exec for each, and the ratios. Needs gcc with a
# static libc (or set STATIC=/path/to/a/static/program) and unshare -rn
# (no root: a private user + network namespace; no traffic is sent).
#
# Usage: cargo build --release && benches/scripts/exec-handoff.sh [N] [ROUNDS]
set -eu

N=${1:-200}
ROUNDS=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
WRAPGUARD=${WRAPGUARD:-$here/../../target/release/wrapguard}
[ -x "$WRAPGUARD" ] || { echo "exec-handoff: build first (cargo build --release)" >&2; exit 1; }

if [ "${EXEC_HANDOFF_INSIDE:-}" != 1 ]; then
    EXEC_HANDOFF_INSIDE=1 WRAPGUARD="$WRAPGUARD" exec unshare -rn sh "$0" "$@"
fi
ip link set lo up 2>/dev/null || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

if [ -z "${STATIC:-}" ]; then
    printf 'int main(void) { return 0; }\n' >"$work/t.c"
    gcc -static -O1 -o "$work/static-true" "$work/t.c"
    STATIC=$work/static-true
fi

umask 077
cat >"$work/wg.conf" <<EOF
[Interface]
PrivateKey = $("$WRAPGUARD" genkey)
Address = 10.99.0.2/24

[Peer]
PublicKey = $("$WRAPGUARD" genkey | "$WRAPGUARD" pubkey)
Endpoint = 127.0.0.1:9
AllowedIPs = 10.99.0.0/24
EOF

loop="i=0; while [ \$i -lt $N ]; do $STATIC; i=\$((i+1)); done"
ms() { # command… → milliseconds for the whole loop
    s=$(date +%s%N)
    "$@" >/dev/null 2>&1
    e=$(date +%s%N)
    echo $(((e - s) / 1000000))
}
tp=0; ts=0; ta=0
r=1
while [ $r -le "$ROUNDS" ]; do
    p=$(ms sh -c "$loop")
    s=$(ms "$WRAPGUARD" --config "$work/wg.conf" --mode=seccomp -- sh -c "$loop")
    a=$(ms "$WRAPGUARD" --config "$work/wg.conf" -- sh -c "$loop")
    echo "round $r: plain $p ms, seccomp $s ms, auto $a ms for $N execs"
    tp=$((tp + p)); ts=$((ts + s)); ta=$((ta + a))
    r=$((r + 1))
done
awk -v p="$tp" -v s="$ts" -v a="$ta" -v n="$((N * ROUNDS))" 'BEGIN {
    printf "per exec: plain %.2f ms, seccomp %.2f ms, auto (hand-off) %.2f ms\n", p / n, s / n, a / n
    printf "auto/seccomp %.2fx, auto/plain %.2fx\n", a / s, a / p
}'
