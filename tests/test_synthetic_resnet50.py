"""The synthetic ResNet50 v1.5: built with onnx.helper, run with real onnxruntime sessions."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from harness.errors import ModelError
from harness.models.synthetic_resnet50 import VARIANTS, BuildInfo, build_resnet50_onnx

# The reference preprocessing's RGB means (MLPERF_FACTS.md): inputs look like real preprocessed pixels.
MEANS = np.array([123.68, 116.78, 103.94], dtype=np.float32).reshape(1, 3, 1, 1)

# Real ResNet50 counts, from torchvision's resnet50 (25,557,032 parameters, 1000 classes):
#   conv weights 23,454,912 + BatchNorm gamma and beta 2 x 26,560 + FC 2048 x 1000 + 1000 = 2,049,000.
# Folding BN leaves one bias per conv output channel (26,560 instead of 53,120), and the official
# TF-converted model has 1001 classes (one more FC row and bias: 2,049). The official TF checkpoint with
# BN unfolded has 23,454,912 + 53,120 + 2,051,049 = 25,559,081 trainable parameters.
CONV_WEIGHTS = 23_454_912
BN_CHANNELS = 26_560
FC_1001 = 2048 * 1001 + 1001
FULL_PARAMETERS = CONV_WEIGHTS + BN_CHANNELS + FC_1001  # 25,532,521
# Multiply-accumulates of torchvision's resnet50 at 224x224 (convs and FC), ~4.1 G: what it costs to run.
FULL_GMACS = (4.05, 4.15)


def random_images(n: int, seed: int) -> np.ndarray:
    """Uniform random pixels, preprocessed like ImageNet (means subtracted, NCHW float32)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 3, 224, 224)).astype(np.float32)
    return pixels - MEANS


def smooth_images(n: int, seed: int) -> np.ndarray:
    """Blocky random images: large-scale structure, unlike per-pixel noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 60.0, size=(n, 3, 14, 14)).astype(np.float32)
    return np.repeat(np.repeat(coarse, 16, axis=2), 16, axis=3)


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    argmax, softmax = sess.run(["ArgMax:0", "softmax_tensor:0"], {"input_tensor:0": images})
    return argmax, softmax


def conv_macs(model: onnx.ModelProto) -> int:
    """Multiply-accumulates of every Conv and Gemm for one image, from inferred shapes."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {
        vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output)
    }
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out_ch, in_ch, kh, kw = weights[node.input[1]]
            _, _, oh, ow = shapes[node.output[0]]
            macs += out_ch * in_ch * kh * kw * oh * ow
        elif node.op_type == "Gemm":
            macs += int(np.prod(weights[node.input[1]]))
    return macs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> BuildInfo:
    return build_resnet50_onnx(tmp_path_factory.mktemp("tiny") / "resnet50-tiny.onnx", variant="tiny")


def test_tiny_has_the_official_signature(tiny: BuildInfo) -> None:
    sess = session(tiny.path)
    (inp,) = sess.get_inputs()
    assert (inp.name, inp.type) == ("input_tensor:0", "tensor(float)")
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [3, 224, 224]
    outputs = {o.name: o for o in sess.get_outputs()}
    assert set(outputs) == {"ArgMax:0", "softmax_tensor:0"}
    assert outputs["ArgMax:0"].type == "tensor(int64)"
    assert outputs["softmax_tensor:0"].type == "tensor(float)"
    assert outputs["softmax_tensor:0"].shape[1] == 1001

    argmax, softmax = run(sess, random_images(3, seed=1))
    assert argmax.dtype == np.int64 and argmax.shape == (3,)
    assert softmax.dtype == np.float32 and softmax.shape == (3, 1001)
    assert np.isfinite(softmax).all()
    np.testing.assert_allclose(softmax.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(argmax, softmax.argmax(axis=1))


def test_tiny_info_describes_the_file(tiny: BuildInfo) -> None:
    data = tiny.path.read_bytes()
    assert tiny.variant == "tiny" and tiny.seed == 0
    assert tiny.size_bytes == len(data)
    assert tiny.md5 == hashlib.md5(data).hexdigest()
    model = onnx.load(str(tiny.path))
    assert tiny.parameters == sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert tiny.seconds > 0
    # Same code path as "full": stem + 3 convs per block (1 per stage) + 1 projection per stage.
    assert sum(n.op_type == "Conv" for n in model.graph.node) == 1 + 4 * 3 + 4


@pytest.mark.parametrize("images", [random_images, smooth_images], ids=["noise", "smooth"])
def test_tiny_argmax_depends_on_the_input(tiny: BuildInfo, images) -> None:
    argmax, softmax = run(session(tiny.path), images(16, seed=2))
    # Seen: 9 (noise) and 5 (smooth) distinct classes out of 16; a collapsed model gives 1 or 2. Over
    # 64 noise images "tiny" gives ~20 classes and "full" ~35 to 50 (its 2048 features vary more).
    assert len(set(argmax.tolist())) >= 4
    # Neither uniform nor one-hot.
    assert 2 / 1001 < softmax.max(axis=1).min() and softmax.max(axis=1).max() < 0.99


def test_tiny_batch_of_8_matches_batches_of_1(tiny: BuildInfo) -> None:
    sess = session(tiny.path)
    images = random_images(8, seed=3)
    argmax8, softmax8 = run(sess, images)
    for i in range(8):
        argmax1, softmax1 = run(sess, images[i : i + 1])
        assert argmax1[0] == argmax8[i]
        np.testing.assert_allclose(softmax1[0], softmax8[i], rtol=1e-4, atol=1e-7)


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path: Path) -> None:
    a = build_resnet50_onnx(tmp_path / "a.onnx", seed=7, variant="tiny")
    b = build_resnet50_onnx(tmp_path / "b.onnx", seed=7, variant="tiny")
    c = build_resnet50_onnx(tmp_path / "c.onnx", seed=8, variant="tiny")
    assert a.md5 == b.md5
    assert a.path.read_bytes() == b.path.read_bytes()
    assert c.md5 != a.md5 and c.size_bytes == a.size_bytes
    sess_a, sess_c = session(a.path), session(c.path)
    images = random_images(2, seed=4)
    assert not np.allclose(run(sess_a, images)[1], run(sess_c, images)[1])


