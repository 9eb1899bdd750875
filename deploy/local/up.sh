#!/usr/bin/env bash
# The one-command local stack: installs what is missing (as root), builds,
# starts a private PostgreSQL under .local/ (unless SAGAD_DATABASE_URL names
# another database), migrates it, starts sagad and the three example services
# in the background (logs in .local/log/, PIDs in .local/run/), defines the
# checkout sagas (saga and 2pc), runs one checkout that completes and one
# that compensates, shows both, and prints what to try next. Running it again
# restarts what it started. deploy/local/down.sh stops it all.
#
# Environment:
#   SAGAD_DATABASE_URL         the saga log's database (default: the private PostgreSQL)
#   SAGA_EXAMPLE_DATABASE_URL  the example services' database (default: database "shop"
#                              on the private PostgreSQL, or SAGAD_DATABASE_URL)
#   SAGAD_LISTEN               where sagad listens (default 127.0.0.1:7420)
#   SAGA_LOCAL_DIR             the state directory (default .local/ in the checkout)
#   SAGA_BUILD_DIR             the build directory (default build/ in the checkout)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
state=${SAGA_LOCAL_DIR:-$root/.local}
build=${SAGA_BUILD_DIR:-$root/build}
listen=${SAGAD_LISTEN:-127.0.0.1:7420}
mkdir -p "$state/log" "$state/run"
state=$(cd "$state" && pwd)

source "$root/tests/support/packages.sh"
saga_install_packages

say() { printf '\n== %s\n' "$*"; }
die() { echo "up.sh: $*" >&2; exit 1; }

