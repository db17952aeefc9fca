"""OpenImages for RetinaNet: synthetic samples, folder import, the download procedure against a local HTTP
server, and mAP from hand-built accuracy logs whose answer is known."""

from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from harness.accuracy.openimages import accuracy_text, openimages_map
from harness.backends.onnxruntime import OnnxRuntimeBackend
from harness.datasets.openimages import (
    MLPERF_CLASSES,
    OpenImages,
    Sources,
    SyntheticOpenImages,
    check_folder,
    download,
    preprocess_image,
)
from harness.errors import DatasetError
from harness.models.retinanet import RetinaNetTask, encode_detections
from harness.models.synthetic_retinanet import build_retinanet_onnx


def write_jpeg(path: Path, bgr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".jpg", bgr)
    assert ok
    path.write_bytes(data.tobytes())


def random_bgr(height: int, width: int, seed: int) -> np.ndarray:
    coarse = np.random.default_rng(seed).integers(0, 256, size=(height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)


# Synthetic ----------------------------------------------------------------------------------------


class TestSynthetic:
    def test_samples_have_the_reference_shape_and_range(self) -> None:
        ds = SyntheticOpenImages(4, seed=3)
        assert ds.synthetic and ds.count == 4 and "synthetic" in ds.description
        a = ds.sample(0)
        assert a.dtype == np.float32 and a.shape == (3, 800, 800) and a.flags.c_contiguous
        assert 0.0 <= a.min() and a.max() <= 1.0 and a.std() > 0.1
        np.testing.assert_array_equal(a, SyntheticOpenImages(4, seed=3).sample(0))
        assert not np.array_equal(a, ds.sample(1))
        assert not np.array_equal(a, SyntheticOpenImages(4, seed=4).sample(0))
        with pytest.raises(IndexError):
            ds.sample(4)

    def test_annotations_are_coco_and_describe_the_pixels(self) -> None:
        ds = SyntheticOpenImages(6, seed=0)
        coco = ds.annotations()
        assert [c["id"] for c in coco["categories"]] == list(range(264))
        assert [c["name"] for c in coco["categories"]] == list(MLPERF_CLASSES)
        assert [img["id"] for img in coco["images"]] == [1, 2, 3, 4, 5, 6]
        for index, image in enumerate(coco["images"]):
            assert (image["height"], image["width"]) == ds.image_size(index)
            boxes = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
            assert 1 <= len(boxes) <= 6
            for ann in boxes:
                x, y, w, h = ann["bbox"]
                assert 0 <= x and x + w <= image["width"] + 1e-9 and 0 <= y and y + h <= image["height"] + 1e-9
                assert ann["area"] == pytest.approx(w * h) and ann["iscrowd"] == 0
                assert 0 <= ann["category_id"] < 264
            # The last box is drawn on top: its area of the 800x800 sample is one flat colour.
            x, y, w, h = boxes[-1]["bbox"]
            sx, sy = 800 / image["width"], 800 / image["height"]
            inner = ds.sample(index)[:, int(y * sy) + 1:int((y + h) * sy) - 1, int(x * sx) + 1:int((x + w) * sx) - 1]
            assert inner.size and np.ptp(inner.reshape(3, -1), axis=1).max() == 0
        assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])

    def test_write_annotations(self, tmp_path: Path) -> None:
        path = SyntheticOpenImages(3).write_annotations(tmp_path / "a" / "openimages-mlperf.json")
        assert json.loads(path.read_text()) == SyntheticOpenImages(3).annotations()


# Preprocessing and folder import ------------------------------------------------------------------


def test_preprocessing_is_the_references() -> None:
    uniform = np.empty((480, 640, 3), np.uint8)
    uniform[:] = (10, 20, 30)  # BGR
    out = preprocess_image(uniform)
    assert out.dtype == np.float32 and out.shape == (3, 800, 800)
    np.testing.assert_allclose(out[:, 400, 400], np.array([30, 20, 10], np.float32) / 255, rtol=1e-6)
    assert np.ptp(out.reshape(3, -1), axis=1).max() < 1e-6

    # The reference's maybe_resize + pre_process_openimages_retinanet: float first, RGB, bilinear, / 255.
    img = random_bgr(300, 500, seed=1)
    expected = cv2.resize(cv2.cvtColor(img.astype(np.float32), cv2.COLOR_BGR2RGB), (800, 800),
                          interpolation=cv2.INTER_LINEAR) / 255.0
    np.testing.assert_array_equal(preprocess_image(img), expected.transpose(2, 0, 1))

    gray = preprocess_image(img[:, :, 0])
    np.testing.assert_array_equal(gray[0], gray[1])
    np.testing.assert_array_equal(gray[1], gray[2])


