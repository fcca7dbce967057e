#!/bin/sh
# Host vs emulated-arm64 logits for the demo's three ONNX artifacts, over several emulated cores and both
# qemus (run devtools/arm64/setup.sh first; artifacts from `slmkit quantize --format onnx --quant fp32,int8,int4`).
TOOLS=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$TOOLS/../.." && pwd)
STATE="${SLMKIT_ARM64_STATE:-$REPO/out/arm64}"
D=${DEMO:-$REPO/out/slmkit-demo}
cd "$STATE" || exit 2
mkdir -p results
for q in int8 int4 fp32; do
  nice -n 19 "$REPO/.venv/bin/python" "$TOOLS/probe.py" "$D/slmkit-demo-$q.onnx" "results/host-$q.npz" >/dev/null || exit 2
done
for qemu in q10 q72; do
  [ $qemu = q10 ] && Q=$STATE/qemu10/qemu-aarch64 || Q=qemu-aarch64-static
  [ -x "$(command -v "$Q")" ] || continue
  for cpu in ${CPUS:-max max,sme=off neoverse-n1 cortex-a72 cortex-a53}; do
    for q in int8 int4 fp32; do
      s=$(date +%s.%N)
      QEMU=$Q QEMU_CPU=$cpu nice -n 19 ./py-arm64 "$TOOLS/probe.py" "$D/slmkit-demo-$q.onnx" "results/$qemu-$cpu-$q.npz" \
        >/dev/null 2>"results/$qemu-$cpu-$q.err" || echo "FAILED $qemu $cpu $q"
      echo "$qemu $cpu $q wall $(echo "$(date +%s.%N) - $s" | bc | cut -c1-5)s" >> results/wall.txt
    done
  done
done
for q in int8 int4 fp32; do echo "== $q"; "$REPO/.venv/bin/python" "$TOOLS/compare.py" "results/host-$q.npz" results/q*-$q.npz; done
