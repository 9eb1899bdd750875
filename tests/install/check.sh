#!/usr/bin/env bash
# Installs the SDK from BUILD_DIR into a scratch prefix and builds a program
# outside the tree against it, once with pkg-config and once with CMake.
#   tests/install/check.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/saga-install.XXXXXX)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
libdir=$(find "$work/prefix" -name libsaga.pc -printf '%h\n' | head -1)
libdir=${libdir%/pkgconfig}

echo "== pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
cc -std=c11 -Wall -Wextra -Werror -o "$work/consumer_pc" "$here/consumer.c" \
    $(pkg-config --cflags --libs libsaga)
LD_LIBRARY_PATH=$libdir "$work/consumer_pc"

echo "== find_package(saga)"
cmake -S "$here" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
LD_LIBRARY_PATH=$libdir "$work/cmake-build/consumer_cmake"
"$work/cmake-build/consumer_cmake_static"
echo "install check: ok"
