#!/bin/sh
# One build of wrapguard, two settings of one environment variable, side
# by side in one session of the e2e bench: passes with NAME=VALUE and with
# NAME unset alternate (ROUNDS pairs), so drift of this shared machine hits
# both alike. For switches such as WRAPGUARD_DIRECT=0 (the bridge's splice
# instead of engine-thread flows) or WRAPGUARD_CRYPTO_WORKERS=1.
#
# Usage: benches/scripts/env-ab.sh NAME=VALUE [ROUNDS]
# Environment: E2E_ONLY (default bulk,latency), E2E_ROUNDS (default 1 per
# pass), E2E_RR (default 3000), E2E_SECS as for the e2e bench. Needs root.
# Prints each pass's tables, labelled, and leaves them in $OUT (default a
# new temporary directory).
set -eu
SETTING=$1
NAME=${SETTING%%=*}
VALUE=${SETTING#*=}
ROUNDS=${2:-2}
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
export E2E_ONLY="${E2E_ONLY:-bulk,latency}" E2E_ROUNDS="${E2E_ROUNDS:-1}" E2E_RR="${E2E_RR:-3000}"
cd "$here/../.."
cargo bench -p wrapguard-benches --bench e2e --no-run >/dev/null 2>&1
i=1
while [ "$i" -le "$ROUNDS" ]; do
    for side in set unset; do
        echo "=== pass $i, $NAME $side"
        if [ "$side" = set ]; then
            env "$NAME=$VALUE" cargo bench -q -p wrapguard-benches --bench e2e 2>/dev/null \
                | tee "$OUT/pass$i-set.txt"
        else
            env -u "$NAME" cargo bench -q -p wrapguard-benches --bench e2e 2>/dev/null \
                | tee "$OUT/pass$i-unset.txt"
        fi
    done
    i=$((i + 1))
done
echo "tables in $OUT"
