#!/usr/bin/env bash
# The GPU machine's runs of issue 9: onnxruntime-gpu carried in parts, then the CUDA checks and figures.
#   bash tests/bench/device_ort_cuda.sh part N   # keep this call's .ortpart as part N (consecutive warm calls)
#   bash tests/bench/device_ort_cuda.sh run      # join + check + install; probe; CUDA runs; benches
#   bash tests/bench/device_ort_cuda.sh verify   # mlperf-wizard verify of every cell there, exported
# The parts: split -b 50000000 -d onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl, each copied
# to .ortpart (gitignored) for its call. A warm device machine keeps /tmp between consecutive calls.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
WHEEL=onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
SHA=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7
log() { echo "== $(date +%T) $*" | tee -a "$OUT/steps.txt"; }
case "$1" in
part)
  mkdir -p /tmp/ortparts && cp .ortpart "/tmp/ortparts/part$2" && ls -la /tmp/ortparts; exit 0 ;;
esac
[ -d /tmp/site/mlperf_loadgen ] || pip install -q --no-deps --target /tmp/site .wheels312/*.whl >/tmp/pip.txt 2>&1
if [ ! -d /tmp/ortgpu/onnxruntime ]; then
  cat /tmp/ortparts/part* > "/tmp/$WHEEL"
  echo "$SHA  /tmp/$WHEEL" | sha256sum -c - || { log "wheel sha256 mismatch"; exit 1; }
  pip install -q --no-deps --target /tmp/ortgpu "/tmp/$WHEEL" >>/tmp/pip.txt 2>&1 || { log "install failed"; exit 1; }
fi
export PYTHONPATH=/tmp/ortgpu:/tmp/site:$PWD MLPERF_WIZARD_HOME=/tmp/mwh
python3 - >"$OUT/ort_probe.txt" 2>&1 <<'PY'
import onnxruntime as ort
print(ort.__version__, ort.get_available_providers())
ort.preload_dlls()
ort.print_debug_info()
PY
log "probe rc=$?"
run() {  # run NAME ARGS...: one mlperf-wizard run, appended to $OUT/runs.txt
  local name=$1; shift; log "run $name"; echo "######## $name: $*" >>"$OUT/runs.txt"
  timeout "${RUN_TIMEOUT:-240}" python3 -m wizard run --backend onnxruntime --scenario Offline SingleStream \
    --mode both --style short "$@" >>"$OUT/runs.txt" 2>&1; log "run $name rc=$?"
}
if [ "$1" = verify ]; then
  log verify; MLPERF_WIZARD_SYNTHETIC_VARIANT=tiny timeout "${VERIFY_TIMEOUT:-500}" python3 -m wizard verify --json \
    >"$OUT/verify.json" 2>"$OUT/verify_err.txt"; log "verify rc=$?"
  python3 -m wizard coverage --export "$OUT/h200-16core.json" --machine-name h200-16core --force; log "export rc=$?"
  exit 0
fi
# In the order that matters most: the whole call stops at 600 s, keeping what is in $OUT.
run resnet50_cuda --device cuda --model resnet50 --dataset-size 64
log bench-ort-cuda; timeout 150 python3 tests/bench/bench_overhead.py --backend onnxruntime --device cuda \
  --batch 64 --samples 4096 --rounds 2 --queries 200 >"$OUT/bench_ort_cuda.txt" 2>&1; log "bench rc=$?"
# Where the RetinaNet time goes: per-image latency on CUDA, cuDNN's algorithm search and placements.
timeout 120 python3 tests/bench/ort_cuda_retinanet.py --calls 3 >"$OUT/retinanet_probe.txt" 2>&1
log "retinanet probe rc=$?"
log bench-cpu; timeout 200 python3 tests/bench/bench_backends.py --backends onnxruntime pytorch --threads 16 \
  --rounds 2 --seconds 6 >"$OUT/bench_cpu16.txt" 2>&1; log "bench rc=$?"
RUN_TIMEOUT=150 run bert_cuda --device cuda --model bert --dataset-size 32
RUN_TIMEOUT=120 run retinanet_cuda --device cuda --model retinanet --dataset-size 16 --test-query-count 64