SIZES = {"a000000000000001.jpg": (480, 640), "b000000000000002.jpg": (300, 200), "c000000000000003.jpg": (256, 512)}


def make_folder(root: Path) -> dict:
    """A folder in the MLPerf layout with three JPEGs and their COCO annotations."""
    images, annotations = [], []
    for n, (name, (h, w)) in enumerate(SIZES.items(), start=1):
        write_jpeg(root / "validation" / "data" / name, random_bgr(h, w, seed=n))
        images.append({"id": n, "file_name": name, "height": h, "width": w, "license": None, "coco_url": None})
        annotations.append({"id": n, "image_id": n, "category_id": n, "bbox": [1.0, 2.0, 30.0, 40.0],
                            "area": 1200.0, "iscrowd": 0})
    coco = {"info": {}, "licenses": [], "categories": [{"id": i, "name": c, "supercategory": None}
                                                      for i, c in enumerate(MLPERF_CLASSES)],
            "images": images, "annotations": annotations}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "openimages-mlperf.json").write_text(json.dumps(coco))
    return coco


class TestFolder:
    def test_import_prepares_a_resumable_cache(self, tmp_path: Path) -> None:
        root = tmp_path / "openimages"
        make_folder(root)
        ds = OpenImages(root, cache_dir=tmp_path / "cache")
        assert not ds.synthetic and ds.count == 3 and str(root) in ds.description
        assert ds.image_sizes == list(SIZES.values())
        direct = [preprocess_image(cv2.imread(str(root / "validation" / "data" / name))) for name in SIZES]
        assert not ds.prepared
        np.testing.assert_array_equal(ds.sample(1), direct[1])  # uncached: from the JPEG

        calls = []
        assert ds.prepare(lambda stage, done, total: calls.append((stage, done, total))) == 3
        assert calls == [("preprocessing", 1, 3), ("preprocessing", 2, 3), ("preprocessing", 3, 3)]
        assert ds.prepared
        names = sorted(p.name for p in (tmp_path / "cache").iterdir())
        assert names == sorted(["complete.json"] + [f"{n}.npy" for n in SIZES])
        for i in range(3):
            np.testing.assert_array_equal(ds.sample(i), direct[i])
        assert ds.prepare() == 0

        # An interrupted preparation leaves complete files and temporaries only: it resumes.
        ds.cache_path(2).unlink()
        (tmp_path / "cache" / ".c000000000000003.jpg.npy.x1.tmp").write_bytes(b"half")
        assert not ds.prepared and ds.prepare() == 1 and ds.prepared
        np.testing.assert_array_equal(ds.sample(2), direct[2])

    def test_default_cache_lives_in_the_wizards_cache(self, tmp_path: Path, home: Path) -> None:
        make_folder(tmp_path / "oi")
        ds = OpenImages(tmp_path / "oi", count=1)
        assert ds.count == 1 and ds.cache_dir.is_relative_to(home / "cache" / "datasets" / "openimages")
        assert ds.prepare() == 1 and ds.cache_path(0).is_file()

    def test_missing_images_are_reported(self, tmp_path: Path) -> None:
        root = tmp_path / "oi"
        make_folder(root)
        (root / "validation" / "data" / "b000000000000002.jpg").unlink()
        check = check_folder(root)
        assert (check.images, check.present, check.missing) == (3, 2, ("b000000000000002.jpg",))
        assert not check.complete and "2 of 3 images present" in check.summary()
        with pytest.raises(DatasetError, match=r"incomplete: 2 of 3 .* 1 missing: b000000000000002.jpg") as err:
            OpenImages(root, cache_dir=tmp_path / "cache")
        assert "download" in err.value.fix
        # A subset before the missing image is usable: QSL indices stay positions in the annotations.
        assert OpenImages(root, count=1, cache_dir=tmp_path / "cache").count == 1
        assert check_folder(root, count=1).complete

    def test_bad_annotations_and_images_are_clear_errors(self, tmp_path: Path) -> None:
        root = tmp_path / "oi"
        with pytest.raises(DatasetError, match="does not exist"):
            OpenImages(root)
        make_folder(root)
        (root / "annotations" / "openimages-mlperf.json").write_text('{"images": [')
        with pytest.raises(DatasetError, match="not a valid JSON"):
            OpenImages(root)
        (root / "annotations" / "openimages-mlperf.json").write_text('{"images": []}')
        with pytest.raises(DatasetError, match="not in COCO format"):
            check_folder(root)
        make_folder(root)
        (root / "validation" / "data" / "a000000000000001.jpg").write_bytes(b"not a jpeg")
        with pytest.raises(DatasetError, match="not a readable image"):
            OpenImages(root, cache_dir=tmp_path / "cache").sample(0)


