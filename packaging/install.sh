#!/bin/sh
# Install urunc under $PREFIX: the package (stdlib only, plus one C extension) in lib/urunc/python, entry points
# started by a real interpreter with -I -S (no site scan: ~5 ms less on every call), the shim
# wrapper, and the guest-side files (the Linux guest's init and modules).
set -eu
PYTHON=${PYTHON:-/usr/bin/python3}
PREFIX=${PREFIX:-/usr/local}
BUILD=${BUILD:-build}
LIB=$PREFIX/lib/urunc
here=$(cd "$(dirname "$0")/.." && pwd)

interp=$($PYTHON -c 'import os, sys; print(os.path.realpath(sys.executable))')
"$interp" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' || {
  echo "urunc needs Python 3.11 or newer; $interp is older" >&2; exit 1; }

mkdir -p "$LIB" "$PREFIX/bin" "$LIB/shim-bin" "$LIB/guest"
staging=$(mktemp -d "$LIB/.python.XXXXXX")
trap 'rm -rf "$staging"' EXIT
cp -r "$here/src/urunc" "$staging/urunc"
find "$staging" -name __pycache__ -prune -exec rm -rf {} +
# The Linux calls os lacks, as a C extension: ctypes would cost every container init ~4.5 ms.
cc=${CC:-gcc}
pyinc=$("$interp" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
ext=$("$interp" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
"$cc" -O2 -Wall -Wextra -Werror -Wno-unused-parameter -shared -fPIC -I"$pyinc" \
  -o "$staging/urunc/host/_linux$ext" "$here/src/urunc/host/_linux.c"
rm "$staging/urunc/host/_linux.c"
"$interp" -I -S -m compileall -q "$staging" >/dev/null
rm -rf "$LIB/python.old"
[ -d "$LIB/python" ] && mv "$LIB/python" "$LIB/python.old"
mv "$staging" "$LIB/python"
rm -rf "$LIB/python.old"
trap - EXIT

entry() {  # entry PATH MODULE FUNCTION [PRELUDE]
  tmp="$(dirname "$1")/.$(basename "$1").tmp"
  cat > "$tmp" <<PY
#!$interp -IS
${4:-}import sys
sys.path.insert(0, "$LIB/python")
from $2 import $3
raise SystemExit($3())
PY
  chmod 755 "$tmp"
  mv "$tmp" "$1"
}
# The runtime's processes live for one command (or, the init, until it execs the monitor)
# and make no garbage cycles worth collecting: no cyclic GC (-0.7 ms per create here).
nogc='import gc
gc.disable()
'
entry "$LIB/urunc-py" urunc.cli entry "$nogc"
entry "$LIB/urunc-init" urunc.init main "$nogc"
entry "$PREFIX/bin/urunc-build" urunc.image.cli main

# `urunc` itself is a small C front end: `state`, `start`, a stopped container's `delete` and
# create's init natively, the rest handed to urunc-py.
# Its constants are Python's: the start timeout and the container ID rule (tests/helpers/front.py
# builds it the same way).
defines=$("$interp" -I -S -c 'import sys; sys.path.insert(0, sys.argv[1])
from urunc.lifecycle import front_end_defines; print(" ".join(front_end_defines()))' "$LIB/python")
# shellcheck disable=SC2086 # one word per -D, none with a space (front_end_defines)
"$cc" -O2 -Wall -Wextra -Werror -DURUNC_PY="\"$LIB/urunc-py\"" -DURUNC_INIT="\"$LIB/urunc-init\"" \
  $defines -o "$PREFIX/bin/.urunc.tmp" "$here/src/front/urunc.c"
mv "$PREFIX/bin/.urunc.tmp" "$PREFIX/bin/urunc"

install -m 755 "$here/packaging/containerd-shim-urunc-v2" "$PREFIX/bin/containerd-shim-urunc-v2"
# Configuration snippets for the entry points (docs/entry-points.md); nothing in /etc is touched.
mkdir -p "$PREFIX/share/urunc"
install -m 644 "$here/packaging/containerd/urunc-cri.toml" "$here/packaging/docker/daemon.json" "$PREFIX/share/urunc/"
ln -sfn "$PREFIX/bin/urunc" "$LIB/shim-bin/runc"

for f in urunc-init vmlinux; do
  [ -f "$BUILD/linux/$f" ] && install -m 755 "$BUILD/linux/$f" "$LIB/guest/$f"
done
if [ -d "$BUILD/linux/modules" ]; then
  rm -rf "$LIB/guest/modules"
  cp -r "$BUILD/linux/modules" "$LIB/guest/modules"
fi
echo "installed urunc in $PREFIX (interpreter $interp)"
