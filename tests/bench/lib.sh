# Sourced by the benchmark scripts: a private PostgreSQL with default durability
# and the pgbench baseline they all compare against.
#   bench_pg_start DIR      starts the server; sets $bench_server (URL of db "saga")
#   bench_db_url NAME       the URL of database NAME on it
#   bench_psql SQL          runs SQL on database "saga", prints unaligned rows
#   bench_pgbench SECONDS   one-row INSERT per transaction, 8 clients, -M prepared;
#                           prints pgbench's lines and sets $bench_baseline (tps)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

bench_pg_start() {
    bench_dir=$1
    bench_server=$("$bench_root/tests/support/pg.sh" start "$bench_dir")
}

bench_pg_stop() {
    "$bench_root/tests/support/pg.sh" stop "$bench_dir" >/dev/null 2>&1 || true
}

bench_db_url() { echo "${bench_server/\/saga\?//$1?}"; }

bench_psql() { "$PGBIN/psql" "$bench_server" -qAtX -c "$1"; }

bench_settings() {
    echo "PostgreSQL $(bench_psql 'SHOW server_version'): fsync=$(bench_psql 'SHOW fsync')," \
        "synchronous_commit=$(bench_psql 'SHOW synchronous_commit')," \
        "wal_sync_method=$(bench_psql 'SHOW wal_sync_method'), $(nproc) cores"
}

bench_pgbench() {
    local seconds=$1 out
    bench_psql "DROP DATABASE IF EXISTS pgb" >/dev/null 2>&1
    bench_psql "CREATE DATABASE pgb"
    "$PGBIN/psql" "$(bench_db_url pgb)" -qAtX -c "CREATE TABLE one_row (id bigint NOT NULL, v text NOT NULL)"
    cat >"$bench_dir/insert.sql" <<'SQL'
\set id random(1, 1000000000)
INSERT INTO one_row (id, v) VALUES (:id, 'x');
SQL
    out=$("$PGBIN/pgbench" -n -M prepared -c 8 -j 2 -T "$seconds" -f "$bench_dir/insert.sql" \
        "$(bench_db_url pgb)" 2>&1)
    echo "$out" | grep -E '^(number of transactions actually processed|latency average|tps)'
    bench_baseline=$(echo "$out" | awk '/^tps/ {printf "%.0f", $3; exit}')
}
