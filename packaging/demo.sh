#!/bin/sh
# Run the sample unikernel end to end: containerd → containerd-shim-urunc-v2 → urunc → QEMU.
# Uses the containerd answering on the default socket, or starts one of its own.
set -eu
archive=$1
image=$2
sock=/run/containerd/containerd.sock
ns=urunc-demo

if ! ctr --address "$sock" version >/dev/null 2>&1; then
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
ctr --address "$sock" -n $ns image import "$archive" >/dev/null
id=urunc-demo-$$
echo "demo: ctr run --rm --runtime io.containerd.urunc.v2 $image $id hello 'from urunc'"
ctr --address "$sock" -n $ns run --rm --runtime io.containerd.urunc.v2 --env GREETING=hi \
  "$image" "$id" hello "from urunc"
echo "demo: exit status $?"
