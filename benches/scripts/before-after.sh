#!/bin/sh
# Two variants of wrapguard side by side in one session of the e2e bench:
# the selected sections run for variant A, then B, then A, then B ...
# (ROUNDS pairs), so drift of this shared machine hits both alike.
#
# Usage: benches/scripts/before-after.sh DIR_A DIR_B [ROUNDS]
#          two builds: DIR_A, DIR_B each hold a release `wrapguard` and
#          `libwrapguard.so` (e.g. a worktree of the old commit built with
#          `cargo build --release -p wrapguard -p wrapguard-preload`);
#        benches/scripts/before-after.sh --env NAME=VALUE [ROUNDS]
#          one build (the bench's own), A with NAME=VALUE set and B with
#          NAME unset: for switches such as WRAPGUARD_DIRECT=0 (the bridge's
#          splice instead of engine-thread flows).
# Environment: E2E_ONLY (default bulk,latency), E2E_ROUNDS (default 1 per
# pass), E2E_RR (default 3000), E2E_SECS as for the e2e bench. Needs root.
# Prints each pass's tables, labelled, and leaves them in $OUT (default a
# new temporary directory).
set -eu
if [ "$1" = --env ]; then
    SETTING=$2
    NAME=${SETTING%%=*}
    ROUNDS=${3:-2}
else
    A=$(cd "$1" && pwd)
    B=$(cd "$2" && pwd)
    ROUNDS=${3:-2}
fi
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
export E2E_ONLY="${E2E_ONLY:-bulk,latency}" E2E_ROUNDS="${E2E_ROUNDS:-1}" E2E_RR="${E2E_RR:-3000}"
cd "$here/../.."
cargo bench -p wrapguard-benches --bench e2e --no-run >/dev/null 2>&1
i=1
while [ "$i" -le "$ROUNDS" ]; do
    for side in A B; do
        if [ -n "${SETTING:-}" ]; then
            if [ "$side" = A ]; then set -- env "$SETTING"; else set -- env -u "$NAME"; fi
            echo "=== pass $i, variant $side ($*)"
        else
            if [ "$side" = A ]; then dir=$A; else dir=$B; fi
            set -- env "WRAPGUARD_BIN_DIR=$dir"
            echo "=== pass $i, build $side ($dir)"
        fi
        "$@" cargo bench -q -p wrapguard-benches --bench e2e 2>/dev/null \
            | tee "$OUT/pass$i-$side.txt"
    done
    i=$((i + 1))
done
echo "tables in $OUT"
