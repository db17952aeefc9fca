"""The synthetic RetinaNet and its task: built with onnx.helper, run with real onnxruntime sessions."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from harness.backends.onnxruntime import OnnxRuntimeBackend
from harness.datasets.openimages import SyntheticOpenImages
from harness.errors import ModelError
from harness.models.retinanet import RetinaNetTask, encode_detections
from harness.models.synthetic_retinanet import VARIANTS, BuildInfo, anchors, build_retinanet_onnx, feature_sizes

# Parameters of MLPerf's RetinaNet with BatchNorm folded (one bias per conv output channel), counted
# from torchvision's definitions rather than from the builder:
# - resnext50_32x4d: 25,028,904 parameters = conv weights + 2 x 34,112 BN channels + FC 2048 x 1000 + 1000.
BACKBONE = 25_028_904 - 2 * 34_112 - 2_049_000 + 34_112
# - FPN: 1x1 laterals from 512/1024/2048 channels, three 3x3 outputs, P6 and P7 (256 -> 256, 3x3).
FPN = (512 + 1024 + 2048) * 256 + 3 * 256 + 5 * (256 * 256 * 9 + 256)
# - heads: 4 x (3x3 256 -> 256) each, then 9 x 264 logits and 9 x 4 deltas.
HEADS = 8 * (256 * 256 * 9 + 256) + (256 * 9 * 2376 + 2376) + (256 * 9 * 36 + 36)
FULL_PARAMETERS = BACKBONE + FPN + HEADS  # 37,094,764
# Multiply-adds per 800x800 image: ResNeXt50 is 4.26 G at 224x224, so ~54 G at 800x800; the heads run
# on 13,343 locations at ~10.3 M each (~137 G); the FPN adds ~10 G.
FULL_GMACS = (195, 210)


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes, scores, labels = sess.run(["boxes", "scores", "labels"], {"images": image})
    return boxes, scores, labels


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` with every box in ``b`` (x1, y1, x2, y2)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def conv_macs(model: onnx.ModelProto) -> int:
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in inferred.graph.value_info}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out_ch, in_per_group, kh, kw = weights[node.input[1]]
            _, _, oh, ow = shapes[node.output[0]]
            macs += out_ch * in_per_group * kh * kw * oh * ow
    return macs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> BuildInfo:
    return build_retinanet_onnx(tmp_path_factory.mktemp("tiny") / "retinanet-tiny.onnx", variant="tiny")


@pytest.fixture(scope="module")
def tiny_session(tiny: BuildInfo) -> ort.InferenceSession:
    return session(tiny.path)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    dataset = SyntheticOpenImages(3, seed=1)
    return np.stack([dataset.sample(i) for i in range(3)])


class TestModel:
    def test_tiny_has_the_official_signature(self, tiny_session: ort.InferenceSession) -> None:
        (inp,) = tiny_session.get_inputs()
        assert (inp.name, inp.type, inp.shape) == ("images", "tensor(float)", [1, 3, 800, 800])
        outputs = {o.name: o for o in tiny_session.get_outputs()}
        assert list(outputs) == ["boxes", "scores", "labels"]
        assert outputs["boxes"].type == "tensor(float)" and outputs["boxes"].shape[1] == 4
        assert outputs["scores"].type == "tensor(float)" and len(outputs["scores"].shape) == 1
        assert outputs["labels"].type == "tensor(int64)" and len(outputs["labels"].shape) == 1

    def test_detections_are_post_processed(self, tiny_session: ort.InferenceSession, images: np.ndarray) -> None:
        counts = []
        for image in images:
            boxes, scores, labels = run(tiny_session, image[None])
            k = len(scores)
            counts.append(k)
            assert boxes.dtype == np.float32 and scores.dtype == np.float32 and labels.dtype == np.int64
            assert boxes.shape == (k, 4) and labels.shape == (k,)
            # Seen: 140 to 300 per synthetic image; the threshold and the top 300 bound them.
            assert 20 <= k <= 300
            assert (scores > 0.05).all() and (np.diff(scores) <= 0).all()
            assert ((0 <= labels) & (labels < 264)).all() and len(set(labels.tolist())) > 10
            assert (boxes >= 0).all() and (boxes <= 800).all()
            assert (boxes[:, 2:] >= boxes[:, :2]).all()
            # Per-class NMS: no two kept boxes of one class overlap more than IoU 0.5.
            for label in set(labels.tolist()):
                same = boxes[labels == label]
                overlap = iou(same, same) - np.eye(len(same))
                assert overlap.max(initial=0) <= 0.5 + 1e-4
        assert len(set(counts)) > 1 or counts[0] == 300

    def test_same_input_same_output(self, tiny_session: ort.InferenceSession, images: np.ndarray) -> None:
        first = run(tiny_session, images[:1])
        second = run(tiny_session, images[:1].copy())
        for a, b in zip(first, second, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_tiny_info_describes_the_file(self, tiny: BuildInfo) -> None:
        data = tiny.path.read_bytes()
        assert (tiny.variant, tiny.seed, tiny.size_bytes) == ("tiny", 0, len(data))
        assert tiny.md5 == hashlib.md5(data).hexdigest()
        model = onnx.load(str(tiny.path))
        weights = [t for t in model.graph.initializer if t.name.endswith((".weight", ".bias"))]
        assert tiny.parameters == sum(int(np.prod(t.dims)) for t in weights)
        convs = [n for n in model.graph.node if n.op_type == "Conv"]
        groups = {n.name: next(a.i for a in n.attribute if a.name == "group") for n in convs}
        # Same code as "full": stem, 4 blocks x (3 convs + projection), 3 laterals, 3 outputs, P6, P7,
        # and 2 heads x 5 convs on each of the 5 levels.
        assert len(convs) == 1 + 4 * 4 + 3 + 3 + 2 + 2 * 5 * 5
        # Grouped 3x3 convs with 4 channels per group: 32 / 8 groups in "tiny".
        assert {groups[f"backbone.layer{s}.0.conv2"] for s in (1, 2, 3, 4)} == {4}
        assert groups["backbone.layer1.0.conv1"] == 1

    def test_same_seed_is_byte_identical_and_other_seed_differs(self, tmp_path: Path, tiny: BuildInfo,
                                                                 images: np.ndarray) -> None:
        again = build_retinanet_onnx(tmp_path / "a.onnx", seed=0, variant="tiny")
        other = build_retinanet_onnx(tmp_path / "b.onnx", seed=1, variant="tiny")
        assert again.md5 == tiny.md5 and again.path.read_bytes() == tiny.path.read_bytes()
        assert other.md5 != tiny.md5 and other.size_bytes == tiny.size_bytes
        a = run(session(tiny.path), images[:1])
        b = run(session(other.path), images[:1])
        assert a[0].shape != b[0].shape or not np.array_equal(a[0], b[0])

    def test_write_is_atomic_and_errors_are_clear(self, tmp_path: Path) -> None:
        target = tmp_path / "models" / "retinanet.onnx"
        target.parent.mkdir()
        target.write_bytes(b"stale")
        info = build_retinanet_onnx(target, variant="tiny")
        assert target.stat().st_size == info.size_bytes
        assert sorted(p.name for p in target.parent.iterdir()) == ["retinanet.onnx", "retinanet.onnx.integrity.json"]

        blocker = tmp_path / "dir.onnx"
        blocker.mkdir()
        with pytest.raises(ModelError, match="Could not write the synthetic RetinaNet"):
            build_retinanet_onnx(blocker, variant="tiny")
        assert [p.name for p in blocker.parent.iterdir() if p.name.startswith(".dir")] == []
        assert VARIANTS == ("full", "tiny")
        with pytest.raises(ValueError, match="unknown variant"):
            build_retinanet_onnx(tmp_path / "m.onnx", variant="huge")

    def test_anchors_are_torchvisions(self) -> None:
        assert feature_sizes() == [100, 50, 25, 13, 7]
        levels = anchors()
        assert [len(a) for a in levels] == [9 * s * s for s in (100, 50, 25, 13, 7)]
        assert sum(len(a) for a in levels) == 120_087
        # torchvision's cell anchors for sizes (32, 40, 50) and ratios (0.5, 1, 2), rounded.
        np.testing.assert_array_equal(levels[0][:9], [
            [-23, -11, 23, 11], [-28, -14, 28, 14], [-35, -18, 35, 18],
            [-16, -16, 16, 16], [-20, -20, 20, 20], [-25, -25, 25, 25],
            [-11, -23, 11, 23], [-14, -28, 14, 28], [-18, -35, 18, 35],
        ])
        # Next location along x, then the next row; P6's stride is 800 // 13 = 61.
        np.testing.assert_array_equal(levels[0][9] - levels[0][0], [8, 0, 8, 0])
        np.testing.assert_array_equal(levels[0][9 * 100] - levels[0][0], [0, 8, 0, 8])
        np.testing.assert_array_equal(levels[3][9] - levels[3][0], [61, 0, 61, 0])

    def test_full_has_mlperf_retinanet_size_and_cost(self, tmp_path: Path, images: np.ndarray) -> None:
        start = time.perf_counter()
        info = build_retinanet_onnx(tmp_path / "retinanet.onnx")
        assert info.parameters == FULL_PARAMETERS == 37_094_764
        # float32 weights, the anchor table (120,087 x 4) and a little graph.
        assert 4 * FULL_PARAMETERS < info.size_bytes < 4 * FULL_PARAMETERS + 3_000_000
        model = onnx.load(str(info.path))
        assert FULL_GMACS[0] < conv_macs(model) / 1e9 < FULL_GMACS[1]
        groups = {n.name: next(a.i for a in n.attribute if a.name == "group")
                  for n in model.graph.node if n.op_type == "Conv"}
        assert groups["backbone.layer1.0.conv2"] == 32 and groups["backbone.layer4.2.conv2"] == 32
        sess = session(info.path)
        boxes, scores, labels = run(sess, images[:1])
        assert 20 <= len(scores) <= 300 and (scores > 0.05).all() and boxes.shape == (len(scores), 4)
        # Seen on the 2-core dev machine: ~1.5 s to build, ~5 s for this whole test, ~1 s per image once warm.
        assert time.perf_counter() - start < 60


class TestTask:
    def test_encoding_of_known_boxes(self) -> None:
        boxes = np.array([[80, 160, 400, 480], [0, 0, 800, 800], [8, 8, 16, 16], [1, 2, 3, 4]], np.float32)
        scores = np.array([0.9, 0.5, 0.04, 0.06], np.float32)
        labels = np.array([3, 263, 7, 9], np.int64)
        out = encode_detections(12, boxes, scores, labels)
        assert out.dtype == np.float32 and out.shape == (14,)
        # Stops at the first score below 0.05, as the reference does, even though a later one is above it.
        np.testing.assert_allclose(out.reshape(2, 7), [
            [12, 0.2, 0.1, 0.6, 0.5, 0.9, 3],
            [12, 0.0, 0.0, 1.0, 1.0, 0.5, 263],
        ], rtol=1e-6)
        empty = encode_detections(4, np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
        assert empty.dtype == np.float32 and empty.size == 0

    def test_infer_puts_each_samples_qsl_index_first(self, tiny: BuildInfo, tiny_session: ort.InferenceSession,
                                                     images: np.ndarray) -> None:
        task = RetinaNetTask(OnnxRuntimeBackend(tiny.path, device="cpu", threads=2, outputs=RetinaNetTask.outputs,
                                                model="retinanet"))
        assert task.needs_indices and task.outputs == ("boxes", "scores", "labels")
        responses = task.infer(images[:2], [17, 4])
        assert len(responses) == 2
        for response, image, index in zip(responses, images[:2], (17, 4), strict=True):
            assert response.dtype == np.float32 and response.ndim == 1 and response.size % 7 == 0
            rows = response.reshape(-1, 7)
            assert (rows[:, 0] == index).all()
            boxes, scores, labels = run(tiny_session, image[None])
            np.testing.assert_array_equal(rows[:, 5], scores)
            np.testing.assert_array_equal(rows[:, 6], labels.astype(np.float32))
            np.testing.assert_allclose(rows[:, 1:5], boxes[:, [1, 0, 3, 2]] / 800, rtol=1e-6)

        placeholder = task.infer(images[:1])[0].reshape(-1, 7)
        assert (placeholder[:, 0] == RetinaNetTask.UNKNOWN_INDEX).all()
        with pytest.raises(ValueError, match="2 QSL indices for a batch of 1"):
            task.infer(images[:1], [1, 2])


def reference_postprocess(cls_levels: list[np.ndarray], box_levels: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """torchvision's ``RetinaNet.postprocess_detections`` written out in numpy, from the heads' outputs."""
    all_boxes, all_scores, all_labels = [], [], []
    for logits, deltas, level_anchors in zip(cls_levels, box_levels, anchors(), strict=True):
        _, _, h, w = logits.shape
        scores = 1 / (1 + np.exp(-logits.reshape(9, 264, h, w).transpose(2, 3, 0, 1).reshape(-1).astype(np.float64)))
        candidates = np.flatnonzero(scores > 0.05)
        top = candidates[np.argsort(-scores[candidates], kind="stable")[:1000]]
        anchor_idx, labels = top // 264, top % 264
        d = deltas.reshape(9, 4, h, w).transpose(2, 3, 0, 1).reshape(-1, 4)[anchor_idx].astype(np.float64)
        a = level_anchors[anchor_idx].astype(np.float64)
        widths, heights = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
        cx, cy = a[:, 0] + 0.5 * widths, a[:, 1] + 0.5 * heights
        dw, dh = np.minimum(d[:, 2], np.log(1000 / 16)), np.minimum(d[:, 3], np.log(1000 / 16))
        px, py = d[:, 0] * widths + cx, d[:, 1] * heights + cy
        pw, ph = np.exp(dw) * widths, np.exp(dh) * heights
        boxes = np.clip(np.stack([px - pw / 2, py - ph / 2, px + pw / 2, py + ph / 2], axis=1), 0, 800)
        all_boxes.append(boxes)
        all_scores.append(scores[top])
        all_labels.append(labels)
    boxes, scores, labels = (np.concatenate(x) for x in (all_boxes, all_scores, all_labels))
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[np.argsort(-scores[members], kind="stable")]
        while members.size:
            best, members = members[0], members[1:]
            keep.append(best)
            members = members[iou(boxes[best][None], boxes[members])[0] <= 0.5]
    keep = np.array(keep, dtype=np.int64)
    keep = keep[np.argsort(-scores[keep], kind="stable")][:300]
    return boxes[keep], scores[keep], labels[keep]


def test_post_processing_matches_torchvisions(tiny: BuildInfo, images: np.ndarray) -> None:
    model = onnx.load(str(tiny.path))
    heads = [f"head.{kind}.p{level}.out.out" for kind in ("cls", "box") for level in range(3, 8)]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in heads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    for image in images[:2]:
        boxes, scores, labels, *levels = sess.run(["boxes", "scores", "labels", *heads], {"images": image[None]})
        ref_boxes, ref_scores, ref_labels = reference_postprocess(levels[:5], levels[5:])
        assert len(scores) == len(ref_scores) and (np.diff(scores) <= 0).all()
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)
        # Same detections; equal scores may come in either order, so compare sorted by class and box.
        order, ref_order = np.lexsort((boxes[:, 0], labels)), np.lexsort((ref_boxes[:, 0], ref_labels))
        np.testing.assert_array_equal(labels[order], ref_labels[ref_order])
        np.testing.assert_allclose(scores[order], ref_scores[ref_order], rtol=1e-5)
        np.testing.assert_allclose(boxes[order], ref_boxes[ref_order], atol=2e-3)
