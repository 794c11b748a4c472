#!/usr/bin/env bash
# Installs a libft build into a fresh prefix, then configures, builds and runs
# examples/consumer against that prefix only, as a user's project would.
#
#   consumer_test.sh <libft build dir> <consumer source dir> [cmake]
set -euo pipefail

build_dir="${1:?usage: consumer_test.sh <libft build dir> <consumer source dir> [cmake]}"
consumer_src="${2:?usage: consumer_test.sh <libft build dir> <consumer source dir> [cmake]}"
cmake="${3:-cmake}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/ft-install-test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

step() { printf '[install/consumer] %s\n' "$*"; }

step "installing $build_dir into $tmp/prefix"
"$cmake" --install "$build_dir" --prefix "$tmp/prefix"

step "configuring $consumer_src"
# The package registry could point at some other libft; only the prefix
# may satisfy find_package(ft).
"$cmake" -S "$consumer_src" -B "$tmp/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  ${CXX:+-DCMAKE_CXX_COMPILER="$CXX"}

found="$(sed -n 's/^ft_DIR:PATH=//p' "$tmp/build/CMakeCache.txt")"
case "$found" in
  "$tmp/prefix"/*) step "found ft in $found" ;;
  *) echo "find_package(ft) used '$found', not the fresh install" >&2; exit 1 ;;
esac

step "building"
"$cmake" --build "$tmp/build"

step "running"
"$tmp/build/app"
step "OK"
