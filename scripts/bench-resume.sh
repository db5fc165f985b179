#!/usr/bin/env bash
# W5, a resume storm: N readers of one busy room resubscribe at once with `after` = head - 100,
# as after a proxy restart. Run with the history cache (the default) and without it
# (`--history-cache-bytes 0`), so the figures show what the cache saves.
#
# usage: scripts/bench-resume.sh [IMCTL] [N] [MESSAGES]
set -euo pipefail
IMCTL=${1:-.build/release/imctl}
N=${2:-1000}
MESSAGES=${3:-5000}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
SERVER_PID=
cleanup() { [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
export XDG_DATA_HOME="$WORK/data" XDG_CONFIG_HOME="$WORK/config"

run() { # NAME SERVE-FLAGS…
    local name=$1; shift
    local db="$WORK/$name.db"
    "$IMCTL" users add storm --database "$db" --password-stdin <<< "storm-password" 2>/dev/null
    local token
    token=$("$IMCTL" users token storm --database "$db")
    "$IMCTL" serve --port 0 --database "$db" --log-level warning "$@" 2> "$WORK/$name.log" &
    SERVER_PID=$!
    for _ in $(seq 1 100); do grep -q "listening on" "$WORK/$name.log" 2>/dev/null && break; sleep 0.05; done
    local port
    port=$(sed -n 's/.*listening on ws:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/$name.log" | head -1)
    seq 1 "$MESSAGES" | IMCTL_TOKEN=$token IMCTL_SERVER="ws://127.0.0.1:$port" "$IMCTL" send busy --lines
    printf '%s: ' "$name"
    /usr/bin/python3 "$HERE/resume-storm.py" "ws://127.0.0.1:$port/v1/ws" "$token" busy "$MESSAGES" "$N" 100
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

echo "machine: $(nproc) cores, $(uname -r); $N readers, room of $MESSAGES messages, each resumes 100 back"
run cache
run no-cache --history-cache-bytes 0
