#!/usr/bin/env bash
# Installs the Debian packages qtos needs that are missing (non-interactive; skips what is present).
# nvcc (CUDA Toolkit 13) is expected from the machine image; without it the build skips the CUDA backends.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtbb-dev libboost1.81-dev libboost-json1.81-dev libsqlite3-dev sqlite3
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libspdlog-dev libxxhash-dev
  libtorch-dev
  chromium  # headless: the HTML report test renders the page and keeps a screenshot
  clang  # the libFuzzer target of the HTTP request handler (tests/fuzz)
  wrk  # scripts/bench_http.sh: the HTTP API's requests/s and p99 beside a minimal Beast server
  libssl-dev  # https:// webhooks (QT_NOTIFY_WEBHOOK_URL) with certificate verification
  libminizip-dev  # `qtos data import` reads Binance's zipped kline archives in place (no hand-written inflater)
  libopenblas0-openmp  # LibTorch's BLAS: Debian's default reference BLAS makes a 5000x64x64 matmul ~14x slower
  redis-server libhiredis-dev  # scale-out (QT_REDIS_URL): shared policy store, event bridge, job workers; tests start their own server
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "setup: installing ${missing[*]}"
apt_install() { $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; }
if ! apt_install; then
  echo "setup: install failed; refreshing package lists and trying again"
  $SUDO apt-get update -q
  apt_install
fi
