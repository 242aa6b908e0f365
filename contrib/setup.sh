#!/usr/bin/env bash
# Set up and run vvfs on this machine (Debian 12, as root), idempotently:
#   1. install build and run dependencies (Debian packages only)
#   2. build (meson/ninja) and install the `vvfs` command into /usr/local/bin
#   3. create the default pool /var/lib/vvfs/default (if there is none)
#   4. mount it at /mnt/vvfs (if it is not mounted)
#   5. create a 10G thin demo volume "demo" (if there is none)
# Environment: VVFS_POOL_DIR, VVFS_MOUNT, VVFS_CAPACITY (e.g. 100G; default: free space of the
# filesystem holding the pool) override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
pool=${VVFS_POOL_DIR:-/var/lib/vvfs/default}
mnt=${VVFS_MOUNT:-/mnt/vvfs}

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: run as root (FUSE mounts and loop devices need it)" >&2
    exit 1
fi
bash contrib/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build
install -m 0755 build/cli/vvfs /usr/local/bin/vvfs

if [ ! -f "$pool/meta.mdb" ]; then
    mkdir -p "$(dirname "$pool")"
    if [ -n "${VVFS_CAPACITY:-}" ]; then
        vvfs init "$pool" --capacity "$VVFS_CAPACITY"
    else
        vvfs init "$pool"
    fi
fi
mkdir -p "$mnt"
if ! findmnt -rn -t fuse.vvfs "$mnt" >/dev/null 2>&1; then
    vvfs mount "$pool" "$mnt"
fi
if ! vvfs --pool "$pool" volume show demo >/dev/null 2>&1; then
    vvfs --pool "$pool" volume create demo 10G
fi
echo
vvfs --pool "$pool" status
echo
echo "vvfs is running: pool $pool mounted at $mnt; volumes are files in $mnt/volumes/."
echo "Try: losetup -f --show --direct-io=on $mnt/volumes/demo"
