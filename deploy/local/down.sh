#!/usr/bin/env bash
# Stops what deploy/local/up.sh started, by the PIDs it recorded (the example
# services, then sagad), and its private PostgreSQL. Leaves the data; --purge
# removes the state directory (.local/, or SAGA_LOCAL_DIR) as well.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
state=${SAGA_LOCAL_DIR:-$root/.local}
purge=0
for arg in "$@"; do
    case $arg in
    --purge) purge=1 ;;
    -h | --help)
        echo "usage: deploy/local/down.sh [--purge]"
        exit 0
        ;;
    *)
        echo "usage: deploy/local/down.sh [--purge]" >&2
        exit 2
        ;;
    esac
done

if [[ ! -d $state ]]; then
    echo "nothing to stop: no $state"
    exit 0
fi

stop() {
    local pidfile=$1 pid name
    name=$(basename "$pidfile" .pid)
    pid=$(cat "$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid"
            echo "killed $name (pid $pid): it did not stop in 10s"
        else
            echo "stopped $name (pid $pid)"
        fi
    fi
    rm -f "$pidfile"
}

if [[ -d $state/run ]]; then
    # Participants first, so they do not log the coordinator going away.
    for pidfile in "$state"/run/*.pid; do
        [[ -e $pidfile && $(basename "$pidfile") != sagad.pid ]] && stop "$pidfile"
    done
    [[ -e $state/run/sagad.pid ]] && stop "$state/run/sagad.pid"
fi

if [[ -d $state/pg ]] && "$root/tests/support/pg.sh" status "$state/pg"; then
    "$root/tests/support/pg.sh" stop "$state/pg"
    echo "stopped PostgreSQL"
fi

if [[ $purge -eq 1 ]]; then
    rm -rf "$state"
    echo "removed $state"
else
    echo "the data stays in $state (down.sh --purge removes it)"
fi
