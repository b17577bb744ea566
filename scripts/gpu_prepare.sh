#!/usr/bin/env bash
# Run HERE (the Debian build machine), once per session that has a GPU machine: downloads the Debian packages
# the GPU machine lacks (it has CUDA, PyTorch's LibTorch, CMake and ninja, but no TBB, Boost, GoogleTest,
# Google Benchmark, CLI11, spdlog, fmt, xxHash, hiredis, minizip, zlib headers) into .debs/, which the device tool carries (`carry: [".debs"]`).
set -euo pipefail
cd "$(dirname "$0")/.."
EXCLUDE=$(git rev-parse --git-path info/exclude); mkdir -p "$(dirname "$EXCLUDE")"
grep -qx '/.debs/' "$EXCLUDE" 2>/dev/null || echo '/.debs/' >> "$EXCLUDE"
mkdir -p .debs
PKGS=(libtbb-dev libtbb12 libtbbmalloc2 libtbbbind-2-5 libhwloc15
      libboost1.81-dev libboost-json1.81-dev libboost-json1.81.0 libboost-container1.81-dev libboost-container1.81.0
      libsqlite3-dev libsqlite3-0 libgtest-dev libgmock-dev libbenchmark-dev libbenchmark1debian
      libcli11-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libxxhash-dev libxxhash0
      libhiredis-dev libhiredis0.14 libminizip-dev libminizip1 zlib1g-dev)
(cd .debs && apt-get download "${PKGS[@]}")
du -sh .debs
