#!/usr/bin/env bash
# W1 and W3 of the neutral load generator (../shared/wsload) against imctl on SQLite, on PostgreSQL with
# one node, and on PostgreSQL with two nodes behind nginx (deploy/nginx.conf), in one run.
# A throwaway PostgreSQL is started for it (initdb/pg_ctl from Debian's postgresql, as the postgres
# user, fsync on: acked means durable) and removed at the end.
#
# usage: scripts/bench-postgres.sh [IMCTL]     env: RUNS=3 WORKLOADS="W1 W3" WSLOAD=../shared/wsload
#   needs: postgresql, nginx (apt-get install postgresql nginx), a release build of imctl
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
IMCTL=$(realpath "${1:-$HERE/../.build/release/imctl}")
WSLOAD=${WSLOAD:-$HERE/../../shared/wsload}
export RUNS=${RUNS:-3} WORKLOADS=${WORKLOADS:-"W1 W3"}
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGDIR=$(mktemp -d /tmp/imctl-bench-pg.XXXXXX)
chown postgres:postgres "$PGDIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
runuser -u postgres -- "$BIN/initdb" -D "$PGDIR/data" -A trust -U postgres -E UTF8 >/dev/null
runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $PGDIR -c max_connections=200" start >/dev/null
trap 'runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null; rm -rf "$PGDIR"' EXIT
export PG_URL="postgres://postgres@127.0.0.1:$PORT" IMCTL_REAL=$IMCTL
echo "machine: $(nproc) cores; PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') (fsync on, unpinned);" \
     "server pinned to CPU 1, generator to CPU 0 (run-peers.sh)"
for config in sqlite postgres postgres-2-nodes; do
    export OUT=${TMPDIR:-/tmp}/imctl-bench-$config
    rm -rf "$OUT"
    echo "== $config"
    case $config in
        sqlite) IMCTL_BIN=$IMCTL "$WSLOAD/peers/run-peers.sh" imctl ;;
        postgres) NODES=1 IMCTL_BIN=$HERE/imctl-on-postgres.sh "$WSLOAD/peers/run-peers.sh" imctl ;;
        postgres-2-nodes) NODES=2 IMCTL_BIN=$HERE/imctl-on-postgres.sh "$WSLOAD/peers/run-peers.sh" imctl ;;
    esac
    python3 "$WSLOAD/peers/summarize.py" "$OUT/results.jsonl"
done
