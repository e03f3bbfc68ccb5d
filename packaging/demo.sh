#!/bin/sh
# Run the sample unikernel end to end: containerd → containerd-shim-urunc-v2 → urunc → QEMU.
# Uses the containerd answering on $CONTAINERD_ADDRESS (default: the standard socket), or,
# on the standard socket only, starts one of its own. Namespace: $CONTAINERD_NAMESPACE
# (default urunc-demo). Prints the command it runs, runs it, and exits with its status.
set -eu
archive=$1
image=$2
default_sock=/run/containerd/containerd.sock
sock=${CONTAINERD_ADDRESS:-$default_sock}
ns=${CONTAINERD_NAMESPACE:-urunc-demo}

if ! ctr --address "$sock" version >/dev/null 2>&1; then
  if [ "$sock" != "$default_sock" ]; then
    echo "demo: no containerd answers on $sock" >&2
    exit 1
  fi
  echo "demo: no containerd answers on $sock; starting one (log: /var/log/urunc-demo-containerd.log)"
  mkdir -p /var/log
  setsid containerd >/var/log/urunc-demo-containerd.log 2>&1 < /dev/null &
  i=0
  until ctr --address "$sock" version >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then
      echo "demo: containerd did not start; see /var/log/urunc-demo-containerd.log" >&2
      exit 1
    fi
    sleep 0.2
  done
fi
ctr --address "$sock" -n "$ns" image import "$archive" >/dev/null
id=urunc-demo-$$

# The command, built once: what is printed is what runs.
set -- ctr --address "$sock" -n "$ns" run --rm --runtime io.containerd.urunc.v2 --env GREETING=hi \
  "$image" "$id" hello "from urunc"
shown=demo:
for arg in "$@"; do
  case $arg in
    *[!A-Za-z0-9_./:=@%+,-]*|'') shown="$shown '$(printf '%s' "$arg" | sed "s/'/'\\\\''/g")'" ;;
    *) shown="$shown $arg" ;;
  esac
done
echo "$shown"
status=0
"$@" || status=$?
echo "demo: exit status $status"
exit "$status"
