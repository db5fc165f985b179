#!/usr/bin/env bash
# How long one `imctl send` takes from start to exit against a local server, beside
# `mosquitto_pub -q 1` (an acknowledged publish) against a local mosquitto, and `imctl --version`
# (start-up alone). Runs interleaved, 20 each by default; prints medians in ms.
#
# usage: scripts/bench-send.sh [IMCTL…]   (default: .build/release/imctl; several binaries compare builds)
# Needs mosquitto and mosquitto-clients (apt-get install mosquitto mosquitto-clients) for the peer rows.
set -euo pipefail
BINARIES=("${@:-.build/release/imctl}")
RUNS=${RUNS:-20}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

IMCTL=${BINARIES[0]}
export IMCTL_DATABASE="$WORK/imctl.db" XDG_CONFIG_HOME="$WORK" NO_COLOR=1
printf 'bench-password\n' | "$IMCTL" users add bench --password-stdin 2>/dev/null
"$IMCTL" serve --port 0 2> "$WORK/serve.log" &
for _ in $(seq 100); do grep -q 'listening on' "$WORK/serve.log" && break; sleep 0.1; done
export IMCTL_SERVER=$(grep -o 'ws://127.0.0.1:[0-9]*' "$WORK/serve.log" | head -1)
export IMCTL_TOKEN=$("$IMCTL" users token bench)

MQTT_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if command -v mosquitto > /dev/null && command -v mosquitto_pub > /dev/null; then
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$MQTT_PORT" > "$WORK/mosquitto.conf"
    mosquitto -c "$WORK/mosquitto.conf" 2> /dev/null &
    sleep 0.5
fi

ms() { # command… → wall time in ms (bash's own clock: no process is started to read it)
    local s e
    s=$EPOCHREALTIME; "$@" > /dev/null; e=$EPOCHREALTIME
    echo "scale=2; ($e - $s) * 1000 / 1" | bc
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }

declare -A times
for _ in $(seq "$RUNS"); do
    for b in "${BINARIES[@]}"; do
        times["$b send"]+="$(ms "$b" send bench-room hello) "
        times["$b --version"]+="$(ms "$b" --version) "
    done
    if command -v mosquitto_pub > /dev/null; then
        times["mosquitto_pub -q 1"]+="$(ms mosquitto_pub -p "$MQTT_PORT" -q 1 -t bench/room -m hello) "
    fi
done
echo "| command | median ms of $RUNS |"
echo "|---|---:|"
for key in "${!times[@]}"; do
    echo "| \`$key\` | $(printf '%s\n' ${times[$key]} | median) |"
done | sort
