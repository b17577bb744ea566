#!/usr/bin/env bash
# Fetches the two C indicator libraries that bench_indicators measures beside qtos, from their npm packages:
#   Tulip Indicators (the C amalgamation inside the `tulind` package) and TA-Lib (the C sources inside `talib`).
# They are unpacked under build/peers (never into the source tree); configuring the build afterwards compiles them
# into bench_indicators only (with -O3 -march=native). The product and its tests never use them.
# Usage: bash scripts/bench_peers.sh [DEST=build/peers]   then: cmake --preset release && cmake --build build/release --target bench_indicators
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$ROOT/build/peers}
TULIND=${TULIND_VERSION:-0.8.20}
TALIB=${TALIB_VERSION:-1.1.6}
command -v npm >/dev/null || { echo "bench_peers.sh: npm not found (needed to fetch the tulind and talib packages)" >&2; exit 1; }
mkdir -p "$DEST/cache"
cd "$DEST/cache"
for pkg in "tulind@$TULIND" "talib@$TALIB"; do
  name=${pkg%@*}; ver=${pkg#*@}
  [ -f "$name-$ver.tgz" ] || npm pack --silent "$pkg" >/dev/null
done
rm -rf "$DEST/tulip" "$DEST/talib" unpack && mkdir -p unpack/tulind unpack/talib "$DEST/tulip" "$DEST/talib"
tar xzf "tulind-$TULIND.tgz" -C unpack/tulind
tar xzf "talib-$TALIB.tgz" -C unpack/talib
cp unpack/tulind/package/external/tiamalgamation.c unpack/tulind/package/external/indicators.h "$DEST/tulip/"
cp unpack/tulind/package/LICENSE "$DEST/tulip/" 2>/dev/null || true
lib=unpack/talib/package/src/lib
mkdir -p "$DEST/talib/include" "$DEST/talib/ta_common" "$DEST/talib/ta_func"
cp "$lib"/include/*.h "$DEST/talib/include/"
cp "$lib"/src/ta_common/*.[ch] "$DEST/talib/ta_common/"
cp "$lib"/src/ta_func/*.[ch] "$DEST/talib/ta_func/"
rm -rf unpack
echo "tulip $TULIND" > "$DEST/VERSIONS"
echo "talib $TALIB" >> "$DEST/VERSIONS"
echo "peers in $DEST: Tulip Indicators (tulind $TULIND), TA-Lib (talib $TALIB); reconfigure the build to compile them into bench_indicators"
