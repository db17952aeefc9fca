"""The synthetic RetinaNet cut after each stage (heads, P3 sigmoid, P3 top-k, the whole graph), each timed on
ONNX Runtime's CUDA provider with the input and outputs on the GPU: which stage holds the time?
Usage: python tests/bench/ort_cuda_cut.py [--calls 5] [--variant full]"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--variant", default="full")
    args = ap.parse_args()
    os.environ.setdefault("MLPERF_WIZARD_HOME", str(Path(tempfile.gettempdir()) / "mlperf-wizard-bench"))
    import onnx
    import onnx.utils
    import onnxruntime as ort

    from harness.datasets.openimages import SyntheticOpenImages
    from harness.models.families import build_synthetic
    from harness.models.registry import MODELS, synthetic_path

    path = synthetic_path(MODELS["retinanet"], args.variant)
    if not path.is_file():
        build_synthetic("retinanet", path, args.variant, "fp32")
    ort.preload_dlls()
    model = onnx.load(str(path), load_external_data=False)
    by_name = {node.name: node for node in model.graph.node}
    heads = [node.output[0] for node in model.graph.node if node.name.startswith("head.") and
             node.name.endswith(".out")]
    cuts = {"heads (all levels)": heads,
            "P3 sigmoid": list(by_name["post.p3.sigmoid"].output),
            "P3 top-k": list(by_name["post.p3.topk"].output),
            "P3 kept scores": list(by_name["post.p3.scores"].output),
            "whole graph": [o.name for o in model.graph.output]}
    image = SyntheticOpenImages(1).sample(0)[None]
    with tempfile.TemporaryDirectory() as tmp:
        for label, outputs in cuts.items():
            cut = Path(tmp) / "cut.onnx"
            onnx.utils.extract_model(str(path), str(cut), ["images"], outputs)
            session = ort.InferenceSession(str(cut), providers=[("CUDAExecutionProvider",
                                                                 {"cudnn_conv_algo_search": "HEURISTIC"})])
            x = ort.OrtValue.ortvalue_from_numpy(image, "cuda", 0)
            binding = session.io_binding()
            binding.bind_ortvalue_input("images", x)
            for name in outputs:
                binding.bind_output(name, "cuda")
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()
            times = []
            for _ in range(args.calls):
                t = time.perf_counter()
                session.run_with_iobinding(binding)
                binding.synchronize_outputs()
                times.append((time.perf_counter() - t) * 1000)
            print(f"{label:20s} {len(session.get_outputs()):3d} outputs  median {np.median(times):8.2f} ms",
                  flush=True)


if __name__ == "__main__":
    main()
