#!/bin/sh
# wrapguard rootless demo: two wrapguard instances are each other's
# WireGuard peer over loopback, inside a private network namespace made
# with `unshare -rn` (no root needed, nothing leaves the machine).
#
#   instance 1 (10.88.0.1) runs `python3 -m http.server 8080`
#   instance 2 (10.88.0.2) runs `curl http://10.88.0.1:8080/`
#
# The page travels: curl -> shim -> engine 2 (TCP/IP stack, WireGuard) ->
# UDP 127.0.0.1:51802 -> 127.0.0.1:51801 -> engine 1 -> the server.
#
# Usage: cargo build --release && examples/demo.sh
# WRAPGUARD=/path/to/wrapguard picks another binary (libwrapguard.so must
# be next to it).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
WRAPGUARD=${WRAPGUARD:-$here/../target/release/wrapguard}
if [ ! -x "$WRAPGUARD" ]; then
    echo "demo: $WRAPGUARD not found; run 'cargo build --release' first (or set WRAPGUARD)" >&2
    exit 1
fi
for tool in unshare python3 curl; do
    command -v "$tool" >/dev/null 2>&1 || { echo "demo: $tool is needed" >&2; exit 1; }
done

if [ "${WRAPGUARD_DEMO_INSIDE:-}" != 1 ]; then
    # Re-run ourselves inside a fresh user + network namespace.
    WRAPGUARD_DEMO_INSIDE=1 WRAPGUARD="$WRAPGUARD" exec unshare -rn sh "$0" "$@"
fi

ip link set lo up 2>/dev/null || true
work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

key1=$("$WRAPGUARD" genkey)
key2=$("$WRAPGUARD" genkey)
pub1=$(printf '%s\n' "$key1" | "$WRAPGUARD" pubkey)
pub2=$(printf '%s\n' "$key2" | "$WRAPGUARD" pubkey)

umask 077
cat >"$work/one.conf" <<EOF
[Interface]
PrivateKey = $key1
Address = 10.88.0.1/24
ListenPort = 51801

[Peer]
PublicKey = $pub2
Endpoint = 127.0.0.1:51802
AllowedIPs = 10.88.0.2/32
EOF
cat >"$work/two.conf" <<EOF
[Interface]
PrivateKey = $key2
Address = 10.88.0.2/24
ListenPort = 51802

[Peer]
PublicKey = $pub1
Endpoint = 127.0.0.1:51801
AllowedIPs = 10.88.0.1/32
EOF

token="hello through wrapguard $(date +%s)-$$"
mkdir "$work/www"
printf '%s\n' "$token" >"$work/www/index.html"

echo "demo: starting instance 1 (10.88.0.1) with python3 -m http.server 8080" >&2
"$WRAPGUARD" --config "$work/one.conf" --log-level=warn -- \
    python3 -u -m http.server 8080 --bind 0.0.0.0 --directory "$work/www" \
    >"$work/server.log" 2>&1 &
server_pid=$!
# python prints "Serving HTTP" once it listens (and so does the tunnel).
i=0
until grep -q 'Serving HTTP' "$work/server.log" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$server_pid" 2>/dev/null; then
        echo "demo: the server did not start; its log:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
done

echo "demo: instance 2 (10.88.0.2) runs: curl http://10.88.0.1:8080/" >&2
page=$("$WRAPGUARD" --config "$work/two.conf" --log-level=warn -- \
    curl -sS --max-time 10 http://10.88.0.1:8080/)
printf '%s\n' "$page"

if [ "$page" = "$token" ]; then
    echo "demo: OK — the page came back through the tunnel; the server saw:" >&2
    grep 'GET /' "$work/server.log" >&2 || true
else
    echo "demo: FAILED — unexpected page; server log:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
