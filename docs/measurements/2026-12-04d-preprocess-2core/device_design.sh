# Device measurements for the preprocessing design (2 pinned cores and 16), written to $OUT as they go.
# As it ran from build/prep-exp/ (ignored): exp.py and mkimgs.py there are device_design_exp.py and
# device_design_images.py here. nohelp/ and help/ held copies of harness/: nohelp/ this commit's preparation
# code (but for docstrings, error texts and the threshold, which every run overrides); help/ a variant
# dropped since (the parent prepared images itself while the workers started). site/ held platformdirs.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
S=$PWD/build/prep-exp/site
L=$OUT/exp.txt
{ python3 --version; python3 -c "import cv2, numpy, onnxruntime; print('opencv', cv2.__version__, 'numpy', numpy.__version__, 'ort', onnxruntime.__version__)"; nproc; uname -r
  taskset -c 0,1 python3 -c "import os; print('affinity', sorted(os.sched_getaffinity(0)))"
  python3 - <<'PY'
import subprocess, time
t = time.perf_counter()
ps = [subprocess.Popen(["taskset", "-c", "0,1", "python3", "-c", "import time\nt=time.process_time()\nwhile time.process_time()-t<0.5: pass"]) for _ in range(4)]
[p.wait() for p in ps]
print(f"4 busy loops of 0.5 s CPU under taskset -c 0,1: {time.perf_counter() - t:.2f} s wall (1.0 if the 2 cores are enforced)")
PY
} >>$L 2>&1
T0=$(date +%s)
PYTHONPATH=$S:$PWD python3 build/prep-exp/mkimgs.py >>$L 2>&1
echo "images made in $(( $(date +%s) - T0 )) s" >>$L
X() { VARIANT=$1 PYTHONPATH=$S:$PWD/build/prep-exp/$1 taskset -c 0,1 python3 build/prep-exp/exp.py "${@:2}" >>$L 2>&1; }
echo "== 2 cores: threads vs processes, without and with the parent's help during the start" >>$L
for r in 1 2 3; do for n in 64 256 1024 4096; do
  X nohelp forkserver 1 16 $n processes 2; X help forkserver 1 16 $n processes 2; X help forkserver 1 16 $n threads 2
done; done
echo "== 2 cores: chunk sizes (help)" >>$L
for r in 1 2 3; do for c in 1 4 16 64; do X help forkserver 1 $c 1024 processes 2; done; done
echo "== 2 cores: start methods (nohelp, so the start shows)" >>$L
for r in 1 2 3; do X nohelp forkserver 1 16 1024 processes 2; X nohelp forkserver 0 16 1024 processes 2; X nohelp spawn 0 16 1024 processes 2; done
echo "== 16 cores, 16 workers" >>$L
Y() { VARIANT=$1 PYTHONPATH=$S:$PWD/build/prep-exp/$1 python3 build/prep-exp/exp.py "${@:2}" >>$L 2>&1; }
for r in 1 2 3; do Y help forkserver 1 16 4096 processes 16; Y help forkserver 1 16 4096 threads 16; done
for r in 1 2; do Y help forkserver 1 16 4096 processes 8; Y help forkserver 1 16 4096 threads 8; done
echo "== bench, 2 pinned cores" >>$L
PYTHONPATH=$S:$PWD taskset -c 0,1 python3 tests/bench/bench_preprocess.py --images 1024 --threads 2 --rounds 2 --images-dir /tmp/imgs1024 >$OUT/bench_2core.txt 2>&1
echo "done in $(( $(date +%s) - T0 )) s" >>$L