# Download against a local server ------------------------------------------------------------------

HEADER = ["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
          "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"]
# (ImageID, LabelName, XMin, XMax, YMin, YMax, IsGroupOf), in file order, which is not ImageID order.
BOXES = [
    ("c0ffee0000000003", "/m/t000", 0.25, 0.75, 0.1, 0.5, 0),   # Airplane
    ("0000aaaa00000001", "/m/t043", 0.0, 0.5, 0.0, 0.5, 1),     # Cat, a group
    ("dddd000000000004", "/m/x001", 0.1, 0.2, 0.1, 0.2, 0),     # not an MLPerf class: image left out
    ("0000aaaa00000001", "/m/x001", 0.1, 0.2, 0.1, 0.2, 0),     # not an MLPerf class: box left out
    ("b0b0000000000002", "/m/t263", 0.5, 1.0, 0.5, 1.0, 0),     # Zucchini
    ("c0ffee0000000003", "/m/t072", 0.0, 1.0, 0.0, 1.0, 0),     # Dog
]
SERVED = {"0000aaaa00000001": (480, 640), "b0b0000000000002": (300, 200), "c0ffee0000000003": (256, 512),
          "dddd000000000004": (100, 100)}


class Server:
    def __init__(self, root: Path):
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                requests.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def sources(self) -> Sources:
        return Sources(f"{self.url}/v5/class-descriptions-boxable.csv",
                       f"{self.url}/v5/validation-annotations-bbox.csv", f"{self.url}/bucket")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    site = tmp_path / "site"
    (site / "v5").mkdir(parents=True)
    with open(site / "v5" / "class-descriptions-boxable.csv", "w", newline="") as fh:
        writer = csv.writer(fh)  # no header, as the real file
        writer.writerows([f"/m/t{i:03d}", name] for i, name in enumerate(MLPERF_CLASSES))
        writer.writerow(["/m/x001", "Flying saucer"])
    with open(site / "v5" / "validation-annotations-bbox.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for image_id, label, x0, x1, y0, y1, group in BOXES:
            writer.writerow([image_id, "xclick", label, 1, x0, x1, y0, y1, 0, 1, group, 0, 0])
    for n, (image_id, (h, w)) in enumerate(SERVED.items()):
        write_jpeg(site / "bucket" / "validation" / f"{image_id}.jpg", random_bgr(h, w, seed=n))
    srv = Server(site)
    yield srv
    srv.close()


class TestDownload:
    def test_reference_procedure_builds_the_mlperf_folder(self, tmp_path: Path, server: Server) -> None:
        root = tmp_path / "openimages"
        stages = []
        report = download(root, sources=server.sources(), workers=2,
                          progress=lambda stage, done, total: stages.append((stage, done, total)))
        assert (report.images, report.downloaded) == (3, 3)
        assert report.annotation_file == root / "annotations" / "openimages-mlperf.json"
        assert ("images", 3, 3) in stages and stages[-1] == ("coco", 1, 1)
        assert not any("dddd" in r for r in server.requests)

        coco = json.loads(report.annotation_file.read_text())
        assert coco["info"] == {"dataset": "openimages_mlperf", "version": "v6"}
        assert [(c["id"], c["name"]) for c in coco["categories"]] == list(enumerate(MLPERF_CLASSES))
        # Images sorted by ImageID, ids from 1, sizes read from the JPEGs.
        assert [(i["id"], i["file_name"], i["height"], i["width"]) for i in coco["images"]] == [
            (1, "0000aaaa00000001.jpg", 480, 640), (2, "b0b0000000000002.jpg", 300, 200),
            (3, "c0ffee0000000003.jpg", 256, 512)]
        # Kept boxes numbered in file order, listed by ImageID; pixels = fractions x the image's size.
        by_id = {a["id"]: a for a in coco["annotations"]}
        assert [a["id"] for a in coco["annotations"]] == [2, 3, 1, 4]
        assert by_id[1]["image_id"] == 3 and by_id[1]["category_id"] == 0
        assert by_id[1]["bbox"] == [128.0, 25.6, 256.0, 102.4] and by_id[1]["area"] == pytest.approx(26214.4)
        assert (by_id[2]["image_id"], by_id[2]["category_id"], by_id[2]["bbox"]) == (1, 43, [0.0, 0.0, 320.0, 240.0])
        assert by_id[2]["iscrowd"] == by_id[2]["IsGroupOf"] == 1 and by_id[2]["IsTruncated"] == 1
        assert (by_id[3]["image_id"], by_id[3]["category_id"]) == (2, 263)
        assert (by_id[4]["image_id"], by_id[4]["category_id"], by_id[4]["bbox"]) == (3, 72, [0.0, 0.0, 512.0, 256.0])

        # The result imports as a folder, and a second run fetches nothing.
        assert OpenImages(root, cache_dir=tmp_path / "cache").count == 3
        server.requests.clear()
        again = download(root, sources=server.sources())
        assert (again.images, again.downloaded, server.requests) == (3, 0, [])

    def test_max_images_draws_as_the_reference(self, tmp_path: Path, server: Server) -> None:
        report = download(tmp_path / "oi", sources=server.sources(), max_images=2, seed=42)
        # The reference: np.random.seed(42); np.random.choice(len(image_list), size=2) over the images
        # in order of first appearance (c0ffee, 0000aaaa, b0b0).
        np.random.seed(42)
        drawn = [["c0ffee0000000003", "0000aaaa00000001", "b0b0000000000002"][i] for i in np.random.choice(3, size=2)]
        names = sorted(f"{i}.jpg" for i in set(drawn))
        assert sorted(p.name for p in (tmp_path / "oi" / "validation" / "data").iterdir()) == names
        assert [i["file_name"] for i in json.loads(report.annotation_file.read_text())["images"]] == names
        assert report.skipped_duplicates == 2 - len(set(drawn))

    def test_missing_image_fails_and_keeps_the_rest(self, tmp_path: Path, server: Server) -> None:
        (tmp_path / "site" / "bucket" / "validation" / "b0b0000000000002.jpg").unlink()
        root = tmp_path / "oi"
        with pytest.raises(DatasetError, match=r"1 of 3 OpenImages images could not be downloaded .*b0b0.*404"):
            download(root, sources=server.sources())
        assert sorted(p.name for p in (root / "validation" / "data").iterdir()) == [
            "0000aaaa00000001.jpg", "c0ffee0000000003.jpg"]
        assert not (root / "annotations" / "openimages-mlperf.json").exists()

    def test_no_network_is_a_clear_error(self, tmp_path: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(DatasetError, match="Could not download") as err:
            download(tmp_path / "oi", sources=Sources(f"{url}/c.csv", f"{url}/b.csv", url))
        assert "--dataset-path" in err.value.fix


# mAP ----------------------------------------------------------------------------------------------


def coco_file(tmp_path: Path, images: list[tuple[int, int]], boxes: list[tuple[int, int, list[float]]]) -> Path:
    """Annotations with ``images`` as (height, width) and ``boxes`` as (image index, category, xywh px)."""
    coco = {"categories": [{"id": i, "name": c, "supercategory": None} for i, c in enumerate(MLPERF_CLASSES)],
            "images": [{"id": 100 + n, "file_name": f"{n}.jpg", "height": h, "width": w}
                       for n, (h, w) in enumerate(images)],
            "annotations": [{"id": k + 1, "image_id": 100 + n, "category_id": c, "bbox": b, "area": b[2] * b[3],
                             "iscrowd": 0} for k, (n, c, b) in enumerate(boxes)]}
    path = tmp_path / "openimages-mlperf.json"
    path.write_text(json.dumps(coco))
    return path


def response(idx: int, size: tuple[int, int], found: list[tuple[int, list[float], float]]) -> np.ndarray:
    """The task's response for detections given in original pixels: (category, xywh, score)."""
    h, w = size
    boxes = np.array([[x * 800 / w, y * 800 / h, (x + bw) * 800 / w, (y + bh) * 800 / h]
                      for _, (x, y, bw, bh), _ in found], np.float32).reshape(-1, 4)
    scores = np.array([s for *_, s in found], np.float32)
    labels = np.array([c for c, *_ in found], np.int64)
    return encode_detections(idx, boxes, scores, labels)


def accuracy_log(tmp_path: Path, responses: list[tuple[int, np.ndarray]]) -> Path:
    entries = [{"seq_id": n, "qsl_idx": idx, "data": data.tobytes().hex().upper()}
               for n, (idx, data) in enumerate(responses)]
    path = tmp_path / "mlperf_log_accuracy.json"
    path.write_text(json.dumps(entries))
    return path


IMAGES = [(480, 640), (600, 400), (800, 800), (300, 500)]
GT = [(0, 3, [100.0, 50.0, 200.0, 150.0]), (0, 7, [10.0, 300.0, 60.0, 90.0]), (1, 3, [20.0, 20.0, 300.0, 500.0]),
      (2, 263, [0.0, 0.0, 799.0, 799.0]), (3, 0, [250.0, 100.0, 120.0, 80.0]), (3, 7, [40.0, 40.0, 50.0, 50.0])]


class TestMap:
    def test_perfect_detections_score_100(self, tmp_path: Path) -> None:
        ann = coco_file(tmp_path, IMAGES, GT)
        responses = [(n, response(n, IMAGES[n], [(c, b, 0.9 - 0.1 * k) for k, (i, c, b) in enumerate(GT) if i == n]))
                     for n in range(4)]
        result = openimages_map(accuracy_log(tmp_path, responses), ann)
        assert result["metric"] == "mAP" and result["value"] == pytest.approx(100.0, abs=1e-9)
        assert (result["images"], result["detections"], result["no_results"]) == (4, 6, 0)
        assert (result["duplicates"], result["index_mismatches"]) == (0, 0)
        assert "Average Precision" in result["summary"] and len(result["stats"]) == 12

    def test_an_image_without_detections_counts(self, tmp_path: Path) -> None:
        ann = coco_file(tmp_path, IMAGES[:2], [(0, 5, [10.0, 10.0, 100.0, 100.0]), (1, 9, [10.0, 10.0, 100.0, 100.0])])
        hit = response(0, IMAGES[0], [(5, [10.0, 10.0, 100.0, 100.0], 0.7)])
        empty = response(1, IMAGES[1], [])
        assert empty.size == 0
        result = openimages_map(accuracy_log(tmp_path, [(0, hit), (1, empty)]), ann)
        # Class 5 found (AP 1), class 9 missed on the answered-but-empty image (AP 0).
        assert result["value"] == pytest.approx(50.0, abs=1e-9)
        assert (result["images"], result["no_results"]) == (2, 1)
        # An image the log does not answer at all is not evaluated: class 9 then has no ground truth.
        assert openimages_map(accuracy_log(tmp_path, [(0, hit)]), ann)["value"] == pytest.approx(100.0)

    def test_half_the_boxes_shifted(self, tmp_path: Path) -> None:
        # Four images with one 168 x 100 box of class 7. Two detections are exact (score 0.9); two are
        # shifted 32 px sideways (score 0.8): IoU = (168 - 32) / (168 + 32) = 0.68.
        # IoU thresholds .50 .55 .60 .65: every detection matches, AP = 1.
        # Thresholds .70 ... .95 (6): the two exact ones come first, recall reaches 0.5 at precision 1 and
        # then only false positives follow: precision 1 at the 51 recall points 0, .01, ..., .50 of 101.
        expected = 100 * (4 * 1.0 + 6 * 51 / 101) / 10
        assert expected == pytest.approx(70.29703, abs=1e-5)
        size, box = (480, 640), [100.0, 50.0, 168.0, 100.0]
        ann = coco_file(tmp_path, [size] * 4, [(n, 7, box) for n in range(4)])
        shifted = [box[0] + 32, *box[1:]]
        responses = [(0, response(0, size, [(7, box, 0.9)])), (1, response(1, size, [(7, box, 0.9)])),
                     (2, response(2, size, [(7, shifted, 0.8)])), (3, response(3, size, [(7, shifted, 0.8)]))]
        result = openimages_map(accuracy_log(tmp_path, responses), ann)
        assert result["value"] == pytest.approx(expected, abs=1e-6)
        assert result["stats"][1] == pytest.approx(1.0)  # AP at IoU .50

    def test_duplicates_placeholders_and_bad_indices(self, tmp_path: Path) -> None:
        ann = coco_file(tmp_path, IMAGES[:1], [(0, 5, [10.0, 10.0, 100.0, 100.0])])
        good = response(0, IMAGES[0], [(5, [10.0, 10.0, 100.0, 100.0], 0.7)])
        wrong = response(0, IMAGES[0], [(6, [300.0, 300.0, 50.0, 50.0], 0.9)])
        result = openimages_map(accuracy_log(tmp_path, [(0, good), (0, wrong)]), ann)
        assert result["value"] == pytest.approx(100.0) and result["duplicates"] == 1

        placeholder = good.reshape(-1, 7).copy()
        placeholder[:, 0] = RetinaNetTask.UNKNOWN_INDEX
        result = openimages_map(accuracy_log(tmp_path, [(0, placeholder.reshape(-1))]), ann)
        assert result["value"] == pytest.approx(100.0) and result["index_mismatches"] == 1

        with pytest.raises(DatasetError, match="sample 5"):
            openimages_map(accuracy_log(tmp_path, [(5, good)]), ann)
        nothing = openimages_map(accuracy_log(tmp_path, [(0, response(0, IMAGES[0], []))]), ann)
        assert nothing["value"] == 0.0 and nothing["no_results"] == 1

    def test_accuracy_text(self, tmp_path: Path) -> None:
        ann = coco_file(tmp_path, IMAGES[:2], [(0, 5, [10.0, 10.0, 100.0, 100.0]), (1, 9, [10.0, 10.0, 100.0, 100.0])])
        log = accuracy_log(tmp_path, [(0, response(0, IMAGES[0], [(5, [10.0, 10.0, 100.0, 100.0], 0.7)])),
                                      (1, response(1, IMAGES[1], []))])
        text = accuracy_text(openimages_map(log, ann), log)
        assert text.endswith(f"mAP=50.000%\nhash={hashlib.sha256(log.read_bytes()).hexdigest()}\n")
        assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in text

    def test_synthetic_dataset_end_to_end(self, tmp_path: Path) -> None:
        ds = SyntheticOpenImages(3, seed=5)
        coco = ds.annotations()
        perfect = []
        for n, image in enumerate(coco["images"]):
            found = [(a["category_id"], a["bbox"], 0.9) for a in coco["annotations"] if a["image_id"] == image["id"]]
            perfect.append((n, response(n, ds.image_size(n), found)))
        assert openimages_map(accuracy_log(tmp_path, perfect), coco)["value"] == pytest.approx(100.0)

        model = build_retinanet_onnx(tmp_path / "tiny.onnx", variant="tiny")
        backend = OnnxRuntimeBackend(model.path, device="cpu", threads=2, outputs=RetinaNetTask.outputs,
                                     model="retinanet")
        task = RetinaNetTask(backend)
        batch = np.stack([ds.sample(i) for i in range(3)])
        responses = list(enumerate(task.infer(batch, [0, 1, 2])))
        result = openimages_map(accuracy_log(tmp_path, responses), ds.write_annotations(tmp_path / "ann.json"))
        # Random weights: the value means nothing, but every step ran on real detections.
        assert result["detections"] == sum(r.size // 7 for _, r in responses) > 0
        assert 0.0 <= result["value"] < 5.0 and result["index_mismatches"] == 0
