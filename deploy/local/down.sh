#!/usr/bin/env bash
# Stops what deploy/local/up.sh started, by the PIDs it recorded, and the private
# PostgreSQL. Leaves the data; --purge removes .local/ as well.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
state=$root/.local
purge=0
for arg in "$@"; do
    case $arg in
    --purge) purge=1 ;;
    *) echo "usage: deploy/local/down.sh [--purge]" >&2; exit 2 ;;
    esac
done

if [[ -d $state/run ]]; then
    for pidfile in "$state"/run/*.pid; do
        [[ -e $pidfile ]] || continue
        pid=$(cat "$pidfile")
        name=$(basename "$pidfile" .pid)
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            echo "stopped $name (pid $pid)"
        fi
        rm -f "$pidfile"
    done
fi

if [[ -d $state/pg ]]; then
    "$root/tests/support/pg.sh" stop "$state/pg"
    echo "stopped PostgreSQL"
fi

if [[ $purge -eq 1 ]]; then
    rm -rf "$state"
    echo "removed .local/"
fi
