#!/usr/bin/env bash
# The GPU machine's runs of issue 9: onnxruntime-gpu, and tensorflow-cpu + apache-tvm with their dependencies,
# carried in parts over consecutive warm calls (a warm device machine keeps /tmp between them), then the checks.
#   bash tests/bench/device_ort_cuda.sh part N    # keep this call's .ortpart as part N of onnxruntime-gpu
#   bash tests/bench/device_ort_cuda.sh xpart N   # keep this call's .xpart as part N of the X bundle
#   bash tests/bench/device_ort_cuda.sh run       # install; probe; the RetinaNet profile; CUDA runs; CUDA bench
#   bash tests/bench/device_ort_cuda.sh cpu16     # ResNet50 Offline per backend on the host's 16 CPU cores
#   VERIFY_BACKENDS="onnxruntime pytorch" bash tests/bench/device_ort_cuda.sh verify   # verify those cells
#   bash tests/bench/device_ort_cuda.sh export    # this machine's record of every cell, as h200-16core.json
#   ORTPART=04 bash tests/bench/device_ort_cuda.sh retina   # RetinaNet on ONNX Runtime CUDA: stages, profile, run
# The onnxruntime-gpu parts: split -b 62000000 -d onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl.
# The X bundle: a tar of wheels/ (tensorflow-cpu 2.21.0 and apache-tvm 0.27.0.post1 for cp312, with their
# runtime dependencies and a SHA256SUMS), split the same way; XSHA names the whole tar's sha256. Each part
# is copied to .ortpart / .xpart (gitignored) for its call; any call may carry a part and do work.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
WHEEL=onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
SHA=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7
log() { echo "== $(date +%T) $*" | tee -a "$OUT/steps.txt"; }
keep() {  # keep FILE DIR N: this call's part N of a bundle
  [ -f "$1" ] && mkdir -p "$2" && cp "$1" "$2/part$3" && ls -la "$2" >>"$OUT/steps.txt"
}
case "$1" in
part) keep .ortpart /tmp/ortparts "$2"; [ -f .xpart ] && keep .xpart /tmp/xparts "${3:-}"; exit 0 ;;
xpart) keep .xpart /tmp/xparts "$2"; exit 0 ;;
esac
[ -f .xpart ] && [ -n "${XPART:-}" ] && keep .xpart /tmp/xparts "$XPART"
[ -f .ortpart ] && [ -n "${ORTPART:-}" ] && keep .ortpart /tmp/ortparts "$ORTPART"
[ -d /tmp/site/mlperf_loadgen ] || pip install -q --no-deps --target /tmp/site .wheels312/*.whl >/tmp/pip.txt 2>&1
if [ ! -d /tmp/ortgpu/onnxruntime ]; then
  cat /tmp/ortparts/part* > "/tmp/$WHEEL"
  echo "$SHA  /tmp/$WHEEL" | sha256sum -c - || { log "onnxruntime-gpu wheel sha256 mismatch"; exit 1; }
  pip install -q --no-deps --target /tmp/ortgpu "/tmp/$WHEEL" >>/tmp/pip.txt 2>&1 || { log "install failed"; exit 1; }
fi
if [ ! -d /tmp/xsite/tensorflow ] && [ -n "${XSHA:-}" ] && [ -d /tmp/xparts ]; then
  cat /tmp/xparts/part* > /tmp/xbundle.tar
  if echo "$XSHA  /tmp/xbundle.tar" | sha256sum -c - >>"$OUT/steps.txt" 2>&1; then
    mkdir -p /tmp/xb && tar xf /tmp/xbundle.tar -C /tmp/xb && (cd /tmp/xb/wheels && sha256sum -c --quiet SHA256SUMS) &&
      pip install -q --no-deps --target /tmp/xsite $(ls /tmp/xb/wheels/*.whl | grep -v /protobuf-) \
        >>/tmp/pip.txt 2>&1
    log "X bundle installed rc=$?"
    # The host's protobuf serves its onnx; TensorFlow 2.21 needs 6.31.1 or newer: the bundle's only if older.
    python3 -c "import google.protobuf as p, sys; v = tuple(map(int, p.__version__.split('.')[:2])); \
sys.exit(v < (6, 31))" || pip install -q --no-deps --target /tmp/pbsite /tmp/xb/wheels/protobuf-*.whl >>/tmp/pip.txt 2>&1
  else
    log "X bundle incomplete: $(ls /tmp/xparts | tr '\n' ' ')"
  fi
fi
export PYTHONPATH=/tmp/ortgpu:/tmp/site:/tmp/xsite:/tmp/pbsite:$PWD MLPERF_WIZARD_HOME=/tmp/mwh
run() {  # run NAME ARGS...: one mlperf-wizard run, appended to $OUT/runs.txt
  local name=$1; shift; log "run $name"; echo "######## $name: $*" >>"$OUT/runs.txt"
  timeout "${RUN_TIMEOUT:-240}" python3 -m wizard run --backend onnxruntime --scenario Offline SingleStream \
    --mode both --style short "$@" >>"$OUT/runs.txt" 2>&1; log "run $name rc=$?"
}
case "$1" in
retina)
  log cut; timeout 150 python3 tests/bench/ort_cuda_cut.py --calls 5 >"$OUT/ort_cuda_cut.txt" 2>&1; log "cut rc=$?"
  timeout 120 python3 tests/bench/ort_cuda_retinanet.py --calls 5 >"$OUT/retinanet_latency.txt" 2>&1
  log "retinanet latency rc=$?"
  RUN_TIMEOUT=200 run retinanet_cuda --device cuda --model retinanet --dataset-size 16 --test-query-count 64
  RUN_TIMEOUT=120 run retinanet_cuda_fp16 --device cuda --model retinanet --precision fp16 --dataset-size 16 \
    --test-query-count 64
  exit 0 ;;
cpu16)
  log bench-cpu16; timeout "${BENCH_TIMEOUT:-420}" python3 tests/bench/bench_backends.py \
    --backends ${BENCH_BACKENDS:-onnxruntime pytorch tensorflow} --threads 16 --rounds 2 --seconds 6 \
    >"$OUT/bench_cpu16.txt" 2>&1; log "bench rc=$?"; exit 0 ;;
verify)
  log "verify ${VERIFY_BACKENDS:-all}"
  MLPERF_WIZARD_SYNTHETIC_VARIANT=tiny timeout "${VERIFY_TIMEOUT:-540}" python3 -m wizard verify --json \
    ${VERIFY_BACKENDS:+--backend $VERIFY_BACKENDS} >"$OUT/verify.json" 2>"$OUT/verify_err.txt"; log "verify rc=$?"
  [ -n "${EXPORT:-}" ] || exit 0 ;&
export)
  python3 -m wizard coverage --export "$OUT/h200-16core.json" --machine-name h200-16core --force; log "export rc=$?"
  python3 -m wizard coverage >"$OUT/coverage.txt" 2>&1; exit 0 ;;
esac
python3 - >"$OUT/ort_probe.txt" 2>&1 <<'PY'
import onnxruntime as ort
print(ort.__version__, ort.get_available_providers())
ort.preload_dlls()
ort.print_debug_info()
PY
log "probe rc=$?"
# Where the RetinaNet time goes: ONNX Runtime's profile of the CUDA session, with the cuDNN that preload_dlls
# finds and with torch's (imported first); then the latency per cuDNN algorithm search setting.
timeout 90 python3 tests/bench/ort_cuda_retinanet.py --calls 3 --profile-only >"$OUT/retinanet_profile.txt" 2>&1
log "retinanet profile rc=$?"
timeout 90 python3 tests/bench/ort_cuda_retinanet.py --calls 3 --profile-only --torch-first \
  >"$OUT/retinanet_profile_torch_first.txt" 2>&1; log "retinanet profile (torch first) rc=$?"
# In the order that matters most: the whole call stops at 600 s, keeping what is in $OUT.
run resnet50_cuda --device cuda --model resnet50 --dataset-size 64
RUN_TIMEOUT=150 run bert_cuda --device cuda --model bert --dataset-size 32
log bench-ort-cuda; timeout 100 python3 tests/bench/bench_overhead.py --backend onnxruntime --device cuda \
  --batch 64 --samples 4096 --rounds 1 --queries 200 >"$OUT/bench_ort_cuda.txt" 2>&1; log "bench rc=$?"
RUN_TIMEOUT=150 run retinanet_cuda --device cuda --model retinanet --dataset-size 16 --test-query-count 64