# Paths as a person would type them from the checkout.
short() { local p=$1; [[ $p == "$root"/* ]] && p=${p#"$root"/}; echo "$p"; }

say "build ($(short "$build"))"
if [[ ! -f $build/CMakeCache.txt ]]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$state/log/configure.log" 2>&1 ||
        { tail -30 "$state/log/configure.log"; die "cmake failed (see $(short "$state")/log/configure.log)"; }
fi
cmake --build "$build" -j"$(nproc)" >"$state/log/build.log" 2>&1 ||
    { tail -30 "$state/log/build.log"; die "the build failed (see $(short "$state")/log/build.log)"; }
bin=$build/bin
sagactl() { "$bin/sagactl" --coordinator "$listen" "$@"; }
echo "   ok"

# ---- the database -----------------------------------------------------------------------------
if [[ -n ${SAGAD_DATABASE_URL:-} ]]; then
    say "database: $SAGAD_DATABASE_URL (from SAGAD_DATABASE_URL)"
    shop_url=${SAGA_EXAMPLE_DATABASE_URL:-$SAGAD_DATABASE_URL}
else
    say "database: private PostgreSQL under $(short "$state")/pg"
    # Prepared transactions on, for the two-phase commit checkout.
    SAGAD_DATABASE_URL=$("$root/tests/support/pg.sh" start "$state/pg" \
        -c max_prepared_transactions=16)
    port=$(cat "$state/pg/port")
    # The example services keep their tables in a database of their own.
    if ! /usr/lib/postgresql/15/bin/psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAtX \
        -c "SELECT 1 FROM pg_database WHERE datname = 'shop'" | grep -q 1; then
        /usr/lib/postgresql/15/bin/createdb -h 127.0.0.1 -p "$port" -U postgres shop
    fi
    shop_url=${SAGA_EXAMPLE_DATABASE_URL:-${SAGAD_DATABASE_URL/\/saga\?//shop?}}
fi
echo "   saga log: $SAGAD_DATABASE_URL"
echo "   shop:     $shop_url"
export SAGAD_DATABASE_URL
echo "$SAGAD_DATABASE_URL" >"$state/database_url"
echo "$shop_url" >"$state/shop_url"
echo "$listen" >"$state/coordinator"

say "migrate"
"$bin/sagad" migrate --database-url "$SAGAD_DATABASE_URL" | sed 's/^/   /'

# ---- processes --------------------------------------------------------------------------------
# stop NAME: stops what an earlier run started, by the PID it recorded.
stop() {
    local pidfile=$state/run/$1.pid pid
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        echo "   stopped $1 (pid $pid)"
    fi
    rm -f "$pidfile"
}

# start NAME COMMAND...: runs COMMAND in the background, its output in log/NAME.log.
start() {
    local name=$1
    shift
    "$@" </dev/null >>"$state/log/$name.log" 2>&1 &
    echo $! >"$state/run/$name.pid"
    echo "   started $name (pid $!, log $(short "$state")/log/$name.log)"
}

alive() { kill -0 "$(cat "$state/run/$1.pid")" 2>/dev/null; }

# wait_for NAME SECONDS TEST...: until TEST succeeds; gives up when NAME died.
wait_for() {
    local name=$1 secs=$2
    shift 2
    for _ in $(seq $((secs * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        if ! alive "$name"; then
            tail -20 "$state/log/$name.log" >&2
            die "$name exited (see $(short "$state")/log/$name.log)"
        fi
        sleep 0.1
    done
    tail -20 "$state/log/$name.log" >&2
    die "$name is not ready after ${secs}s (see $(short "$state")/log/$name.log)"
}

services=(inventory payment shipping)

say "sagad on $listen"
for s in "${services[@]}"; do stop "$s"; done
stop sagad
start sagad "$bin/sagad" serve --database-url "$SAGAD_DATABASE_URL" --listen "$listen" \
    --instance-id "sagad@$listen"
wait_for sagad 20 sagactl services

say "example services"
for s in "${services[@]}"; do
    start "$s" "$bin/saga-example-$s" --coordinator "$listen" --database-url "$shop_url"
done
registered() {
    local out
    out=$(sagactl services --json) || return 1
    for s in "${services[@]}"; do
        grep -q "\"name\": \"$s\"" <<<"$out" || return 1
    done
}
for _ in $(seq 200); do
    registered && break
    for s in "${services[@]}"; do
        alive "$s" || { tail -20 "$state/log/$s.log" >&2; die "$s exited (see $(short "$state")/log/$s.log)"; }
    done
    sleep 0.1
done
registered || die "the example services did not register in 20s (see $(short "$state")/log/)"
sagactl services | sed 's/^/   /'

say "define the checkout sagas"
sagactl define "$root/participant-sdk/examples/checkout.json" | sed 's/^/   /'
sagactl define "$root/participant-sdk/examples/checkout-2pc.json" | sed 's/^/   /'

# ---- the demo ---------------------------------------------------------------------------------
run=$(date +%H%M%S)
# checkout ORDER AMOUNT: starts a checkout, waits for its end; prints the saga id.
checkout() {
    local input="{\"order\":\"$1\",\"sku\":\"widget\",\"qty\":2,\"amount\":$2}"
    echo "\$ sagactl start checkout --input '$input' --wait" >&2
    local out rc=0
    out=$(sagactl start checkout --input "$input" --key "$1" --wait) || rc=$?
    sed 's/^/   /' <<<"$out" >&2
    echo "   (exit status $rc)" >&2
    echo "${out%%$'\n'*}"
    return "$rc"
}

say "a checkout that completes (amount 40, under the payment limit of 500)"
ok_rc=0
ok_id=$(checkout "order-$run-1" 40) || ok_rc=$?
say "a checkout that compensates (amount 900: the payment service refuses it)"
bad_rc=0
bad_id=$(checkout "order-$run-2" 900) || bad_rc=$?

say "sagactl show $ok_id"
sagactl show "$ok_id"
say "sagactl show $bad_id"
sagactl show "$bad_id"

psql_shop() { /usr/lib/postgresql/15/bin/psql "$shop_url" -X -P pager=off "$@"; }
say "what the services' tables say about both orders"
psql_shop -c "SELECT order_id, sku, qty, state FROM inventory_reservations
              WHERE order_id LIKE 'order-$run-%' ORDER BY order_id" \
    -c "SELECT order_id, courier, state FROM shipping_bookings
        WHERE order_id LIKE 'order-$run-%' ORDER BY order_id" \
    -c "SELECT order_id, amount, state FROM payment_charges
        WHERE order_id LIKE 'order-$run-%' ORDER BY order_id" \
    -c "SELECT sku, available, reserved FROM inventory_stock ORDER BY sku" || true

ctl=$(short "$bin/sagactl")
down=deploy/local/down.sh
[[ -z ${SAGA_LOCAL_DIR:-} ]] || down="SAGA_LOCAL_DIR=$state $down"
say "try next"
{
    [[ $listen == 127.0.0.1:7420 ]] || echo "export SAGA_COORDINATOR=$listen"
    cat <<EOF
$ctl list
$ctl show $bad_id
# out of stock: refused at the first step, so there is nothing to undo
$ctl start checkout --input '{"order":"A-7","sku":"gizmo","qty":9,"amount":10}' --wait
# two-phase commit: no reservation or charge is visible until both have prepared
$ctl start checkout-2pc --input '{"order":"A-9","sku":"widget","qty":1,"amount":30}' --wait
# follow a saga while it runs
$ctl watch \$($ctl start checkout --input '{"order":"A-8","sku":"gadget","qty":1,"amount":25}')
$ctl services
tail -f $(short "$state")/log/sagad.log
psql '$shop_url' -c 'TABLE inventory_stock'
$down    # stops everything; --purge also removes $(short "$state")/
EOF
} | sed 's/^/   /'

if [[ $ok_rc -ne 0 || $bad_rc -ne 3 ]]; then
    die "the demo did not end as expected (exit statuses $ok_rc and $bad_rc, wanted 0 and 3)"
fi
