"""ImageNet from the user's files: val_map, checks, tar import, reference preprocessing, cache, exact top-1.

The accuracy tests run generated JPEGs (solid colours standing for six classes) through the real
preprocessing and cache, a tiny ONNX classifier of mean colour on ONNX Runtime, and the reference's
label offset (1001 outputs, background at 0), so top-1 is known by construction.
"""

from __future__ import annotations

import io
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from onnx import TensorProto, helper, numpy_helper

from harness.accuracy.imagenet import top1
from harness.datasets import imagenet_real
from harness.datasets.imagenet import MEANS
from harness.datasets.imagenet_real import (
    FAKE_CLASS_COLOURS,
    LAYOUTS,
    RESIZED_SHORT_SIDE,
    VAL_TAR,
    ImageNetFolder,
    make_fake_imagenet,
    normalize,
    parse_val_map,
    preprocess_vgg,
    read_image,
    resize_and_crop,
    usable_cores,
    verify_cache,
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


def _normalize_before(crop: np.ndarray, layout: str) -> np.ndarray:
    """normalize() as it was written first: cast, subtract the means in place, transpose into a copy."""
    image = crop.astype(np.float32)
    image -= MEANS
    if layout == "NCHW":
        image = np.ascontiguousarray(image.transpose(2, 0, 1))
    return image


@given(crop=arrays(np.uint8, st.tuples(st.integers(1, 48), st.integers(1, 48), st.just(3))),
       layout=st.sampled_from(LAYOUTS), strided=st.booleans())
def test_normalize_equals_the_first_formula_bit_for_bit(crop: np.ndarray, layout: str, strided: bool):
    if strided:  # a view with gaps, as a slice of a larger image is
        crop = np.repeat(crop, 2, axis=1)[:, ::2]
    got = normalize(crop, layout)
    want = _normalize_before(crop, layout)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_normalize_every_value_of_a_full_size_crop(layout: str):
    # All 256 values in every channel, at the cache's own size (its precomputed row of means).
    crop = np.random.default_rng(5).permutation(np.resize(np.arange(256, dtype=np.uint8), 224 * 224 * 3))
    crop = crop.reshape(224, 224, 3)
    assert normalize(crop, layout).tobytes() == _normalize_before(crop, layout).tobytes()


def test_mapped_crop_is_np_load_and_other_files_still_go_through_it(tmp_path: Path):
    crop = np.random.default_rng(6).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    path = tmp_path / "crop.npy"
    np.save(path, crop, allow_pickle=False)
    mapped = imagenet_real._map_crop(path)
    assert np.array_equal(mapped, np.load(path)) and not mapped.flags.writeable
    other = tmp_path / "other.npy"
    np.save(other, crop[:10], allow_pickle=False)
    assert imagenet_real._map_crop(other).shape == (10, 224, 3)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError):
        imagenet_real._map_crop(path)


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


# -- worker processes --------------------------------------------------------------------------------------


