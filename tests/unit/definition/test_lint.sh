#!/bin/sh
# sagactl lint on the example definitions: each file's exact output and exit
# status, then the command line itself (several files, stdin, options, usage).
# usage: test_lint.sh SAGACTL DATA_DIR
set -u
SAGACTL=$1
cd "$2" || exit 1
failures=0
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# check WANT_STATUS EXPECTED_FILE ARGS...: output (stdout and stderr) and status.
check() {
    want=$1
    expected=$2
    shift 2
    "$SAGACTL" lint "$@" >"$out" 2>&1
    status=$?
    [ "$status" -eq "$want" ] || fail "lint $*: exit status $status, want $want"
    if [ -n "$expected" ] && ! diff -u "$expected" "$out"; then
        fail "lint $*: output differs from $expected"
    fi
}

n=0
for f in valid/*.json; do
    check 0 "${f%.json}.expected" "$f"
    n=$((n + 1))
done
[ "$n" -ge 5 ] || fail "only $n valid examples found"
n=0
for f in invalid/*.json; do
    check 1 "${f%.json}.expected" "$f"
    n=$((n + 1))
done
[ "$n" -ge 10 ] || fail "only $n invalid examples found"
for f in valid/*.expected invalid/*.expected; do
    [ -f "${f%.expected}.json" ] || fail "$f has no .json"
done

# Several files: one line each, in order; any invalid file makes the status 1.
check 0 "" valid/minimal.json valid/checkout.json
[ "$(wc -l <"$out")" -eq 2 ] || fail "two valid files should print two lines"
check 1 "" valid/minimal.json invalid/cycle.json valid/checkout.json
grep -q '^valid/checkout.json: ok ' "$out" || fail "files after an invalid one are still linted"
grep -q '^invalid/cycle.json:6:60: ' "$out" || fail "errors of the invalid file are printed"

# Defining the same body twice: these two spell the same definition.
a=$("$SAGACTL" lint valid/minimal.json | sed 's/.*hash=//')
b=$("$SAGACTL" lint valid/minimal-explicit.json | sed 's/.*hash=//')
[ -n "$a" ] && [ "$a" = "$b" ] || fail "minimal and minimal-explicit should hash alike ($a, $b)"

# Standard input, --quiet and --canonical; the canonical body lints to the same hash.
"$SAGACTL" lint - <valid/checkout.json >"$out" 2>&1 || fail "lint - failed"
grep -q '^<stdin>: ok name=checkout ' "$out" || fail "stdin is labelled <stdin>"
check 0 "" --quiet valid/checkout.json
[ -s "$out" ] && fail "--quiet printed something for a valid file"
check 1 "" -q invalid/mode.json
[ -s "$out" ] || fail "--quiet must still print errors"
"$SAGACTL" lint --canonical valid/checkout.json >"$out" 2>&1 || fail "--canonical failed"
c=$("$SAGACTL" lint - <"$out" | sed 's/.*hash=//')
d=$("$SAGACTL" lint valid/checkout.json | sed 's/.*hash=//')
[ -n "$c" ] && [ "$c" = "$d" ] || fail "the canonical body should hash as the original ($c, $d)"

# Unreadable files are errors with a clear message.
check 1 "" no-such-file.json
grep -q '^no-such-file.json: cannot open: No such file or directory$' "$out" ||
    fail "missing file message: $(cat "$out")"
check 1 "" valid
grep -q '^valid: cannot read: Is a directory$' "$out" || fail "directory message: $(cat "$out")"

# Usage errors and help.
check 2 ""
grep -q 'no files given' "$out" || fail "no files: message"
check 2 "" --bogus valid/minimal.json
grep -q "unknown option '--bogus'" "$out" || fail "unknown option: message"
check 0 "" --help
grep -q '^usage: sagactl lint' "$out" || fail "--help prints the usage"
check 0 "" -- valid/minimal.json

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "all lint checks passed"
