# Sourced by the benchmark scripts: a private PostgreSQL with default durability
# and the pgbench baseline they all compare against.
#   bench_pg_start DIR      starts the server; sets $bench_server (URL of db "saga")
#   bench_db_url NAME       the URL of database NAME on it
#   bench_psql SQL          runs SQL on database "saga", prints unaligned rows
#   bench_pgbench SECONDS   one-row INSERT per transaction, 8 clients, -M prepared;
#                           prints pgbench's lines and sets $bench_baseline (tps)
#   bench_pgbench_paced RATE SECONDS   (after bench_pgbench, whose database it uses)
#                           the same transactions started on a schedule of RATE a
#                           second (pgbench -R: latency counts from the scheduled
#                           start); prints them and sets $bench_commit_p50/p99 (ms)
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

bench_pgbench_paced() {
    local rate=$1 seconds=$2 logs=$bench_dir/pgbench-log
    rm -rf "$logs"
    mkdir -p "$logs"
    # pgbench writes its per-transaction log into the working directory.
    (cd "$logs" && "$PGBIN/pgbench" -n -M prepared -c 8 -j 2 -T "$seconds" -R "$rate" -l \
        -f "$bench_dir/insert.sql" "$(bench_db_url pgb)" >/dev/null 2>&1) || return 1
    # Column 3 of the log is the latency in microseconds, schedule lag included.
    read -r bench_commit_p50 bench_commit_p99 < <(cat "$logs"/pgbench_log.* | awk '{print $3}' |
        sort -n | awk '{v[NR] = $1} END {
            if (NR == 0) { print "0 0"; exit }
            p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1]
            printf "%.2f %.2f\n", p50 / 1000, p99 / 1000 }')
    echo "   ${rate} commits/s on a schedule: p50 ${bench_commit_p50} ms, p99 ${bench_commit_p99} ms"
}
