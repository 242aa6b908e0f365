#!/usr/bin/env bash
# Skeleton: install dependencies and build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build
