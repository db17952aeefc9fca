"""One convolution of the RetinaNet shapes, timed on ONNX Runtime's CUDA provider beside torch's cuDNN on the
same GPU: is ONNX Runtime's choice of cuDNN algorithm what makes the synthetic RetinaNet slow on CUDA?
Inputs and outputs stay on the GPU (I/O binding), so no copy is timed. Usage:
    python tests/bench/ort_cuda_conv.py [--calls 20]"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

# name, (in channels, out channels, kernel, stride, groups, input side)
SHAPES = [
    ("stem 7x7/2", (3, 64, 7, 2, 1, 800)),
    ("resnext 3x3 g32", (256, 256, 3, 1, 32, 100)),
    ("head 3x3 at P3", (256, 256, 3, 1, 1, 100)),
    ("cls out 3x3 at P3", (256, 2376, 3, 1, 1, 100)),
]


def conv_model(path: Path, cin: int, cout: int, k: int, stride: int, groups: int, side: int) -> float:
    """A one-Conv ONNX model; returns its GFLOP count."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((cout, cin // groups, k, k)) * 0.05).astype(np.float32)
    b = np.zeros(cout, np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[k, k], strides=[stride, stride],
                            pads=[k // 2] * 4, group=groups)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                             [1, cin, side, side])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    out_side = (side + 2 * (k // 2) - k) // stride + 1
    return 2 * cout * (cin // groups) * k * k * out_side * out_side / 1e9


def time_ort(path: Path, cin: int, side: int, options: dict, calls: int) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=[("CUDAExecutionProvider", options)])
    x = ort.OrtValue.ortvalue_from_numpy(np.random.default_rng(1).standard_normal((1, cin, side, side))
                                         .astype(np.float32), "cuda", 0)
    binding = session.io_binding()
    binding.bind_ortvalue_input("x", x)
    binding.bind_output("y", "cuda")
    for _ in range(3):
        session.run_with_iobinding(binding)
    binding.synchronize_outputs()
    start = time.perf_counter()
    for _ in range(calls):
        session.run_with_iobinding(binding)
    binding.synchronize_outputs()
    return (time.perf_counter() - start) / calls * 1000


def time_torch(cin: int, cout: int, k: int, stride: int, groups: int, side: int, tf32: bool, calls: int) -> float:
    import torch

    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = tf32
    conv = torch.nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups).cuda().eval()
    x = torch.randn(1, cin, side, side, device="cuda")
    with torch.inference_mode():
        for _ in range(3):
            conv(x)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            conv(x)
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20)
    args = ap.parse_args()
    import onnxruntime as ort

    ort.preload_dlls()
    settings = {"ort EXHAUSTIVE": {"cudnn_conv_algo_search": "EXHAUSTIVE"},
                "ort EXHAUSTIVE tf32=0": {"cudnn_conv_algo_search": "EXHAUSTIVE", "use_tf32": "0"},
                "ort HEURISTIC": {"cudnn_conv_algo_search": "HEURISTIC"},
                "ort EXHAUSTIVE nhwc": {"cudnn_conv_algo_search": "EXHAUSTIVE", "prefer_nhwc": "1"}}
    print(f"onnxruntime {ort.__version__}; ms per call (TFLOP/s) over {args.calls} calls, batch 1, fp32")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (cin, cout, k, stride, groups, side) in SHAPES:
            path = Path(tmp) / f"conv{cin}_{cout}_{k}_{groups}.onnx"
            gflop = conv_model(path, cin, cout, k, stride, groups, side)
            figures = {}
            for label, options in settings.items():
                try:
                    figures[label] = time_ort(path, cin, side, options, args.calls)
                except Exception as exc:  # noqa: BLE001 - a refused option is a finding
                    print(f"  {label}: {str(exc)[:200]}")
            for tf32 in (True, False):
                figures[f"torch tf32={int(tf32)}"] = time_torch(cin, cout, k, stride, groups, side, tf32,
                                                                args.calls)
            cells = "  ".join(f"{label} {ms:7.3f} ({gflop / ms:5.1f})" for label, ms in figures.items())
            print(f"{name:18s} {gflop:6.1f} GFLOP  {cells}", flush=True)


if __name__ == "__main__":
    main()