def _textured_imagenet(folder: Path, n: int, seed: int) -> list[str]:
    """JPEGs with texture (blurred noise, so decoding and resizing do real work) of assorted sizes, portrait,
    landscape, odd and smaller than the crop, and a val_map.txt."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    names = []
    for i in range(1, n + 1):
        height, width = (int(v) for v in rng.integers(90, 520, size=2))
        coarse = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        image = np.clip(image + rng.integers(-12, 13, image.shape), 0, 255).astype(np.uint8)
        names.append(f"ILSVRC2012_val_{i:08d}.JPEG")
        cv2.imwrite(str(folder / names[-1]), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    (folder / "val_map.txt").write_text("".join(f"{name} {i % 1000}\n" for i, name in enumerate(names)),
                                        encoding="utf-8")
    return names


def _cache_bytes_before(image: Path) -> bytes:
    """What the first (thread) version wrote for an image: np.save of resize_and_crop(cv2.imread)."""
    buffer = io.BytesIO()
    np.save(buffer, resize_and_crop(read_image(image)), allow_pickle=False)
    return buffer.getvalue()


def _cached_files(ds: ImageNetFolder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((ds.cache_dir / "images").glob("*.npy"))}


def test_processes_write_the_bytes_the_threads_wrote(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    n = 41
    names = _textured_imagenet(tmp_path / "val", n, seed=11)
    monkeypatch.setattr(imagenet_real, "CHUNK_IMAGES", 3)  # many chunks, the last one short
    by_processes = ImageNetFolder(tmp_path / "val", workers_kind="processes", cache_root=tmp_path / "p")
    assert by_processes.preparation.workers_kind == "processes"
    assert by_processes.preparation.workers == min(usable_cores(), n)
    by_threads = ImageNetFolder(tmp_path / "val", workers=2, workers_kind="threads", cache_root=tmp_path / "t")
    assert by_threads.preparation.workers_kind == "threads"
    files = _cached_files(by_processes)
    assert len(files) == n and files == _cached_files(by_threads)
    for i, name in enumerate(names):
        assert (by_processes.cache_dir / "images" / by_processes._cache_files[i]).read_bytes() == \
            _cache_bytes_before(tmp_path / "val" / name)
        assert np.array_equal(by_processes.sample(i), preprocess_vgg(read_image(tmp_path / "val" / name)))
    assert verify_cache(by_processes.cache_dir) == {}


def test_few_images_use_threads_many_use_processes(fake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    assert ImageNetFolder(fake.folder, workers=2).preparation.workers_kind == "threads"
    monkeypatch.setattr(imagenet_real, "PROCESSES_FROM_IMAGES", N)
    assert ImageNetFolder(fake.folder, workers=2, cache_root=tmp_path / "c").preparation.workers_kind == "processes"
    with pytest.raises(ValueError, match="workers_kind"):
        ImageNetFolder(fake.folder, workers_kind="greenlets")


def test_broken_images_named_the_same_by_processes(fake, tmp_path: Path):
    (fake.folder / fake.names[2]).write_bytes(b"not a jpeg at all")
    (fake.folder / fake.names[17]).write_bytes((fake.folder / fake.names[17]).read_bytes()[:300])
    errors = {}
    for kind in ("threads", "processes"):
        with pytest.raises(DatasetError) as err:
            ImageNetFolder(fake.folder, workers=2, workers_kind=kind, cache_root=tmp_path / kind)
        errors[kind] = str(err.value).replace(str(tmp_path / kind), "CACHE")
    assert errors["threads"] == errors["processes"]
    assert "2 images" in errors["processes"] and "cannot be decoded" in errors["processes"]
    assert f"{fake.names[2]}, {fake.names[17]}" in errors["processes"]
    prepared = list((next((tmp_path / "processes").iterdir()) / "images").glob("*.npy"))
    assert len(prepared) == N - 2  # the others are prepared and kept


def test_unwritable_cache_file_named_by_processes(fake, tmp_path: Path):
    ds = ImageNetFolder(fake.folder, workers=1, cache_root=tmp_path)
    blocked = ds.cache_dir / "images" / ds._cache_files[5]
    (ds.cache_dir / "complete.json").unlink()
    blocked.unlink()
    blocked.mkdir()  # os.replace onto a folder fails: the worker's OSError must come back as the same error
    with pytest.raises(DatasetError) as err:
        ImageNetFolder(fake.folder, workers=2, workers_kind="processes", cache_root=tmp_path)
    assert err.value.message == f"Could not write {blocked}: Is a directory."
    assert "finished images are kept" in err.value.fix


@pytest.fixture
def heavy(home: Path, tmp_path: Path) -> tuple[Path, int, bytes]:
    """200 copies of one large textured JPEG (about 20 ms each to prepare), and the bytes each one's cache file
    must hold."""
    n = 200
    rng = np.random.default_rng(8)
    image = cv2.resize(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (1200, 900),
                       interpolation=cv2.INTER_CUBIC)
    image = np.clip(image + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
    folder = tmp_path / "heavy"
    folder.mkdir()
    first = folder / "ILSVRC2012_val_00000001.JPEG"
    cv2.imwrite(str(first), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, n + 1)]
    for name in names[1:]:
        shutil.copyfile(first, folder / name)
    (folder / "val_map.txt").write_text("".join(f"{name} 1\n" for name in names), encoding="utf-8")
    return folder, n, _cache_bytes_before(first)


_PREPARE_SCRIPT = """
import sys
import time
from harness.datasets.imagenet_real import CHUNK_IMAGES, ImageNetFolder

def progress(stage, done, total):
    print(stage, done, flush=True)
    if stage == "preprocess" and done >= 2 * CHUNK_IMAGES:
        # Hold the parent a moment (it hands out no more work meanwhile) so that the signal comes mid-way, however
        # slowly the test reads these lines on a loaded machine.
        time.sleep(3)

