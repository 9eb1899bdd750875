#!/usr/bin/env bash
# Private PostgreSQL servers for tests, benchmarks and the local stack.
#
#   pg.sh start DIR [--port N] [-c name=value ...]   initdb if needed, start; prints the URL
#   pg.sh stop DIR                                   fast shutdown (no-op when not running)
#   pg.sh restart DIR                                pg_ctl restart (same port)
#   pg.sh kill DIR                                   SIGKILL the postmaster (crash test)
#   pg.sh url DIR                                    prints the URL of a started server
#   pg.sh status DIR                                 exit 0 when running
#
# The server listens on 127.0.0.1 and on a Unix socket under DIR, trusts local
# connections, and has a database named "saga". As root, initdb and pg_ctl run
# as the postgres user (they refuse to run as root); DIR is made reachable.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

die() { echo "pg.sh: $*" >&2; exit 1; }

as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

abs_dir() {
    mkdir -p "$1"
    (cd "$1" && pwd)
}

# Every parent of DIR must be searchable by the postgres user.
open_parents() {
    local d=$1
    while [[ $d != / ]]; do
        d=$(dirname "$d")
        [[ -x $d ]] || chmod o+x "$d" 2>/dev/null || true
        if [[ $(id -u) -eq 0 ]]; then
            chmod o+x "$d" 2>/dev/null || true
        fi
    done
}

cmd=${1:-}
[[ -n $cmd ]] || die "usage: pg.sh start|stop|restart|kill|url|status DIR"
[[ $# -ge 2 ]] || die "usage: pg.sh $cmd DIR"
dir=$(abs_dir "$2")
shift 2
data=$dir/data
sock=$dir/sock
(( ${#sock} < 100 )) || die "socket path too long: $sock (keep DIR short)"

url_of() {
    echo "postgresql://postgres@127.0.0.1:$(cat "$dir/port")/saga?sslmode=disable"
}

running() {
    [[ -f $data/postmaster.pid ]] && as_owner "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1
}

case $cmd in
start)
    port=""
    extra=()
    while [[ $# -gt 0 ]]; do
        case $1 in
        --port) port=$2; shift 2 ;;
        -c) extra+=(-c "$2"); shift 2 ;;
        *) die "unknown option $1" ;;
        esac
    done
    if running; then
        url_of
        exit 0
    fi
    chmod 755 "$dir"
    open_parents "$dir"
    mkdir -p "$sock"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres "$dir" "$sock"
        [[ -d $data ]] || { mkdir -p "$data"; chown postgres "$data"; }
    fi
    if [[ ! -f $data/PG_VERSION ]]; then
        as_owner "$PGBIN/initdb" -D "$data" --locale=C -E UTF8 -U postgres --auth=trust \
            >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    [[ -n $port ]] || port=$( [[ -f $dir/port ]] && cat "$dir/port" || free_port )
    # The port may be taken between choosing and binding it: try a few.
    for try in 1 2 3; do
        echo "$port" >"$dir/port"
        opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$sock"
        opts+=" -c max_connections=200 -c shared_buffers=128MB -c log_min_messages=warning"
        for e in "${extra[@]}"; do opts+=" $e"; done
        if as_owner "$PGBIN/pg_ctl" -D "$data" -o "$opts" -l "$dir/server.log" -w -t 60 start \
            >/dev/null 2>&1; then
            break
        fi
        [[ $try -lt 3 ]] || { tail -5 "$dir/server.log" >&2; die "cannot start PostgreSQL (see $dir/server.log)"; }
        port=$(free_port)
    done
    echo "$opts" >"$dir/opts"
    "$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAtX \
        -c "SELECT 1 FROM pg_database WHERE datname = 'saga'" | grep -q 1 ||
        "$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U postgres saga
    url_of
    ;;
stop)
    if running; then
        as_owner "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
restart)
    running || die "not running: $dir"
    as_owner "$PGBIN/pg_ctl" -D "$data" -o "$(cat "$dir/opts")" -l "$dir/server.log" -m fast \
        -w -t 60 restart >/dev/null
    ;;
kill)
    if [[ -f $data/postmaster.pid ]]; then
        pid=$(head -1 "$data/postmaster.pid")
        kill -9 "$pid" 2>/dev/null || true
        # Wait for the children to notice and exit.
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    ;;
url)
    [[ -f $dir/port ]] || die "never started: $dir"
    url_of
    ;;
status)
    running
    ;;
*)
    die "unknown command $cmd"
    ;;
esac
