#!/bin/sh
# Fetch the Debian kernel that linux-image-amd64 depends on, extract the
# uncompressed vmlinux (PVH-bootable, boots much faster under TCG than the
# compressed bzImage) and the virtio modules a urunc Linux guest needs.
#
# Usage: guests/linux/fetch-kernel.sh [BUILD_DIR]   (default: build/linux)
# Idempotent: does nothing when BUILD_DIR/vmlinux and the same module list exist.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/build/linux}
mkdir -p "$out"
out=$(cd "$out" && pwd)

modules="virtio_mmio virtio_pci pvpanic_mmio virtio_net virtio_blk 9pnet_virtio 9p crc32c_generic ext4 virtio_console"
if [ -s "$out/vmlinux" ] && [ -s "$out/modules/order" ] && [ -s "$out/kernel-release" ] \
   && [ "$(cat "$out/modules/wanted" 2>/dev/null)" = "$modules" ]; then
    echo "fetch-kernel: $out already populated ($(cat "$out/kernel-release"))"
    exit 0
fi

pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
[ -n "$pkg" ] || { echo "fetch-kernel: cannot resolve linux-image-amd64 (run apt-get update)" >&2; exit 1; }
release=${pkg#linux-image-}
echo "fetch-kernel: $pkg"

dl="$out/deb"
mkdir -p "$dl"
if ! ls "$dl"/"${pkg}"_*.deb >/dev/null 2>&1; then
    (cd "$dl" && apt-get download "$pkg")
fi
rm -rf "$out/pkg"
dpkg-deb -x "$dl"/"${pkg}"_*.deb "$out/pkg"

python3 "$here/extract-vmlinux.py" "$out/pkg/boot/vmlinuz-$release" "$out/vmlinux.tmp"
mv "$out/vmlinux.tmp" "$out/vmlinux"
cp "$out/pkg/boot/config-$release" "$out/config"

# shellcheck disable=SC2086 # the module names are words
python3 "$here/collect-modules.py" "$out/pkg/lib/modules/$release" "$out/modules" $modules
echo "$modules" > "$out/modules/wanted"
echo "$release" > "$out/kernel-release"
rm -rf "$out/pkg"  # 400 MB; the .deb stays in $out/deb for a re-run
echo "fetch-kernel: done: $out/vmlinux, $(wc -l < "$out/modules/order") modules"
