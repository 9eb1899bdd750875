#!/usr/bin/env bash
# Two-phase commit end to end on PostgreSQL's prepared transactions: sagad,
# the inventory and payment examples (libsaga-pg's saga_pg_xa_*), and the
# checkout-2pc definition. One checkout commits (both effects visible, no
# prepared transaction left); one that payment refuses aborts (inventory's
# prepared reservation rolled back, the stock as before). Needs
# SAGA_TEST_DATABASE_URL on a server with max_prepared_transactions > 0:
# exits 77 (skipped) otherwise.
#   test_2pc_examples.sh SOURCE_DIR BIN_DIR
set -uo pipefail

src=${1:?usage: test_2pc_examples.sh SOURCE_DIR BIN_DIR}
bin=${2:?usage: test_2pc_examples.sh SOURCE_DIR BIN_DIR}
server=${SAGA_TEST_DATABASE_URL:-}
psql=/usr/lib/postgresql/15/bin/psql
if [[ -z $server ]]; then
    echo "SAGA_TEST_DATABASE_URL is not set: skipping"
    exit 77
fi
if [[ $("$psql" "$server" -qAtX -c "SHOW max_prepared_transactions") == 0 ]]; then
    echo "max_prepared_transactions is 0 on this server: skipping"
    exit 77
fi

work=$(mktemp -d /tmp/saga-2pc.XXXXXX)
db=saga_ops_2pc_$$
url=$(/usr/bin/python3 -c '
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$server" "$db")
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SAGA_COORDINATOR=127.0.0.1:$port NO_COLOR=1
pids=()
failures=0

cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    wait 2>/dev/null
    "$psql" "$url" -qAtX -c "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()" \
        2>/dev/null | while read -r gid; do
        "$psql" "$url" -qAtX -c "ROLLBACK PREPARED '$gid'" >/dev/null 2>&1
    done
    "$psql" "$server" -qAtX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    if ((failures == 0)); then
        rm -rf "$work"
    else
        echo "--- logs kept in $work"
        tail -n 20 "$work"/*.log
    fi
}
trap cleanup EXIT

# check DESCRIPTION WANT GOT
check() {
    if [[ $2 == "$3" ]]; then
        echo "ok     $1"
    else
        echo "FAIL   $1: got '$3', wanted '$2'"
        failures=$((failures + 1))
    fi
}
q() { "$psql" "$url" -qAtX -c "$1"; }

"$psql" "$server" -qAtX -c "CREATE DATABASE $db" >/dev/null || exit 1
"$bin/sagad" migrate --database-url "$url" >/dev/null || exit 1
"$bin/sagad" serve --database-url "$url" --listen "$SAGA_COORDINATOR" --log-level warn \
    >"$work/sagad.log" 2>&1 &
pids+=($!)
for svc in inventory payment; do
    "$bin/saga-example-$svc" --database-url "$url" --threads 2 >"$work/$svc.log" 2>&1 &
    pids+=($!)
done
for _ in $(seq 100); do
    n=$(grep -l 'serving' "$work/inventory.log" "$work/payment.log" 2>/dev/null | wc -l)
    [[ $n -eq 2 ]] && break
    sleep 0.1
done
check "both services serve" 2 "$n"
"$bin/sagactl" define "$src/participant-sdk/examples/checkout-2pc.json" >/dev/null
check "define checkout-2pc" 0 $?

# Committed: the reservation and the charge both land.
"$bin/sagactl" start checkout-2pc --wait --timeout 30s \
    --input '{"order": "T-1", "sku": "gadget", "qty": 3, "amount": 40}' >"$work/commit.out" 2>&1
check "the checkout commits (exit 0)" 0 $?
check "it says COMMITTED" 1 "$(grep -c 'COMMITTED' "$work/commit.out")"
check "gadget stock after the commit" 22 "$(q "SELECT available FROM inventory_stock WHERE sku = 'gadget'")"
check "the reservation is visible" 1 "$(q "SELECT count(*) FROM inventory_reservations WHERE order_id = 'T-1'")"
check "the charge is visible" 1 "$(q "SELECT count(*) FROM payment_charges WHERE order_id = 'T-1'")"
check "no prepared transaction left" 0 "$(q "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()")"

# Aborted: payment refuses (over its limit), so inventory's prepared
# reservation is rolled back and the stock is as before.
"$bin/sagactl" start checkout-2pc --wait --timeout 30s \
    --input '{"order": "T-2", "sku": "gadget", "qty": 2, "amount": 9000}' >"$work/abort.out" 2>&1
check "the refused checkout aborts (exit 3)" 3 $?
check "it says ABORTED" 1 "$(grep -c 'ABORTED' "$work/abort.out")"
check "gadget stock after the abort" 22 "$(q "SELECT available FROM inventory_stock WHERE sku = 'gadget'")"
check "no reservation for T-2" 0 "$(q "SELECT count(*) FROM inventory_reservations WHERE order_id = 'T-2'")"
check "no charge for T-2" 0 "$(q "SELECT count(*) FROM payment_charges WHERE order_id = 'T-2'")"
check "no prepared transaction left" 0 "$(q "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()")"

# SIGTERM: every process exits 0.
for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do
    wait "$p"
    check "process $p exits 0 on SIGTERM" 0 $?
done
pids=()
((failures == 0)) && echo "all passed" || echo "$failures failed"
exit $((failures > 0))
