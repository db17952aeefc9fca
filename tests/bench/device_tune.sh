#!/usr/bin/env bash
# Issue 10 on the GPU machine: its 16 CPU cores, then its H200 (each mode fits one device call).
#   bash tests/bench/device_tune.sh offline   # direct sweep, first tune, project vs MLCommons reference (CPU)
#   bash tests/bench/device_tune.sh server    # Server search vs a manual sweep of rates (CPU)
#   bash tests/bench/device_tune.sh cuda      # the same with pytorch on the H200
# Runs from .head.tar (`git archive HEAD`: what is committed, not a working tree in flux), with .wheels312/
# (what the device lacks) and .vendor-ref/ (the unmodified reference harness, copied from ../shared/vendor).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
[ -d /tmp/site/mlperf_loadgen ] || pip install -q --no-deps --target /tmp/site .wheels312/*.whl >/tmp/pip.txt 2>&1
REF=$PWD/.vendor-ref/vision/classification_and_detection/python
if [ -f .head.tar ]; then rm -rf /tmp/head && mkdir -p /tmp/head && tar xf .head.tar -C /tmp/head && cd /tmp/head; fi
export PYTHONPATH=/tmp/site:$PWD
log() { echo "== $(date +%T) $*" | tee -a "$OUT/steps.txt"; }
lscpu | grep -E "Model name|^CPU\(s\)" >"$OUT/machine.txt"; nproc >>"$OUT/machine.txt"
case "$1" in
offline)
  log offline; timeout 560 python3 tests/bench/bench_tune.py --images 1024 --seconds 15 --rounds 2 --sweep-seconds 2 \
    --reference "$REF" --work /tmp/bt >"$OUT/bench_tune_offline.txt" 2>&1; log "offline rc=$?" ;;
server)
  log server; timeout ${T:-560} python3 tests/bench/bench_tune.py --server-only --work /tmp/bs \
    >"$OUT/bench_tune_server_cpu.txt" 2>&1; log "server rc=$?" ;;
cuda)
  log cuda; timeout ${T:-560} python3 tests/bench/bench_tune.py --server-only --backend pytorch --device cuda --work /tmp/bc \
    >"$OUT/bench_tune_server_cuda.txt" 2>&1; log "cuda rc=$?" ;;
esac
tar czf "$OUT/homes.tgz" -C /tmp $(cd /tmp && ls -d bt/home/state bs/home/state bc/home/state 2>/dev/null) 2>/dev/null
exit 0