def test_write_is_atomic_and_creates_folders(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "models" / "resnet50.onnx"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"stale")
    info = build_resnet50_onnx(target, variant="tiny")
    assert target.read_bytes()[:4] != b"stal" and target.stat().st_size == info.size_bytes
    assert sorted(p.name for p in target.parent.iterdir()) == ["resnet50.onnx", "resnet50.onnx.integrity.json"]

    nested = tmp_path / "new" / "deeper" / "m.onnx"
    assert build_resnet50_onnx(nested, variant="tiny").path == nested and nested.is_file()


def test_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    blocker = tmp_path / "model.onnx"
    blocker.mkdir()  # a folder where the file should go: the final rename fails
    with pytest.raises(ModelError, match="Could not write"):
        build_resnet50_onnx(blocker, variant="tiny")
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"] and blocker.is_dir()


def test_unknown_variant_is_rejected(tmp_path: Path) -> None:
    assert VARIANTS == ("full", "tiny")
    with pytest.raises(ValueError, match="unknown variant"):
        build_resnet50_onnx(tmp_path / "m.onnx", variant="huge")
    assert not (tmp_path / "m.onnx").exists()


def test_full_has_real_resnet50_size_and_cost(tmp_path: Path) -> None:
    start = time.perf_counter()
    info = build_resnet50_onnx(tmp_path / "resnet50.onnx")
    model = onnx.load(str(info.path))
    assert info.variant == "full"
    assert info.parameters == FULL_PARAMETERS
    assert abs(info.parameters - 25.6e6) / 25.6e6 < 0.01
    # float32 weights plus a little graph: ~102 MB, like the official file.
    assert 4 * FULL_PARAMETERS < info.size_bytes < 4 * FULL_PARAMETERS + 1_000_000
    # stem + 16 blocks x 3 convs + 4 projections.
    assert sum(n.op_type == "Conv" for n in model.graph.node) == 53
    gmacs = conv_macs(model) / 1e9
    assert FULL_GMACS[0] < gmacs < FULL_GMACS[1]

    sess = session(info.path)
    argmax, softmax = run(sess, random_images(1, seed=5))
    assert argmax.shape == (1,) and softmax.shape == (1, 1001)
    assert np.isfinite(softmax).all() and argmax[0] == softmax[0].argmax()
    elapsed = time.perf_counter() - start
    # Seen on the 2-core dev machine: ~1.4 s to build, ~2.1 s including the session and one image.
    assert elapsed < 60, f"full build + one inference took {elapsed:.1f} s"


def test_v15_puts_the_stride_on_the_3x3_conv(tiny: BuildInfo) -> None:
    # "tiny" runs the same builder as "full": the first block of every stage is present.
    model = onnx.load(str(tiny.path))
    strides = {
        n.name: list(next(a.ints for a in n.attribute if a.name == "strides"))
        for n in model.graph.node
        if n.op_type == "Conv"
    }
    assert strides["stem.conv"] == [2, 2]
    assert strides["stage1.block1.conv2"] == [1, 1] and strides["stage1.block1.downsample"] == [1, 1]
    for stage in (2, 3, 4):
        first = f"stage{stage}.block1"
        assert strides[f"{first}.conv1"] == [1, 1]
        assert strides[f"{first}.conv2"] == [2, 2]
        assert strides[f"{first}.downsample"] == [2, 2]
