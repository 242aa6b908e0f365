#!/usr/bin/env bash
# Install what vvfs needs to build, run and test, from Debian 12 packages only.
set -euo pipefail
pkgs=(meson ninja-build pkg-config gcc libfuse3-dev fuse3 liblmdb-dev lmdb-utils libxxhash-dev
      libcriterion-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
      libssl-dev e2fsprogs util-linux fio procps psmisc kmod jq curl clang libclang-rt-14-dev
      iproute2 libzstd-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
