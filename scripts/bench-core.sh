#!/usr/bin/env bash
# Measures the core message loop against a real server on a temporary SQLite store:
#   1. `seq 1 N | imctl send ROOM --lines`: messages acknowledged per second, end to end, each durable;
#   2. one `imctl send ROOM hello` process, start to exit: median wall time;
#   3. the same 100k lines read back by `imctl listen --since 0 --count N`.
#
# usage: scripts/bench-core.sh [IMCTL] [N] [RUNS]
#   IMCTL  the binary (default .build/release/imctl; build with `swift build -c release`)
#   N      lines per send run (default 100000)
#   RUNS   repetitions of each measurement (default 5); medians are reported
set -euo pipefail
IMCTL=${1:-.build/release/imctl}
N=${2:-100000}
RUNS=${3:-5}
[[ -x "$IMCTL" ]] || { echo "bench-core: $IMCTL is not executable (swift build -c release?)" >&2; exit 1; }

WORK=$(mktemp -d)
SERVER_PID=
cleanup() { [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
export XDG_DATA_HOME="$WORK/data" XDG_CONFIG_HOME="$WORK/config"
DB="$WORK/bench.db"

"$IMCTL" users add bench --database "$DB" --password-stdin <<< "bench-password" 2>/dev/null
export IMCTL_TOKEN=$("$IMCTL" users token bench --database "$DB")
"$IMCTL" serve --port 0 --database "$DB" --log-level warning 2> "$WORK/serve.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do
    grep -q "listening on" "$WORK/serve.log" 2>/dev/null && break
    sleep 0.05
done
PORT=$(sed -n 's/.*listening on ws:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/serve.log" | head -1)
[[ -n "$PORT" ]] || { echo "bench-core: server did not start"; cat "$WORK/serve.log"; exit 1; }
export IMCTL_SERVER="ws://127.0.0.1:$PORT"
seq 1 "$N" > "$WORK/lines"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
echo "binary: $IMCTL ($(stat -c %s "$IMCTL") bytes)"
echo

echo "== pipelined send: $N lines per run, $RUNS runs"
rates=()
for r in $(seq 1 "$RUNS"); do
    start=$(now)
    "$IMCTL" send "bulk$r" --lines < "$WORK/lines"
    end=$(now)
    rate=$(echo "$N / ($end - $start)" | bc -l)
    printf "run %d: %.2f s, %.0f msgs/s\n" "$r" "$(echo "$end - $start" | bc -l)" "$rate"
    rates+=("$rate")
done
printf "median: %.0f msgs/s acknowledged\n\n" "$(printf '%s\n' "${rates[@]}" | median)"

echo "== one message per process: 'imctl send r hello', $((RUNS * 10)) runs"
times=()
for _ in $(seq 1 $((RUNS * 10))); do
    start=$(now)
    "$IMCTL" send single hello
    end=$(now)
    times+=("$(echo "($end - $start) * 1000" | bc -l)")
done
printf "median: %.1f ms start to exit\n\n" "$(printf '%s\n' "${times[@]}" | median)"

echo "== listen --since 0 --count $N (replay of run 1)"
start=$(now)
"$IMCTL" listen bulk1 --since 0 --count "$N" --json > "$WORK/out"
end=$(now)
printf "%.2f s, %.0f msgs/s; %d lines printed\n" "$(echo "$end - $start" | bc -l)" "$(echo "$N / ($end - $start)" | bc -l)" "$(wc -l < "$WORK/out")"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^imctl_commit_batch_size_(sum|count)' || true