if __name__ == "__main__":
    ImageNetFolder(sys.argv[1], cache_root=sys.argv[2], workers=2, workers_kind="processes", progress=progress)
    print("finished", flush=True)
"""


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def _read_until(stream, done_at_least: int, deadline: float) -> bool:
    """Read ``stage done`` lines until a preprocess line reaches ``done_at_least``; False at the end or deadline."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                continue
            line = stream.readline()
            if not line:
                return False
            stage, _, done = line.partition(" ")
            if stage == "preprocess" and int(done) >= done_at_least:
                return True
    return False


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_cancelled_preparation_leaves_no_worker_and_nothing_trusted(heavy, tmp_path: Path, how: str):
    folder, n, expected = heavy
    cache_root = tmp_path / "cache"
    script = tmp_path / "prepare.py"
    script.write_text(_PREPARE_SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with open(tmp_path / "stderr.txt", "w") as stderr:
        child = subprocess.Popen([sys.executable, str(script), str(folder), str(cache_root)], env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
    try:
        started = _read_until(child.stdout, 2 * imagenet_real.CHUNK_IMAGES, time.monotonic() + 60)
        family = psutil.Process(child.pid).children(recursive=True)
        assert started, "the preparation ended before it could be cancelled"
        assert len(family) >= 3  # the fork server and two workers (and the resource tracker)
        if how == "ctrl-c":
            os.killpg(child.pid, signal.SIGINT)  # what a terminal sends: the workers get it too
        else:
            child.send_signal(signal.SIGTERM)  # the parent alone, which dies without cleaning up
        rest = child.communicate(timeout=30)[0]
    finally:
        if child.poll() is None:
            child.kill()
    # An unhandled KeyboardInterrupt ends Python by SIGINT, as the shell expects.
    assert child.returncode == (-signal.SIGINT if how == "ctrl-c" else -signal.SIGTERM)
    assert "finished" not in rest
    if how == "ctrl-c":
        assert "KeyboardInterrupt" in (tmp_path / "stderr.txt").read_text()
    gone, left = psutil.wait_procs(family, timeout=10)
    assert not _alive(left), f"processes outlived the cancelled preparation: {left}"

    cache = next(cache_root.iterdir())
    assert not (cache / "complete.json").exists()
    finished = list((cache / "images").glob("*.npy"))
    assert 2 * imagenet_real.CHUNK_IMAGES <= len(finished) < n
    assert all(p.read_bytes() == expected for p in finished)  # whole or absent: only temporaries can be torn

    ds = ImageNetFolder(folder, cache_root=cache_root, workers=2, workers_kind="processes")
    assert ds.preparation.reused == len(finished) and ds.preparation.reused + ds.preparation.processed == n
    assert verify_cache(ds.cache_dir) == {}
    assert not list((cache / "images").glob(".*.tmp"))
    assert all(p.read_bytes() == expected for p in (cache / "images").glob("*.npy"))


def test_a_worker_killed_midway_is_an_error_and_leaves_no_process(heavy, tmp_path: Path):
    folder, n, expected = heavy
    killed: list[psutil.Process] = []
    workers: list[psutil.Process] = []

    def kill_a_worker(stage: str, done: int, total: int) -> None:
        if stage == "preprocess" and done > 0 and not killed:
            # The workers are the fork server's children: our grandchildren.
            me = os.getpid()
            workers.extend(p for p in psutil.Process(me).children(recursive=True) if p.ppid() != me)
            killed.append(workers[0])
            workers[0].kill()

    with pytest.raises(DatasetError, match=r"worker process was killed \(signal 9\)") as err:
        ImageNetFolder(folder, cache_root=tmp_path / "cache", workers=2, workers_kind="processes",
                       progress=kill_a_worker)
    assert "rerun" in err.value.fix
    _, left = psutil.wait_procs(workers, timeout=10)
    assert not _alive(left)
    ds = ImageNetFolder(folder, cache_root=tmp_path / "cache", workers=2, workers_kind="processes")
    assert ds.preparation.reused + ds.preparation.processed == n and verify_cache(ds.cache_dir) == {}
    assert all(p.read_bytes() == expected for p in (ds.cache_dir / "images").glob("*.npy"))
