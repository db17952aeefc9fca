#!/usr/bin/env bash
# The GPU machine's measurements of issue 8, in the order that matters most (each writes to $OUT as it goes).
#   bash tests/bench/device_gpu.sh verify    # CUDA tests; the three models' runs on cuda and cpu; coverage
#   bash tests/bench/device_gpu.sh bench     # eager ResNet50 per precision, BERT, RetinaNet: harness vs direct
#   bash tests/bench/device_gpu.sh compile   # torch.compile max-autotune ResNet50, with Dynamo's recompile log
# Needs the cp312 wheels of what the device lacks in .wheels312/ (see MLPERF_FACTS.md). Few files come back
# from a device call (8): the runs' outputs are appended to one file, runs.txt.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
[ -d /tmp/site/mlperf_loadgen ] || pip install -q --no-deps --target /tmp/site .wheels312/*.whl >/tmp/pip.txt 2>&1
export PYTHONPATH=/tmp/site:$PWD MLPERF_WIZARD_HOME=/tmp/mwh
log() { echo "== $(date +%T) $*" | tee -a "$OUT/steps.txt"; }
run() {  # run NAME ARGS...: one mlperf-wizard run, its output appended to $OUT/runs.txt
  local name=$1; shift; log "run $name"; echo "######## $name: $*" >>"$OUT/runs.txt"
  python3 -m wizard run --backend pytorch --scenario Offline SingleStream --mode both --style short "$@" \
    >>"$OUT/runs.txt" 2>&1; log "run $name rc=$?"
}
case "${1:-verify}" in
verify)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >>"$OUT/gpu.txt" 2>&1
  nproc >>"$OUT/gpu.txt"
  [ -n "${SKIP_PYTEST:-}" ] || { log pytest; python3 -m pytest -q -p no:cacheprovider tests/test_pytorch_backend.py \
    tests/test_gpu_monitor.py -k "cuda or staged or gpu or compile" >"$OUT/pytest_cuda.txt" 2>&1; log "pytest rc=$?"; }
  # The accuracy runs go through a small dataset (short runs default to 500): enough to check the path.
  for m in resnet50 retinanet bert; do run "${m}_cuda" --device cuda --model "$m" --dataset-size 64; done
  run resnet50_cpu --device cpu --model resnet50 --dataset-size 32 --test-query-count 32
  run bert_cpu --device cpu --model bert --dataset-size 8 --test-query-count 8
  run retinanet_cpu --device cpu --model retinanet --dataset-size 4 --test-query-count 4
  COLUMNS=110 python3 -m wizard coverage >"$OUT/coverage.txt" 2>&1; log "coverage rc=$?"
  ;;
bench)
  log bench-eager; python3 tests/bench/bench_torch_gpu.py --model resnet50 --batch 256 --seconds 20 \
    --precisions "${PRECISIONS:-fp16,bf16,tf32,fp32}" --singlestream >"$OUT/bench_resnet_eager.txt" 2>&1; log "bench rc=$?"
  [ -n "${RESNET_ONLY:-}" ] && exit 0
  log bench-bert; python3 tests/bench/bench_torch_gpu.py --model bert --batch 64 --seconds 20 \
    --precisions fp16 >"$OUT/bench_bert.txt" 2>&1; log "bench rc=$?"
  log bench-retinanet; python3 tests/bench/bench_torch_gpu.py --model retinanet --batch 8 --seconds 30 \
    --precisions fp16 >"$OUT/bench_retinanet.txt" 2>&1; log "bench rc=$?"
  ;;
compile)
  log bench-compile; TORCH_LOGS=recompiles,graph_breaks python3 tests/bench/bench_torch_gpu.py --model resnet50 \
    --batch 256 --seconds 10 --precisions fp16 --compile max-autotune >"$OUT/bench_resnet_compile.txt" 2>&1
  log "bench rc=$?"
  newest=$(ls -td /tmp/mwh/results/*/ | head -1)
  find "$newest" -name run.log -exec tail -c 20000 {} \; >"$OUT/compile_run_log.txt" 2>&1
  ;;
esac
