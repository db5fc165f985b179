#!/usr/bin/env bash
# W1–W4 of the neutral load generator (../shared/wsload) against `imctl serve`, side by side with peer
# servers in the same run: server pinned to CPU 1, generator to CPU 0, medians of RUNS runs. Then W5
# (scripts/bench-resume.sh) and the idle cost with permessage-deflate (scripts/bench-idle.sh).
#
# usage: scripts/bench-wsload.sh [IMCTL] [PEERS…]      PEERS: mosquitto nats node-ws py-websockets
#   env: RUNS=3 WORKLOADS="W1 W2 W3 W4 W3L" WSLOAD=../shared/wsload OUT=$TMPDIR/imctl-wsload
#   needs (Debian): mosquitto nats-server node-ws python3-websockets (for the peers and W5), linux-perf
#   e.g. swift build -c release && scripts/bench-wsload.sh .build/release/imctl mosquitto
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
IMCTL=$(realpath "${1:-$HERE/../.build/release/imctl}")
shift $(( $# >= 1 ? 1 : 0 ))
PEERS=${*:-mosquitto}
WSLOAD=${WSLOAD:-$HERE/../../shared/wsload}
export OUT=${OUT:-${TMPDIR:-/tmp}/imctl-wsload}
export RUNS=${RUNS:-3}
export WORKLOADS=${WORKLOADS:-"W1 W2 W3 W4 W3L"}
[[ -x "$IMCTL" ]] || { echo "bench-wsload: $IMCTL is not executable (swift build -c release?)" >&2; exit 1; }
[[ -x "$WSLOAD/peers/run-peers.sh" ]] || { echo "bench-wsload: no wsload at $WSLOAD (set WSLOAD)" >&2; exit 1; }
mkdir -p "$OUT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
echo "binary: $IMCTL ($(stat -c %s "$IMCTL") bytes); results in $OUT/results.jsonl"
# shellcheck disable=SC2086
IMCTL_BIN=$IMCTL "$WSLOAD/peers/run-peers.sh" imctl $PEERS
python3 "$WSLOAD/peers/summarize.py" "$OUT/results.jsonl"
echo
echo "== W5: resume storm"
"$HERE/bench-resume.sh" "$IMCTL" 1000 5000
echo
echo "== idle listener with permessage-deflate (1,000 Python websockets clients)"
"$HERE/bench-idle.sh" "$IMCTL" 1000 | tail -1
"$HERE/bench-idle.sh" "$IMCTL" 1000 -- --compression-window-bits 12 | tail -1
