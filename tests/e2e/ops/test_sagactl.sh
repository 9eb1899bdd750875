#!/usr/bin/env bash
# sagactl against a real sagad and saga-testpeer participants: every command,
# its exit codes (0, 1, 2, and 3/4 of start --wait and watch), its messages,
# and the --json documents parsed with python3. Needs SAGA_TEST_DATABASE_URL
# (a PostgreSQL server; this test makes and drops a database of its own):
# exits 77 (skipped) without it.
#   test_sagactl.sh BIN_DIR
set -uo pipefail

bin=${1:?usage: test_sagactl.sh BIN_DIR}
server=${SAGA_TEST_DATABASE_URL:-}
if [[ -z $server ]]; then
    echo "SAGA_TEST_DATABASE_URL is not set: skipping"
    exit 77
fi
psql=/usr/lib/postgresql/15/bin/psql

work=$(mktemp -d /tmp/saga-ctl.XXXXXX)
db=saga_ops_ctl_$$
url=$(python3 -c '
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$server" "$db")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SAGA_COORDINATOR=127.0.0.1:$port
export NO_COLOR=1
pids=()
passed=0
failed=0

cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    wait 2>/dev/null
    "$psql" "$server" -qAtX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    if [[ $failed -eq 0 ]]; then
        rm -rf "$work"
    else
        echo "--- logs kept in $work"
        tail -n 20 "$work"/*.log
    fi
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok     $*"; }
bad() { failed=$((failed + 1)); echo "FAIL   $*"; }

# run NAME CMD...: runs a command, keeps its stdout, stderr and exit status.
run() {
    local name=$1
    shift
    "$@" >"$work/$name.out" 2>"$work/$name.err"
    echo $? >"$work/$name.rc"
}
rc_of() { cat "$work/$1.rc"; }
out_of() { cat "$work/$1.out"; }

# expect NAME WANT_RC CMD...: runs it and checks the exit status.
expect() {
    local name=$1 want=$2
    shift 2
    run "$name" "$@"
    if [[ $(rc_of "$name") -eq $want ]]; then
        ok "$name (exit $want)"
    else
        bad "$name: exit $(rc_of "$name"), wanted $want: $*"
        sed 's/^/       stdout: /' "$work/$name.out" | head -20
        sed 's/^/       stderr: /' "$work/$name.err" | head -20
    fi
}

# has NAME STREAM TEXT: the command's stdout (out) or stderr (err) holds TEXT.
has() {
    if grep -qF -- "$3" "$work/$1.$2"; then
        ok "$1 $2 says '$3'"
    else
        bad "$1: $2 lacks '$3'"
        sed 's/^/       /' "$work/$1.$2" | head -20
    fi
}

# json NAME PYTHON: the command's stdout is one JSON document `d` for which the
# python expression holds.
json() {
    if python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
if not eval(sys.argv[2]):
    sys.exit(1)' "$work/$1.out" "$2" 2>"$work/$1.pyerr"; then
        ok "$1 json: $2"
    else
        bad "$1 json: not $2"
        head -c 2000 "$work/$1.out" | sed 's/^/       /'
        sed 's/^/       /' "$work/$1.pyerr"
    fi
}

ctl() { "$bin/sagactl" "$@"; }

# ---- the stack ----------------------------------------------------------------------------------
"$psql" "$server" -qAtX -c "CREATE DATABASE $db" >/dev/null || { echo "cannot create $db"; exit 1; }
"$bin/sagad" migrate --database-url "$url" >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log"; exit 1; }
"$bin/sagad" serve --database-url "$url" --listen "127.0.0.1:$port" --heartbeat 500ms \
    >"$work/sagad.log" 2>&1 &
pids+=($!)
"$bin/saga-testpeer" --coordinator "$SAGA_COORDINATOR" --service inventory --on reserve=ok \
    --on hold=ok --on hold.compensate=fail --on slow=delay:1500 >"$work/inventory.log" 2>&1 &
pids+=($!)
"$bin/saga-testpeer" --coordinator "$SAGA_COORDINATOR" --service payment --on charge=ok \
    --on refuse=fail >"$work/payment.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    out=$(ctl services --json 2>/dev/null) && grep -q '"inventory"' <<<"$out" &&
        grep -q '"payment"' <<<"$out" && break
    sleep 0.1
done

def() { # def NAME STEPS-JSON
    echo "{\"name\": \"$1\", \"version\": 1, \"steps\": [$2]}" >"$work/$1.json"
}
def ok-saga '{"name": "reserve", "service": "inventory", "action": "reserve"},
             {"name": "charge", "service": "payment", "action": "charge"}'
def undo-saga '{"name": "reserve", "service": "inventory", "action": "reserve"},
               {"name": "refuse", "service": "payment", "action": "refuse"}'
def stuck-saga '{"name": "hold", "service": "inventory", "action": "hold"},
                {"name": "refuse", "service": "payment", "action": "refuse"}'
def slow-saga '{"name": "slow", "service": "inventory", "action": "slow", "timeout": "10s"},
               {"name": "charge", "service": "payment", "action": "charge"}'
def page-saga '{"name": "reserve", "service": "inventory", "action": "reserve"}'
echo '{"name": "broken", "version": 1, "steps": [{"name": "a", "service": "s"}]}' >"$work/broken.json"
echo '{"name": "ok-saga", "version": 1, "steps": [{"name": "x", "service": "inventory", "action": "reserve"}]}' \
    >"$work/ok-saga-changed.json"

# ---- usage errors: exit 2 -----------------------------------------------------------------------
expect usage_none 2 ctl
expect usage_unknown_command 2 ctl frobnicate
has usage_unknown_command err "unknown command 'frobnicate'"
expect usage_unknown_option 2 ctl list --bogus
has usage_unknown_option err "unknown option '--bogus'"
expect usage_missing_value 2 ctl list --limit
expect usage_bad_limit 2 ctl list --limit 0
expect usage_bad_status 2 ctl list --status sleeping
expect usage_bad_since 2 ctl list --since 5years
expect usage_show_no_id 2 ctl show
expect usage_show_bad_id 2 ctl show not-a-uuid
has usage_show_bad_id err "'not-a-uuid' is not a saga id"
expect usage_start_no_name 2 ctl start
expect usage_start_bad_input 2 ctl start ok-saga --input '{nope'
has usage_start_bad_input err "--input is not JSON"
expect usage_timeout_without_wait 2 ctl start ok-saga --timeout 5s
expect usage_resolve_no_as 2 ctl resolve 00000000-0000-0000-0000-000000000001
expect usage_resolve_bad_as 2 ctl resolve 00000000-0000-0000-0000-000000000001 --as running
expect usage_define_no_files 2 ctl define
expect usage_global_no_value 2 ctl --coordinator
expect help 0 ctl --help
has help out "usage: sagactl"
expect help_start 0 ctl start --help
has help_start out "exit status"

# ---- an unreachable coordinator: exit 1 with what to do -----------------------------------------
expect unreachable 1 ctl --coordinator 127.0.0.1:1 list
has unreachable err "cannot reach the coordinator at 127.0.0.1:1: is sagad running?"
SAGA_COORDINATOR=127.0.0.1:1 expect unreachable_env 1 ctl services
has unreachable_env err "127.0.0.1:1"

# ---- define -------------------------------------------------------------------------------------
expect define 0 ctl define "$work/ok-saga.json" "$work/undo-saga.json" "$work/stuck-saga.json" \
    "$work/slow-saga.json"
has define out "ok-saga version 1: created (hash "
has define out "slow-saga version 1: created"
expect define_again 0 ctl define "$work/ok-saga.json"
has define_again out "ok-saga version 1: unchanged"
expect define_json 0 ctl define --json "$work/page-saga.json"
json define_json 'd["definitions"][0]["name"] == "page-saga" and d["definitions"][0]["version"] == 1 and len(d["definitions"][0]["hash"]) == 64 and d["definitions"][0]["created"] is True'
expect define_invalid 1 ctl define "$work/ok-saga.json" "$work/broken.json"
has define_invalid err "broken.json:1:"
has define_invalid err "nothing registered"
expect define_changed 1 ctl define "$work/ok-saga-changed.json"
has define_changed err "raise its \"version\""
expect define_missing_file 1 ctl define "$work/no-such-file.json"
has define_missing_file err "cannot open"

# ---- start and --wait ---------------------------------------------------------------------------
expect start_ok 0 ctl start ok-saga --input '{"order": 1}' --wait
ok_id=$(head -1 "$work/start_ok.out")
has start_ok out "COMPLETED in "
expect start_undo 3 ctl start undo-saga --input '{"order": 2}' --wait
undo_id=$(head -1 "$work/start_undo.out")
has start_undo out "COMPENSATED in "
has start_undo out "testpeer: fail"
expect start_stuck 4 ctl start stuck-saga --wait --timeout 20s
stuck_id=$(head -1 "$work/start_stuck.out")
has start_stuck out "STUCK"
has start_stuck err "needs an operator: sagactl show $stuck_id"
expect start_timeout 4 ctl start slow-saga --wait --timeout 300ms
has start_timeout out "still RUNNING after"
expect start_unknown 1 ctl start no-such-saga
has start_unknown err "sagactl define FILE"
echo '{"from": "a file"}' >"$work/input.json"
expect start_json 0 ctl start ok-saga --input "@$work/input.json" --key order-77 --json
json start_json 'len(d["saga_id"]) == 36 and d["existed"] is False and "saga" not in d'
key_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["saga_id"])' "$work/start_json.out")
expect start_key_again 0 ctl start ok-saga --key order-77 --json --wait
json start_key_again "d['saga_id'] == '$key_id' and d['existed'] is True and d['timed_out'] is False and d['saga']['status'] == 'completed' and d['saga']['input'] == '{\"from\": \"a file\"}\n'"
expect start_key_text 0 ctl start ok-saga --key order-77
has start_key_text out "$key_id"
has start_key_text err "key 'order-77' was used before"

# ---- show ---------------------------------------------------------------------------------------
expect show_undo 0 ctl show "$undo_id"
has show_undo out "state       COMPENSATED"
has show_undo out "STEP     SERVICE    ACTION   STATE        ATTEMPTS  DURATION  ERROR"
has show_undo out "reserve  inventory  reserve  compensated  1+1"
has show_undo out "refuse   payment    refuse   failed       1"
has show_undo out "timeline (from the start)"
has show_undo out "saga.compensated"
if grep -q $'\033' "$work/show_undo.out"; then bad "show: colour without a terminal"; else ok "show: no colour off a terminal"; fi
if command -v script >/dev/null; then
    # On a terminal (script gives it one): colour, unless NO_COLOR says no.
    script -qc "env -u NO_COLOR SAGA_COORDINATOR=$SAGA_COORDINATOR $bin/sagactl show $undo_id" \
        /dev/null >"$work/show_tty.out" 2>&1
    grep -q $'\033\\[33mCOMPENSATED' "$work/show_tty.out" && ok "show: colour on a terminal" ||
        bad "show: no colour on a terminal"
    script -qc "env NO_COLOR=1 SAGA_COORDINATOR=$SAGA_COORDINATOR $bin/sagactl show $undo_id" \
        /dev/null >"$work/show_tty_nc.out" 2>&1
    if grep -q $'\033' "$work/show_tty_nc.out" || ! grep -q COMPENSATED "$work/show_tty_nc.out"; then
        bad "show: NO_COLOR on a terminal"
    else
        ok "show: NO_COLOR turns colour off on a terminal"
    fi
fi
expect show_json 0 ctl show "$undo_id" --json
json show_json "d['saga_id'] == '$undo_id' and d['status'] == 'compensated' and d['terminal'] is True and d['definition'] == 'undo-saga' and d['mode'] == 'saga'"
json show_json '[s["name"] for s in d["steps"]] == ["reserve", "refuse"] and [s["status"] for s in d["steps"]] == ["compensated", "failed"]'
json show_json 'd["steps"][0]["attempts"] == 1 and d["steps"][0]["compensate_attempts"] == 1 and d["steps"][1]["error"] == "testpeer: fail" and isinstance(d["steps"][0]["duration_ms"], int)'
json show_json '[e["seq"] for e in d["events"]] == list(range(1, len(d["events"]) + 1)) and d["events"][0]["kind"] == "saga.started" and d["events"][-1]["kind"] == "saga.compensated"'
json show_json 'd["input"] == "{\"order\": 2}" and d["created"].endswith("Z") and d["created_ms"] > 0'
expect show_unknown 1 ctl show 00000000-0000-0000-0000-000000000001
has show_unknown err "sagactl list shows recent sagas"

# ---- list and its pages -------------------------------------------------------------------------
page_ids=()
for i in 1 2 3 4 5; do
    run "page_start_$i" ctl start page-saga --input "{\"n\": $i}"
    page_ids+=("$(head -1 "$work/page_start_$i.out")")
done
expect list_page1 0 ctl list --definition page-saga --limit 2 --json
json list_page1 'len(d["sagas"]) == 2 and d["next_cursor"] != "" and all(s["definition"] == "page-saga" for s in d["sagas"])'
json list_page1 "d['sagas'][0]['saga_id'] == '${page_ids[4]}' and d['sagas'][1]['saga_id'] == '${page_ids[3]}'"
cursor=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["next_cursor"])' "$work/list_page1.out")
expect list_page2 0 ctl list --definition page-saga --limit 2 --cursor "$cursor" --json
json list_page2 "[s['saga_id'] for s in d['sagas']] == ['${page_ids[2]}', '${page_ids[1]}']"
expect list_all 0 ctl list --definition page-saga --limit 2 --all --json
json list_all "[s['saga_id'] for s in d['sagas']] == ['${page_ids[4]}', '${page_ids[3]}', '${page_ids[2]}', '${page_ids[1]}', '${page_ids[0]}'] and d['next_cursor'] == ''"
json list_all 'all(a["created_ms"] >= b["created_ms"] for a, b in zip(d["sagas"], d["sagas"][1:]))'
expect list_human 0 ctl list --definition page-saga --limit 2
has list_human out "ID                                    DEFINITION    STATE      STARTED"
has list_human out "more: sagactl list --cursor "
expect list_stuck 0 ctl list --status stuck --json
json list_stuck "'$stuck_id' in [s['saga_id'] for s in d['sagas']] and all(s['status'] == 'stuck' for s in d['sagas'])"
expect list_since 0 ctl list --since 1h --json
json list_since "'$ok_id' in [s['saga_id'] for s in d['sagas']]"
expect list_none 0 ctl list --definition nothing-like-it
has list_none out "no sagas match"

# ---- watch ---------------------------------------------------------------------------------------
run watch_start ctl start slow-saga
slow_id=$(head -1 "$work/watch_start.out")
expect watch 0 ctl watch "$slow_id"
has watch out "saga.started"
has watch out "step.succeeded"
has watch out "COMPLETED in "
if [[ $(grep -c 'step.dispatched' "$work/watch.out") -eq 2 ]]; then ok "watch: each dispatch once"; else bad "watch: dispatches $(grep -c 'step.dispatched' "$work/watch.out")"; fi
expect watch_undone 3 ctl watch "$undo_id"
has watch_undone out "COMPENSATED in "
expect watch_unknown 1 ctl watch 00000000-0000-0000-0000-000000000001

# ---- services -----------------------------------------------------------------------------------
expect services 0 ctl services
has services out "SERVICE    INSTANCE"
has services out "inventory"
expect services_json 0 ctl services --json
json services_json '[s["name"] for s in d["services"]] == ["inventory", "payment"] and "refuse" in d["services"][1]["instances"][0]["actions"] and d["services"][0]["instances"][0]["coordinator_id"] != ""'

# ---- retry, abort, resolve ----------------------------------------------------------------------
expect retry_completed 1 ctl retry "$ok_id"
has retry_completed err "sagactl show $ok_id"
expect retry_stuck 0 ctl retry "$stuck_id" --reason "fixed the card"
has retry_stuck out "$stuck_id "
for _ in $(seq 50); do
    ctl show "$stuck_id" --json 2>/dev/null | grep -q '"status": "stuck"' && break
    sleep 0.1
done
expect retry_timeline 0 ctl show "$stuck_id" --json
json retry_timeline '[e["kind"] for e in d["events"]].count("saga.retried") == 1 and d["events"][-1]["kind"] == "saga.stuck"'
expect resolve_completed_saga 1 ctl resolve "$ok_id" --as compensated
expect resolve_stuck 0 ctl resolve "$stuck_id" --as compensated --json
json resolve_stuck "d['saga_id'] == '$stuck_id' and d['status'] == 'compensated'"
run abort_start ctl start slow-saga
abort_id=$(head -1 "$work/abort_start.out")
expect abort_running 0 ctl abort "$abort_id" --reason "customer cancelled"
has abort_running out "$abort_id COMPENSATING"
expect abort_wait 3 ctl watch "$abort_id"
expect abort_ended 1 ctl abort "$ok_id"

# ---- lint still works offline --------------------------------------------------------------------
expect lint 0 ctl --coordinator 127.0.0.1:1 lint "$work/ok-saga.json"
expect lint_broken 1 ctl lint "$work/broken.json"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
