"""ImageNet from the user's files: val_map, checks, tar import, reference preprocessing, cache, exact top-1.

The accuracy tests run generated JPEGs (solid colours standing for six classes) through the real
preprocessing and cache, a tiny ONNX classifier of mean colour on ONNX Runtime, and the reference's
label offset (1001 outputs, background at 0), so top-1 is known by construction.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.accuracy.imagenet import top1
from harness.datasets import imagenet_real
from harness.datasets.imagenet import MEANS
from harness.datasets.imagenet_real import (
    FAKE_CLASS_COLOURS,
    RESIZED_SHORT_SIDE,
    VAL_TAR,
    ImageNetFolder,
    make_fake_imagenet,
    parse_val_map,
    preprocess_vgg,
    read_image,
)
from harness.errors import DatasetError

N = 24


@pytest.fixture
def fake(home: Path, tmp_path: Path):
    return make_fake_imagenet(tmp_path / "val", N, seed=3)


# -- val_map.txt -------------------------------------------------------------------------------------------


def test_val_map_parsed_in_order(tmp_path: Path):
    path = tmp_path / "val_map.txt"
    path.write_text("ILSVRC2012_val_00000001.JPEG 65\n\nILSVRC2012_val_00000002.JPEG 970\r\n"
                    "ILSVRC2012_val_00000003.JPEG 0\n", encoding="utf-8")
    assert parse_val_map(path) == [("ILSVRC2012_val_00000001.JPEG", 65), ("ILSVRC2012_val_00000002.JPEG", 970),
                                   ("ILSVRC2012_val_00000003.JPEG", 0)]


@pytest.mark.parametrize("bad, says", [
    ("ILSVRC2012_val_00000002.JPEG", "line 2"),
    ("ILSVRC2012_val_00000002.JPEG x", "line 2"),
    ("ILSVRC2012_val_00000002.JPEG 1000", "label 1000"),
    ("ILSVRC2012_val_00000001.JPEG 3", "listed twice (first on line 1)"),
    ("../ILSVRC2012_val_00000002.JPEG 3", "not a plain file name"),
])
def test_val_map_bad_line_named(tmp_path: Path, bad: str, says: str):
    path = tmp_path / "val_map.txt"
    path.write_text(f"ILSVRC2012_val_00000001.JPEG 65\n{bad}\n", encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        parse_val_map(path)
    assert says in err.value.message
    assert err.value.fix


def test_val_map_absent(home: Path, tmp_path: Path):
    with pytest.raises(DatasetError, match="There is no val_map.txt"):
        ImageNetFolder(tmp_path)


# -- preprocessing -----------------------------------------------------------------------------------------


def _blocky_bgr(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A BGR image whose 2x2 blocks average to whole numbers, and those block means (RGB) by hand."""
    by, bx = np.mgrid[0:height // 2, 0:width // 2]
    means_rgb = np.stack([1 + (by + bx) % 250, 1 + (2 * by) % 250, 1 + (3 * bx) % 250], axis=-1)
    # Within a block: a-1, a+1 on the first row, a, a on the second: the mean is exactly a.
    offsets = np.array([[-1, 1], [0, 0]])
    rgb = np.repeat(np.repeat(means_rgb, 2, axis=0), 2, axis=1) + np.tile(offsets, (height // 2, width // 2))[..., None]
    return np.ascontiguousarray(rgb[..., ::-1]).astype(np.uint8), means_rgb


@pytest.mark.parametrize("height, width, top, left", [
    # Landscape: short side 512 -> 256, width 768 -> int(256 * 768 / 512) = 384; crop at (16, 80).
    (512, 768, 16, 80),
    # Portrait: width 512 -> 256, height 1024 -> 512; crop at (144, 16).
    (1024, 512, 144, 16),
])
def test_preprocessing_equals_hand_computation(tmp_path: Path, height: int, width: int, top: int, left: int):
    assert RESIZED_SHORT_SIDE == 256  # 224 / 0.875
    bgr, block_means = _blocky_bgr(height, width)
    # Halving with INTER_AREA is the mean of each 2x2 block; then the centre crop; then the RGB means.
    expected = block_means[top:top + 224, left:left + 224].astype(np.float32) - MEANS
    nhwc = preprocess_vgg(bgr, "NHWC")
    assert nhwc.dtype == np.float32 and nhwc.shape == (224, 224, 3)
    assert np.array_equal(nhwc, expected)
    # One value written out: crop pixel (0, 0) is block (top, left), red = 1 + (top + left) % 250.
    assert nhwc[0, 0, 0] == np.float32(1 + (top + left) % 250) - np.float32(123.68)
    nchw = preprocess_vgg(bgr, "NCHW")
    assert nchw.shape == (3, 224, 224) and nchw.flags.c_contiguous
    assert np.array_equal(nchw, expected.transpose(2, 0, 1))
    # Through a file, read the way the reference reads it (lossless PNG, so the pixels survive).
    png = tmp_path / "image.png"
    cv2.imwrite(str(png), bgr)
    assert np.array_equal(preprocess_vgg(read_image(png), "NHWC"), expected)


def test_samples_are_the_preprocessed_files_in_either_layout(fake):
    ds = ImageNetFolder(fake.folder, workers=2)
    assert (ds.count, ds.synthetic, ds.layout) == (N, False, "NCHW")
    assert ds.labels().tolist() == fake.labels and ds.label(3) == fake.labels[3]
    for i in (0, 7, N - 1):
        assert np.array_equal(ds.sample(i), preprocess_vgg(read_image(fake.folder / fake.names[i]), "NCHW"))
    # The cache holds layout-neutral crops: NHWC reuses it.
    nhwc = ImageNetFolder(fake.folder, layout="NHWC")
    assert nhwc.cache_dir == ds.cache_dir and nhwc.preparation.processed == 0
    assert np.array_equal(nhwc.sample(5), ds.sample(5).transpose(1, 2, 0))
    with pytest.raises(IndexError):
        ds.sample(N)


def test_subset_is_the_first_n_of_val_map(fake):
    ds = ImageNetFolder(fake.folder, count=5)
    assert ds.count == 5 and ds.labels().tolist() == fake.labels[:5]
    assert "the first 5 of 24 images" in ds.description
    assert len(list((ds.cache_dir / "images").glob("*.npy"))) == 5
    with pytest.raises(DatasetError, match="lists 24"):
        ImageNetFolder(fake.folder, count=N + 1)


# -- checks ------------------------------------------------------------------------------------------------


def test_missing_files_reported_by_count_and_name(fake):
    for i in (4, 9, 20):
        (fake.folder / fake.names[i]).unlink()
    with pytest.raises(DatasetError) as err:
        ImageNetFolder(fake.folder)
    message = err.value.message
    assert "3 of the 24 images" in message and "21 image files found" in message
    assert all(fake.names[i] in message for i in (4, 9, 20))
    assert VAL_TAR in err.value.fix
    # A subset before the first missing image is complete.
    assert ImageNetFolder(fake.folder, count=4).count == 4


def test_extra_files_reported(fake):
    (fake.folder / "ILSVRC2012_val_00099999.JPEG").write_bytes((fake.folder / fake.names[0]).read_bytes())
    with pytest.raises(DatasetError, match=r"1 image files .* not listed in val_map.txt .*00099999"):
        ImageNetFolder(fake.folder)


def test_unreadable_images_reported_and_the_rest_kept(fake):
    (fake.folder / fake.names[2]).write_bytes(b"not a jpeg at all")
    (fake.folder / fake.names[6]).write_bytes(b"")
    with pytest.raises(DatasetError, match=rf"1 images .* cannot be decoded .*{fake.names[6]}"):
        ImageNetFolder(fake.folder)
    (fake.folder / fake.names[6]).write_bytes((fake.folder / fake.names[0]).read_bytes())
    with pytest.raises(DatasetError, match=rf"1 images .* cannot be decoded .*{fake.names[2]}"):
        ImageNetFolder(fake.folder)
    (fake.folder / fake.names[2]).write_bytes((fake.folder / fake.names[0]).read_bytes())
    # Every other image was prepared by the failed attempt and is kept.
    assert ImageNetFolder(fake.folder).preparation.processed == 1


# -- the val tar -------------------------------------------------------------------------------------------


def _tar_of(fake, tar_path: Path, extra: list[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(tar_path, "w") as tar:
        for name in fake.names:
            tar.add(fake.folder / name, arcname=name)
        for member in extra:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return tar_path


def _only_tar_and_map(fake, folder: Path, extra: list[tarfile.TarInfo] = ()) -> Path:
    folder.mkdir()
    _tar_of(fake, folder / VAL_TAR, extra)
    (folder / "val_map.txt").write_bytes((fake.folder / "val_map.txt").read_bytes())
    return folder


def test_tar_imported_with_progress(fake, tmp_path: Path):
    folder = _only_tar_and_map(fake, tmp_path / "from_tar")
    stages: list[tuple[str, int, int]] = []
    ds = ImageNetFolder(folder, tar_md5=None, progress=lambda *a: stages.append(a))
    assert ds.preparation.extracted_from == folder / VAL_TAR
    assert {s for s, _, _ in stages} == {"extract", "preprocess"}
    assert stages[-1] == ("preprocess", N, N)
    assert set(os.listdir(folder)) == {VAL_TAR, "val_map.txt"}  # the user's folder is left alone
    reference = ImageNetFolder(fake.folder)
    assert all(np.array_equal(ds.sample(i), reference.sample(i)) for i in range(N))
    # Extracted once: a second open neither extracts nor preprocesses.
    calls = len(stages)
    again = ImageNetFolder(folder, tar_md5=None, progress=lambda *a: stages.append(a))
    assert again.preparation.processed == 0 and len(stages) == calls


def test_tar_with_wrong_md5_refused_before_extraction(fake, tmp_path: Path, home: Path):
    folder = _only_tar_and_map(fake, tmp_path / "from_tar")
    with pytest.raises(DatasetError) as err:
        ImageNetFolder(folder)
    assert "29b22e2961454d5413ddabcf34fc5622" in err.value.message
    assert not list(home.rglob("*.JPEG"))


@pytest.mark.parametrize("member", ["../escaped.JPEG", "/tmp/absolute.JPEG", "link.JPEG"])
def test_tar_member_outside_or_link_refused(fake, tmp_path: Path, member: str):
    info = tarfile.TarInfo(member)
    if member == "link.JPEG":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        info.size = 10
    folder = _only_tar_and_map(fake, tmp_path / "evil", [info])
    with pytest.raises(DatasetError, match="refusing to extract it"):
        ImageNetFolder(folder, tar_md5=None)
    assert not (tmp_path / "escaped.JPEG").exists() and not Path("/tmp/absolute.JPEG").exists()


# -- the cache ---------------------------------------------------------------------------------------------


class Interrupted(Exception):
    pass


def test_interrupted_preparation_is_resumed_not_used(fake, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(imagenet_real, "PROGRESS_INTERVAL_S", 0.0)
    k = 7

    def stop_after_k(stage: str, done: int, total: int) -> None:
        if stage == "preprocess" and done >= k:
            raise Interrupted

    with pytest.raises(Interrupted):
        ImageNetFolder(fake.folder, progress=stop_after_k, workers=2)
    cache = next(p for p in (imagenet_real.locations().datasets / "imagenet").iterdir())
    assert not (cache / "complete.json").exists()
    first_k = [next((cache / "images").glob(f"{Path(name).stem}-*.npy")) for name in fake.names[:k]]
    before = {p: p.stat().st_mtime_ns for p in first_k}
    time.sleep(0.01)

    ds = ImageNetFolder(fake.folder, workers=2)
    assert ds.cache_dir == cache and (cache / "complete.json").is_file()
    assert ds.preparation.reused >= k
    assert ds.preparation.reused + ds.preparation.processed == N
    assert {p: p.stat().st_mtime_ns for p in first_k} == before
    assert ImageNetFolder(fake.folder).preparation.reused == N


def test_torn_cache_file_redone(fake, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(imagenet_real, "PROGRESS_INTERVAL_S", 0.0)

    def stop(stage: str, done: int, total: int) -> None:
        if stage == "preprocess" and done >= 4:
            raise Interrupted

    with pytest.raises(Interrupted):
        ImageNetFolder(fake.folder, progress=stop, workers=1)
    images = next((imagenet_real.locations().datasets / "imagenet").iterdir()) / "images"
    done = len(list(images.glob("*.npy")))
    torn = next(images.glob("ILSVRC2012_val_00000001-*.npy"))
    torn.write_bytes(torn.read_bytes()[:1000])
    ds = ImageNetFolder(fake.folder, workers=1)
    assert done >= 4 and ds.preparation.reused == done - 1
    assert np.array_equal(ds.sample(0), preprocess_vgg(read_image(fake.folder / fake.names[0])))


def test_progress_is_throttled(fake):
    calls: list[tuple[float, int]] = []
    start = time.monotonic()
    ImageNetFolder(fake.folder, progress=lambda stage, done, total: calls.append((time.monotonic(), done)),
                   workers=1)
    elapsed = time.monotonic() - start
    assert calls[0][1] == 0 and calls[-1][1] == N
    gaps = np.diff([t for t, _ in calls[:-1]])  # the final call of a stage always comes
    assert (gaps >= imagenet_real.PROGRESS_INTERVAL_S).all()
    assert len(calls) <= elapsed / imagenet_real.PROGRESS_INTERVAL_S + 2


# -- accuracy, known by construction -----------------------------------------------------------------------


def _colour_classifier(path: Path) -> Path:
    """ONNX: input_tensor:0 [N,3,224,224] -> mean colour -> 1001 logits (0 = background) -> ArgMax:0.

    The logit of class ``label + 1`` is the nearest-centroid score ``c . x - |c|^2 / 2`` of its preprocessed
    colour ``c``; every other output has a large negative bias, so it never wins.
    """
    weights = np.zeros((1001, 3), dtype=np.float32)
    bias = np.full(1001, -1e6, dtype=np.float32)
    for label, rgb in FAKE_CLASS_COLOURS.items():
        centre = np.array(rgb, dtype=np.float32) - MEANS
        weights[label + 1] = centre
        bias[label + 1] = -0.5 * float(centre @ centre)
    nodes = [
        helper.make_node("GlobalAveragePool", ["input_tensor:0"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], transB=1),
        helper.make_node("ArgMax", ["logits"], ["ArgMax:0"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "colour_classifier",
        [helper.make_tensor_value_info("input_tensor:0", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("ArgMax:0", TensorProto.INT64, ["N"])],
        initializer=[numpy_helper.from_array(weights, "fc.weight"), numpy_helper.from_array(bias, "fc.bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def _accuracy_log(path: Path, ds: ImageNetFolder, model: Path) -> Path:
    """Run the classifier on every sample and log the responses as LoadGen does (float32 class id, hex)."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    batch = np.stack([ds.sample(i) for i in range(ds.count)])
    (argmax,) = session.run(["ArgMax:0"], {"input_tensor:0": batch})
    # The reference's offset: output 0 is background, so ImageNet class = argmax - 1.
    records = [{"seq_id": i, "qsl_idx": i, "data": np.float32([cls - 1]).tobytes().hex().upper()}
               for i, cls in enumerate(argmax)]
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_top1_exact_through_preprocessing_and_onnxruntime(fake, tmp_path: Path):
    ds = ImageNetFolder(fake.folder)
    log = _accuracy_log(tmp_path / "mlperf_log_accuracy.json", ds, _colour_classifier(tmp_path / "colour.onnx"))
    result = top1(log, ds.labels())
    assert (result["good"], result["total"], result["value"]) == (N, N, 100.0)

    # Shift every 4th label by one: exactly 6 of 24 become wrong, 75 %.
    lines = (fake.folder / "val_map.txt").read_text(encoding="utf-8").splitlines()
    shifted = [f"{name} {(int(label) + 1) % 1000}" if i % 4 == 0 else f"{name} {label}"
               for i, (name, label) in enumerate(line.split() for line in lines)]
    (fake.folder / "val_map.txt").write_text("\n".join(shifted) + "\n", encoding="utf-8")
    relabelled = ImageNetFolder(fake.folder)
    # A changed val_map is a different dataset: the old cache is not reused.
    assert relabelled.cache_dir != ds.cache_dir and relabelled.preparation.processed == N
    result = top1(log, relabelled.labels())
    assert (result["good"], result["total"], result["value"]) == (18, 24, 75.0)


def test_replaced_image_redone_alone(fake):
    ImageNetFolder(fake.folder)
    (fake.folder / fake.names[0]).write_bytes((fake.folder / fake.names[1]).read_bytes())
    ds = ImageNetFolder(fake.folder)
    assert (ds.preparation.reused, ds.preparation.processed) == (N - 1, 1)
    assert np.array_equal(ds.sample(0), ds.sample(1))
    assert len(list((ds.cache_dir / "images").glob("*.npy"))) == N
