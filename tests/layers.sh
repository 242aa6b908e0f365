#!/usr/bin/env bash
# layers.sh SRCDIR BUILDDIR — the layer rules of docs/ARCHITECTURE.md ("Layers"), checked:
#   1. every #include "dir/..." of a module names itself or a layer it may depend on;
#   2. the static libraries agree: fs/ references nothing of api/ (nor its HTTP/JSON
#      libraries), api/ nothing of fs/ (nor libfuse; it does call replication/, whose sessions
#      it serves), replication/ nothing of either, meta/ and util/ nothing above them.
# Fails (exit 1) naming each violation.
set -euo pipefail
src=${1:?usage: layers.sh SRCDIR BUILDDIR}
build=${2:?usage: layers.sh SRCDIR BUILDDIR}
bad=0

# module -> the modules it may include (besides itself)
declare -A may=(
    [util]=""
    [meta]="util"
    [fs]="meta util"
    [api]="replication meta util"
    [replication]="meta util"
    [daemon]="fs api replication meta util"
    [cli]="daemon replication meta util"
)
for mod in "${!may[@]}"; do
    [ -d "$src/$mod" ] || { echo "layers: $src/$mod is missing" >&2; bad=1; continue; }
    while IFS= read -r hit; do
        file=${hit%%:*}
        inc=$(sed -E 's/.*#[[:space:]]*include[[:space:]]*"([^"/]+)\/.*/\1/' <<<"$hit")
        [ "$inc" = "$mod" ] && continue
        case " ${may[$mod]} " in
        *" $inc "*) ;;
        *)
            echo "layers: ${file#"$src"/} includes $inc/: $mod/ may include only ${may[$mod]:-nothing}" >&2
            bad=1
            ;;
        esac
    done < <(grep -HE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"/]+/' "$src/$mod"/*.[ch] || true)
done

# undefined symbols of a static library that match a pattern
undef() { nm -u --no-sort "$1" 2>/dev/null | awk '{ print $NF }' | grep -E "$2" | sort -u || true; }
check_lib() # LIB FORBIDDEN-REGEX WHY
{
    local lib=$1 syms
    if [ ! -f "$lib" ]; then
        echo "layers: $lib is not built" >&2
        bad=1
        return
    fi
    syms=$(undef "$lib" "$2")
    if [ -n "$syms" ]; then
        echo "layers: ${lib#"$build"/} uses $3: $(tr '\n' ' ' <<<"$syms")" >&2
        bad=1
    fi
}
check_lib "$build/fs/libvvfsd.a" '^(vv_api_|MHD_|json_|curl_)' "the control plane"
check_lib "$build/api/libvvapi.a" '^(vv_fs_|fs_|fuse_|vv_daemon_)' "the FUSE side"
check_lib "$build/replication/libvvrepl.a" '^(vv_fs_|fs_|fuse_|vv_api_|MHD_|json_|vv_daemon_)' "a sibling or a layer above it"
check_lib "$build/meta/libvvmeta.a" '^(vv_fs_|fs_|fuse_|vv_api_|MHD_|json_|vv_daemon_|wire_)' "a layer above it"
check_lib "$build/util/libvvutil.a" '^(vv_pool_|vv_vol_|vv_volume_|vv_fs_|vv_api_|fuse_|MHD_|mdb_)' "a layer above it"

if [ "$bad" = 0 ]; then
    echo "layers: ok"
fi
exit "$bad"
