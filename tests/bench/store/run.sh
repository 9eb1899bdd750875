#!/usr/bin/env bash
# The store benchmark: starts a private PostgreSQL with default durability
# (fsync and synchronous_commit on), runs bench_store for a fixed time, then
# pgbench on the same server for the same time with a one-row INSERT per
# transaction (8 clients, prepared statements) as the baseline, and prints the
# figures against the target.
#
#   tests/bench/store/run.sh [BUILD_DIR] [SECONDS]     defaults: build/, 20 s
set -euo pipefail

root=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:-$root/build}
seconds=${2:-${SAGA_BENCH_SECONDS:-20}}
target=40000
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
pg_sh=$root/tests/support/pg.sh

for bin in bench_store sagad; do
    [[ -x $build/bin/$bin ]] || { echo "run.sh: $build/bin/$bin is not built" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/sagabench.XXXXXX)
cleanup() {
    "$pg_sh" stop "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

server=$("$pg_sh" start "$dir")
db_url() { echo "${server/\/saga\?//$1?}"; }
psql_q() { "$PGBIN/psql" "$server" -qAtX -c "$1"; }

echo "== PostgreSQL $(psql_q 'SHOW server_version'): fsync=$(psql_q 'SHOW fsync')," \
     "synchronous_commit=$(psql_q 'SHOW synchronous_commit')," \
     "wal_sync_method=$(psql_q 'SHOW wal_sync_method'), $(nproc) cores"

psql_q "CREATE DATABASE bench"
"$build/bin/sagad" migrate --database-url "$(db_url bench)" >/dev/null

echo "== bench_store, ${seconds} s"
out=$("$build/bin/bench_store" --database-url "$(db_url bench)" --seconds "$seconds")
echo "$out"
records=$(echo "$out" | awk '/durable records\/s/ {print $3}')
commits=$(echo "$out" | awk '/^  commits\/s/ {print $2}')

echo "== pgbench baseline: one-row INSERT per transaction, 8 clients, -M prepared, ${seconds} s"
psql_q "CREATE DATABASE pgb"
"$PGBIN/psql" "$(db_url pgb)" -qAtX -c "CREATE TABLE one_row (id bigint NOT NULL, v text NOT NULL)"
cat >"$dir/insert.sql" <<'SQL'
\set id random(1, 1000000000)
INSERT INTO one_row (id, v) VALUES (:id, 'x');
SQL
pgout=$("$PGBIN/pgbench" -n -M prepared -c 8 -j 2 -T "$seconds" -f "$dir/insert.sql" \
    "$(db_url pgb)" 2>&1)
echo "$pgout" | grep -E '^(number of transactions actually processed|latency average|tps)'
baseline=$(echo "$pgout" | awk '/^tps/ {printf "%.0f", $3; exit}')

echo
echo "== summary"
printf '  store:    %8s durable records/s, %s commits/s\n' "$records" "$commits"
printf '  pgbench:  %8s durable rows/s (= commits/s, one row each)\n' "$baseline"
if [[ -n $baseline && $baseline -gt 0 ]]; then
    awk -v r="$records" -v b="$baseline" 'BEGIN { printf "  ratio:    %8.1fx the baseline\n", r / b }'
fi
if [[ ${records:-0} -ge $target ]]; then
    echo "  target:   $target durable records/s: met"
else
    echo "  target:   $target durable records/s: NOT met"
fi
