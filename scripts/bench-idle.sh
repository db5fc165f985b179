#!/usr/bin/env bash
# What an idle, signed-in listener costs the server: RSS before and after N listeners, divided by N.
# The listeners are Python websockets clients (scripts/idle-listeners.py) that negotiate
# permessage-deflate as `imctl listen` does (or not, with --no-compression). W4 of ../shared/wsload
# measures the same without compression.
#
# usage: scripts/bench-idle.sh [IMCTL] [N] [--no-compression] [-- serve flags…]
#   e.g. scripts/bench-idle.sh .build/release/imctl 1000 -- --compression-window-bits 12
set -euo pipefail
IMCTL=${1:-.build/release/imctl}
N=${2:-1000}
shift $(( $# >= 2 ? 2 : $# ))
CLIENT_FLAGS=()
SERVE_FLAGS=()
while (($#)); do
    case $1 in
        --no-compression) CLIENT_FLAGS+=(--no-compression) ;;
        --) shift; SERVE_FLAGS=("$@"); break ;;
    esac
    shift
done
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
SERVER_PID=
cleanup() { [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
DB="$WORK/idle.db"
"$IMCTL" users add idle --database "$DB" --password-stdin <<< "idle-password" 2>/dev/null
TOKEN=$("$IMCTL" users token idle --database "$DB")
"$IMCTL" serve --port 0 --database "$DB" --log-level warning "${SERVE_FLAGS[@]}" 2> "$WORK/serve.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/serve.log" 2>/dev/null && break; sleep 0.05; done
PORT=$(sed -n 's/.*listening on ws:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/serve.log" | head -1)
[[ -n "$PORT" ]] || { echo "bench-idle: server did not start"; cat "$WORK/serve.log"; exit 1; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
sleep 1
BEFORE=$(rss)
/usr/bin/python3 "$HERE/idle-listeners.py" "ws://127.0.0.1:$PORT/v1/ws" "$TOKEN" "$N" 6 "${CLIENT_FLAGS[@]}" > "$WORK/clients.log" 2>&1 &
CLIENTS=$!
for _ in $(seq 1 600); do grep -q "^ready" "$WORK/clients.log" 2>/dev/null && break; sleep 0.1; done
grep "^ready" "$WORK/clients.log" || { echo "bench-idle: listeners did not get ready"; cat "$WORK/clients.log"; exit 1; }
sleep 2
AFTER=$(rss)
wait "$CLIENTS"
echo "serve flags: ${SERVE_FLAGS[*]:-(none)}; client: ${CLIENT_FLAGS[*]:-permessage-deflate}"
echo "rss before ${BEFORE} kB, after ${AFTER} kB: $(( (AFTER - BEFORE) * 1024 / N )) bytes per listener ($N listeners)"
