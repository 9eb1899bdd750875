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
source "$root/tests/bench/lib.sh"

for bin in bench_store sagad; do
    [[ -x $build/bin/$bin ]] || { echo "run.sh: $build/bin/$bin is not built" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/sagabench.XXXXXX)
cleanup() {
    bench_pg_stop
    rm -rf "$dir"
}
trap cleanup EXIT

bench_pg_start "$dir"
echo "== $(bench_settings)"

bench_psql "CREATE DATABASE bench"
"$build/bin/sagad" migrate --database-url "$(bench_db_url bench)" >/dev/null

echo "== bench_store, ${seconds} s"
out=$("$build/bin/bench_store" --database-url "$(bench_db_url bench)" --seconds "$seconds")
echo "$out"
records=$(echo "$out" | awk '/durable records\/s/ {print $3}')
commits=$(echo "$out" | awk '/^  commits\/s/ {print $2}')

echo "== pgbench baseline: one-row INSERT per transaction, 8 clients, -M prepared, ${seconds} s"
bench_pgbench "$seconds"
baseline=$bench_baseline

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
