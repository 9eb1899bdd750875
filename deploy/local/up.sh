#!/usr/bin/env bash
# The one-command local stack: installs what is missing (as root), builds, starts a
# private PostgreSQL under .local/ (unless SAGAD_DATABASE_URL names another
# database) and migrates it. Running it twice is safe. deploy/local/down.sh stops it.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
state=$root/.local
mkdir -p "$state/log" "$state/run"

source "$root/tests/support/packages.sh"
saga_install_packages

echo "== build"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$state/log/configure.log"
cmake --build "$root/build" -j"$(nproc)" >"$state/log/build.log" 2>&1 ||
    { tail -30 "$state/log/build.log"; exit 1; }

if [[ -n ${SAGAD_DATABASE_URL:-} ]]; then
    echo "== database: $SAGAD_DATABASE_URL (from SAGAD_DATABASE_URL)"
else
    echo "== database: private PostgreSQL under .local/pg"
    SAGAD_DATABASE_URL=$("$root/tests/support/pg.sh" start "$state/pg")
    echo "   $SAGAD_DATABASE_URL"
fi
export SAGAD_DATABASE_URL
echo "$SAGAD_DATABASE_URL" >"$state/database_url"

if "$root/build/bin/sagad" migrate --help >/dev/null 2>&1; then
    echo "== migrate"
    "$root/build/bin/sagad" migrate
else
    echo "== migrate: not yet built (sagad has no migrate command in this build)"
fi

if ! "$root/build/bin/sagad" serve --help >/dev/null 2>&1; then
    echo
    echo "sagad serve is not yet built: the coordinator service, the example"
    echo "participants and the demo sagas are not part of this build yet."
    echo "The database is up; deploy/local/down.sh stops it."
    exit 0
fi
