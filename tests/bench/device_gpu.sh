#!/usr/bin/env bash
# The GPU machine's measurements of issue 8, in the order that matters most (each writes to $OUT as it goes).
#   bash tests/bench/device_gpu.sh runs      # CUDA tests, the three models' runs, coverage, eager bench
#   bash tests/bench/device_gpu.sh compile   # torch.compile max-autotune bench, BERT and RetinaNet bench
# Needs the cp312 wheels of what the device lacks in .wheels312/ (see MLPERF_FACTS.md).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
[ -d /tmp/site/mlperf_loadgen ] || pip install -q --no-deps --target /tmp/site .wheels312/*.whl >"$OUT/pip.txt" 2>&1
export PYTHONPATH=/tmp/site:$PWD MLPERF_WIZARD_HOME=/tmp/mwh
log() { echo "== $(date +%T) $*" | tee -a "$OUT/steps.txt"; }
if [ "${1:-runs}" = runs ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >>"$OUT/gpu.txt" 2>&1
  log pytest; python3 -m pytest -q -p no:cacheprovider tests/test_pytorch_backend.py tests/test_gpu_monitor.py \
    -k "cuda or staged or gpu or compile" >"$OUT/pytest_cuda.txt" 2>&1; log "pytest rc=$?"
  for m in resnet50 retinanet bert; do
    log "run $m"
    python3 -m wizard run --backend pytorch --device cuda --model "$m" --scenario Offline SingleStream \
      --mode both --style short >"$OUT/${m}_run.txt" 2>&1; log "run $m rc=$?"
  done
  COLUMNS=100 python3 -m wizard coverage >"$OUT/coverage.txt" 2>&1; log "coverage rc=$?"
  log bench-eager; python3 tests/bench/bench_torch_gpu.py --model resnet50 --batch 256 --seconds 8 \
    --precisions fp16,bf16,tf32,fp32 --singlestream >"$OUT/bench_resnet_eager.txt" 2>&1; log "bench rc=$?"
else
  log bench-compile; python3 tests/bench/bench_torch_gpu.py --model resnet50 --batch 256 --seconds 8 \
    --precisions fp16 --compile max-autotune >"$OUT/bench_resnet_compile.txt" 2>&1; log "bench rc=$?"
  log bench-bert; python3 tests/bench/bench_torch_gpu.py --model bert --batch 64 --seconds 8 \
    --precisions fp16 >"$OUT/bench_bert.txt" 2>&1; log "bench rc=$?"
  log bench-retinanet; python3 tests/bench/bench_torch_gpu.py --model retinanet --batch 8 --seconds 8 \
    --precisions fp16 >"$OUT/bench_retinanet.txt" 2>&1; log "bench rc=$?"
  COLUMNS=100 python3 -m wizard coverage >"$OUT/coverage_after.txt" 2>&1
fi
