#!/usr/bin/env bash
# Source checks: banned functions (STYLE 12) and clang-format drift over every
# tracked and new C file. Exits non-zero on any finding.
set -uo pipefail
cd "$(dirname "$0")/.."

files=$( { git ls-files '*.c' '*.h'; git ls-files -o --exclude-standard '*.c' '*.h'; } | sort -u)
status=0

banned=$(echo "$files" | xargs -r grep -nE '(^|[^_[:alnum:]])(PQexec|sprintf|vsprintf|strcpy|strcat|atoi|atol|strtok|gets)[[:space:]]*\(' || true)
# Comment lines may name a banned call.
banned=$(echo "$banned" | grep -vE '^\S+:[0-9]+:\s*(/\*|\*|//)' || true)
if [[ -n $banned ]]; then
    echo "banned functions (see STYLE 12: use snprintf, memcpy, strtol, PQexecParams):"
    echo "$banned"
    status=1
fi

if command -v clang-format >/dev/null; then
    drift=$(echo "$files" | xargs -r clang-format --dry-run --Werror 2>&1 | grep -E '^[^ ].*: error:' | cut -d: -f1 | sort -u)
    if [[ -n $drift ]]; then
        echo "clang-format drift (run: clang-format -i FILE):"
        echo "$drift"
        status=1
    fi
else
    echo "clang-format not installed"
    status=1
fi

[[ $status -eq 0 ]] && echo "source check: ok ($(echo "$files" | wc -l) files)"
exit $status
