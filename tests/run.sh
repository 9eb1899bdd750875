#!/usr/bin/env bash
# The test command: installs what is missing (as root), builds the normal and the
# ASan+UBSan builds, starts a private PostgreSQL, runs every test on both builds,
# the install check, the fuzz target and the source check, then stops the server.
# Exits non-zero on any failure; every step runs even after an earlier one failed.
#
#   tests/run.sh              everything
#   SAGA_FUZZ_SECONDS=5 tests/run.sh     a shorter fuzz run
#   SAGA_SKIP_ASAN=1 tests/run.sh        skip the sanitizer build (quick local runs)
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${SAGA_FUZZ_SECONDS:-30}

source "$root/tests/support/packages.sh"

log() { printf '\n=== %s\n' "$*"; }

failures=()
summary=()
step() {
    local name=$1
    shift
    log "$name"
    local t0=$SECONDS
    if "$@"; then
        summary+=("ok    $name ($((SECONDS - t0))s)")
    else
        summary+=("FAIL  $name ($((SECONDS - t0))s)")
        failures+=("$name")
    fi
}

# configure_build DIR [TARGET] -- CMAKE_ARGS...
configure_build() {
    local dir=$1 target=all
    shift
    if [[ $1 != -* ]]; then
        target=$1
        shift
    fi
    mkdir -p "$root/$dir"
    cmake -S "$root" -B "$root/$dir" "$@" >"$root/$dir/configure.log" 2>&1 ||
        { cat "$root/$dir/configure.log"; return 1; }
    cmake --build "$root/$dir" --target "$target" -j"$jobs" 2>&1 | grep -vE '^\[ *[0-9]+%\]'
    return "${PIPESTATUS[0]}"
}

ctest_summary=()
run_ctest() {
    local dir=$1 out rc
    out=$(mktemp)
    ctest --test-dir "$root/$dir" --output-on-failure -j"$jobs" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    ctest_summary+=("$dir: $(grep -E 'tests passed|tests failed' "$out" | tail -1)")
    rm -f "$out"
    return "$rc"
}

pgdir=""
cleanup() {
    if [[ -n $pgdir ]]; then
        "$root/tests/support/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true
        rm -rf "$pgdir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_postgres() {
    pgdir=$(mktemp -d /tmp/saga-pg.XXXXXX)
    # Prepared transactions on: libsaga-pg's two-phase commit helper is tested.
    SAGA_TEST_DATABASE_URL=$("$root/tests/support/pg.sh" start "$pgdir" \
        -c max_prepared_transactions=16) || return 1
    export SAGA_TEST_DATABASE_URL
    echo "PostgreSQL at $SAGA_TEST_DATABASE_URL"
}

run_fuzz() {
    local work
    work=$(mktemp -d /tmp/saga-fuzz.XXXXXX)
    if [[ ! -x $root/build-fuzz/bin/fuzz_decoder ]]; then
        echo "fuzz_decoder was not built"
        return 1
    fi
    "$root/build-fuzz/bin/fuzz_decoder" -max_total_time="$fuzz_seconds" -max_len=65536 \
        -print_final_stats=1 "$work" "$root/tests/fuzz/corpus/decoder" 2>&1 | tail -15
    local rc=${PIPESTATUS[0]}
    rm -rf "$work"
    return "$rc"
}

step "packages" saga_install_packages
step "source check" "$root/tests/check-source.sh"
step "build (RelWithDebInfo)" configure_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [[ -z ${SAGA_SKIP_ASAN:-} ]]; then
    step "build (ASan+UBSan)" configure_build build-asan -DCMAKE_BUILD_TYPE=Debug -DSAGA_SANITIZE=ON
fi
step "build (fuzz, clang)" configure_build build-fuzz fuzz_decoder -DCMAKE_C_COMPILER=clang \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAGA_FUZZ=ON -DSAGA_TESTS=ON
step "private PostgreSQL" start_postgres

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
step "ctest (RelWithDebInfo)" run_ctest build
if [[ -z ${SAGA_SKIP_ASAN:-} ]]; then
    step "ctest (ASan+UBSan)" run_ctest build-asan
fi
step "install check (pkg-config, find_package)" "$root/tests/install/check.sh" "$root/build"
step "fuzz decoder (${fuzz_seconds}s)" run_fuzz

log "summary"
printf '%s\n' "${summary[@]}"
printf '%s\n' "${ctest_summary[@]}"
if [[ ${#failures[@]} -gt 0 ]]; then
    echo "FAILED: ${failures[*]}"
    exit 1
fi
echo "all green"
