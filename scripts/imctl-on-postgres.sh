#!/usr/bin/env bash
# Stands in for `imctl` in ../shared/wsload/peers/run-peers.sh (IMCTL_BIN=this script) so that the same
# workloads measure imctl on PostgreSQL: every `--database PATH` becomes a database of its own on
# $PG_URL (created on first use), and with NODES=2 `serve --port P` starts two nodes on P+100 and P+101
# behind nginx on P (deploy/nginx.conf, addresses changed). scripts/bench-postgres.sh drives it.
#
#   env: IMCTL_REAL (the imctl binary)  PG_URL (postgres://user@host:port, a role that may create
#        databases)  NODES=1|2
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
args=("$@")
for i in "${!args[@]}"; do
    if [[ ${args[$i]} == --database ]]; then
        path=${args[$((i + 1))]}
        name=bench_$(basename "$(dirname "$path")" | tr -c 'A-Za-z0-9' '_' | tr 'A-Z' 'a-z')
        if [[ -z $(psql "$PG_URL/postgres" -qtAc "SELECT 1 FROM pg_database WHERE datname = '$name'") ]]; then
            psql "$PG_URL/postgres" -qc "CREATE DATABASE $name" >/dev/null
        fi
        args[$((i + 1))]="$PG_URL/$name"
    fi
done
if [[ ${args[0]} != serve || ${NODES:-1} == 1 ]]; then
    exec "$IMCTL_REAL" "${args[@]}"
fi
# serve with two nodes behind nginx on the port asked for.
port=7700
for i in "${!args[@]}"; do [[ ${args[$i]} == --port ]] && port=${args[$((i + 1))]}; done
work=$(mktemp -d /tmp/imctl-nodes.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 0' TERM INT
for n in 0 1; do
    node_args=("${args[@]}")
    for i in "${!node_args[@]}"; do [[ ${node_args[$i]} == --port ]] && node_args[$((i + 1))]=$((port + 100 + n)); done
    "$IMCTL_REAL" "${node_args[@]}" --max-connections-per-address 100000 &
    pids+=($!)
done
sed -e "s/127.0.0.1:7700/127.0.0.1:$((port + 100))/; s/127.0.0.1:7701/127.0.0.1:$((port + 101))/" \
    -e "s/listen 8080;/listen 127.0.0.1:$port;/; s/worker_processes auto;/worker_processes 1;/" "$HERE/../deploy/nginx.conf" > "$work/nginx.conf"
sleep 1
nginx -c "$work/nginx.conf" -p "$work" -e "$work/nginx.err" -g "daemon off; master_process off; pid $work/nginx.pid;" &
pids+=($!)
wait
