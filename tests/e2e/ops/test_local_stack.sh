#!/usr/bin/env bash
# The one-command demo as the README tells it: deploy/local/up.sh (twice: a
# second run restarts what the first started), its output, the example
# services' tables, then deploy/local/down.sh (stops everything by PID, keeps
# the data) and down.sh --purge. Runs in a state directory of its own
# (SAGA_LOCAL_DIR) with sagad on a free port, so a developer's .local/ and
# 127.0.0.1:7420 are left alone. Starts its own PostgreSQL (exit 77, skipped,
# when PostgreSQL 15 is not installed).
#   test_local_stack.sh SOURCE_DIR BUILD_DIR
set -uo pipefail

src=${1:?usage: test_local_stack.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: test_local_stack.sh SOURCE_DIR BUILD_DIR}
pgbin=/usr/lib/postgresql/15/bin
if [[ ! -x $pgbin/initdb ]]; then
    echo "PostgreSQL 15 is not installed: skipping"
    exit 77
fi

state=$(mktemp -d /tmp/saga-up.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SAGA_LOCAL_DIR=$state SAGA_BUILD_DIR=$build SAGAD_LISTEN=127.0.0.1:$port NO_COLOR=1
unset SAGAD_DATABASE_URL SAGA_EXAMPLE_DATABASE_URL SAGA_COORDINATOR
passed=0
failed=0

cleanup() {
    if [[ -d $state ]]; then
        "$src/deploy/local/down.sh" --purge >/dev/null 2>&1
        rm -rf "$state"
    fi
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok     $*"; }
bad() { failed=$((failed + 1)); echo "FAIL   $*"; }
has() { # has FILE TEXT
    if grep -qF -- "$2" "$1"; then ok "$(basename "$1") says '$2'"; else bad "$(basename "$1") lacks '$2'"; fi
}
count() { # count FILE TEXT: lines holding TEXT
    grep -cF -- "$2" "$1"
}
shop() { "$pgbin/psql" "$(cat "$state/shop_url")" -qAtX -c "$1"; }
alive_pids() { # the PIDs in run/ that still run
    for f in "$state"/run/*.pid; do
        [[ -e $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && echo "$(basename "$f" .pid)"
    done
}

# ---- first run ------------------------------------------------------------------------------------
out1=$state/../$(basename "$state").up1
(cd "$src" && deploy/local/up.sh) >"$out1" 2>&1
rc=$?
if [[ $rc -eq 0 ]]; then ok "up.sh exits 0"; else bad "up.sh exited $rc"; tail -40 "$out1"; fi
has "$out1" "== database: private PostgreSQL under"
has "$out1" "applied 0001_saga_log.sql"
has "$out1" "checkout version 1: created"
has "$out1" "checkout-2pc version 1: created"
has "$out1" "COMPLETED in "
has "$out1" "COMPENSATED in "
has "$out1" "step 'charge' failed: amount 900 over the limit 500"
has "$out1" "reserve  inventory  reserve  compensated  1+1"
has "$out1" "book     shipping   book     compensated  1+1"
has "$out1" "charge   payment    charge   failed       1"
has "$out1" "== try next"
has "$out1" "export SAGA_COORDINATOR=127.0.0.1:$port"
for s in sagad inventory payment shipping; do
    has "$out1" "started $s (pid"
done
if [[ $(alive_pids | sort | tr '\n' ' ') == "inventory payment sagad shipping " ]]; then
    ok "sagad and the three services run, with PIDs in run/"
else
    bad "running: $(alive_pids | tr '\n' ' ')"
fi
for s in sagad inventory payment shipping; do
    [[ -s $state/log/$s.log ]] && ok "log/$s.log written" || bad "no log/$s.log"
done

# The example tables: one order went through, the other was undone.
orders=$(grep -o 'order-[0-9]*-[12]' "$out1" | sort -u | tr '\n' ' ')
read -r order_ok order_bad <<<"$orders"
[[ $(shop "SELECT state FROM inventory_reservations WHERE order_id = '$order_ok'") == reserved ]] &&
    ok "inventory: $order_ok reserved" || bad "inventory: $order_ok not reserved"
[[ $(shop "SELECT state FROM inventory_reservations WHERE order_id = '$order_bad'") == released ]] &&
    ok "inventory: $order_bad released" || bad "inventory: $order_bad not released"
[[ $(shop "SELECT state FROM shipping_bookings WHERE order_id = '$order_ok'") == booked ]] &&
    ok "shipping: $order_ok booked" || bad "shipping: $order_ok not booked"
[[ $(shop "SELECT state FROM shipping_bookings WHERE order_id = '$order_bad'") == cancelled ]] &&
    ok "shipping: $order_bad cancelled" || bad "shipping: $order_bad not cancelled"
[[ $(shop "SELECT amount || ' ' || state FROM payment_charges WHERE order_id = '$order_ok'") == "40 charged" ]] &&
    ok "payment: $order_ok charged 40" || bad "payment: $order_ok not charged"
[[ $(shop "SELECT count(*) FROM payment_charges WHERE order_id = '$order_bad'") == 0 ]] &&
    ok "payment: nothing charged for $order_bad" || bad "payment: $order_bad charged"
[[ $(shop "SELECT available || '/' || reserved FROM inventory_stock WHERE sku = 'widget'") == "98/2" ]] &&
    ok "inventory: 2 widgets reserved, the released 2 back in stock" ||
    bad "inventory: widget stock $(shop "SELECT available || '/' || reserved FROM inventory_stock WHERE sku = 'widget'")"
[[ $(shop "SELECT count(*) FROM saga_barrier") -ge 7 ]] &&
    ok "the barrier recorded the effects" || bad "barrier rows: $(shop "SELECT count(*) FROM saga_barrier")"

# ---- second run: restarts what runs ---------------------------------------------------------------
first_sagad=$(cat "$state/run/sagad.pid")
out2=$state/../$(basename "$state").up2
(cd "$src" && deploy/local/up.sh) >"$out2" 2>&1
rc=$?
if [[ $rc -eq 0 ]]; then ok "up.sh again exits 0"; else bad "up.sh again exited $rc"; tail -40 "$out2"; fi
has "$out2" "nothing to apply"
has "$out2" "stopped sagad (pid $first_sagad)"
has "$out2" "checkout version 1: unchanged"
has "$out2" "COMPENSATED in "
kill -0 "$first_sagad" 2>/dev/null && bad "the first sagad still runs" || ok "the first sagad was stopped"
[[ $(shop "SELECT count(*) FROM inventory_reservations") == 4 ]] &&
    ok "four reservations after two runs" || bad "reservations: $(shop "SELECT count(*) FROM inventory_reservations")"

# ---- down.sh: stops by PID, keeps the data --------------------------------------------------------
pids=$(cat "$state"/run/*.pid | tr '\n' ' ')
out3=$state/../$(basename "$state").down
(cd "$src" && deploy/local/down.sh) >"$out3" 2>&1
rc=$?
[[ $rc -eq 0 ]] && ok "down.sh exits 0" || { bad "down.sh exited $rc"; cat "$out3"; }
for s in sagad inventory payment shipping; do
    has "$out3" "stopped $s (pid"
done
has "$out3" "stopped PostgreSQL"
still=0
for p in $pids; do kill -0 "$p" 2>/dev/null && still=1; done
[[ $still -eq 0 ]] && ok "every process up.sh started is gone" || bad "still running: $pids"
[[ -z $(ls "$state/run") ]] && ok "run/ is empty" || bad "run/ holds $(ls "$state/run")"
if grep -l -E 'Sanitizer|runtime error:' "$state"/log/*.log; then
    bad "a sanitizer report in the logs above"
else
    ok "no sanitizer report in the logs"
fi
[[ -f $state/pg/data/PG_VERSION ]] && ok "the data is kept" || bad "the data is gone"
# The saga log survives a restart of its database.
url=$("$src/tests/support/pg.sh" start "$state/pg")
[[ $("$pgbin/psql" "$url" -qAtX -c "SELECT count(*) FROM sagas WHERE definition = 'checkout'") == 4 ]] &&
    ok "four checkouts in the saga log after down.sh" || bad "sagas kept: $("$pgbin/psql" "$url" -qAtX -c "SELECT count(*) FROM sagas")"
"$src/tests/support/pg.sh" stop "$state/pg"

out4=$state/../$(basename "$state").purge
(cd "$src" && deploy/local/down.sh --purge) >"$out4" 2>&1
rc=$?
[[ $rc -eq 0 && ! -e $state ]] && ok "down.sh --purge removes the state directory" ||
    { bad "down.sh --purge: exit $rc, $(ls "$state" 2>&1)"; cat "$out4"; }
(cd "$src" && deploy/local/down.sh --bogus) >/dev/null 2>&1
[[ $? -eq 2 ]] && ok "down.sh --bogus exits 2" || bad "down.sh --bogus"

if [[ $failed -gt 0 ]]; then
    echo "--- up.sh output"
    cat "$out1"
fi
rm -f "$out1" "$out2" "$out3" "$out4"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
