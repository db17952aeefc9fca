"""OpenImages (MLPerf subset) for RetinaNet: synthetic samples, import of the reference folder, and the
reference's download procedure.

The MLPerf set is 24,781 validation images of Open Images v6 holding at least one box of the 264
MLPerf classes, described by a COCO-format ``annotations/openimages-mlperf.json`` beside
``validation/data/<ImageID>.jpg``. A sample's QSL index is its position in that file's ``images`` list
(the accuracy script looks images up by it). Samples are what the reference preprocessing produces:
OpenCV BGR -> RGB, float32, resized to 800x800 with ``cv2.resize`` (bilinear, aspect ratio not kept),
divided by 255, NCHW.

OpenCV (``opencv-python-headless``) is needed to import or download the real images; the synthetic
generator needs numpy only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from ..fsutil import write_bytes_atomically
from ..paths import locations

IMAGE_SIZE = 800
NUM_CLASSES = 264
DATASET_SIZE = 24_781
ANNOTATIONS_FILE = Path("annotations") / "openimages-mlperf.json"
IMAGES_DIR = Path("validation") / "data"
PREPROCESS_VERSION = 1
"""Bumped when the preprocessing changes, so older caches are not used."""
_CACHE_MARKER = "complete.json"

# The reference's sources (vision/classification_and_detection/tools/openimages.py): Open Images v5
# boxable class descriptions and validation boxes (the v6 validation boxes are the same), and the
# images from the public, unsigned "open-images-dataset" S3 bucket as validation/<ImageID>.jpg.
CLASS_DESCRIPTIONS_URL = "https://storage.googleapis.com/openimages/v5/class-descriptions-boxable.csv"
BBOX_ANNOTATIONS_URL = "https://storage.googleapis.com/openimages/v5/validation-annotations-bbox.csv"
IMAGES_BASE_URL = "https://open-images-dataset.s3.amazonaws.com"
CLASS_DESCRIPTIONS_FILE = "class-descriptions-boxable.csv"
BBOX_ANNOTATIONS_FILE = "validation-annotations-bbox.csv"

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, called in the caller's thread as work completes."""

# The 264 classes of tools/openimages_mlperf.sh, in its order: a class's position is its category id.
MLPERF_CLASSES = (
    "Airplane", "Antelope", "Apple", "Backpack", "Balloon", "Banana", "Barrel", "Baseball bat", "Baseball glove",
    "Bee", "Beer", "Bench", "Bicycle", "Bicycle helmet", "Bicycle wheel", "Billboard", "Book", "Bookcase", "Boot",
    "Bottle", "Bowl", "Bowling equipment", "Box", "Boy", "Brassiere", "Bread", "Broccoli", "Bronze sculpture",
    "Bull", "Bus", "Bust", "Butterfly", "Cabinetry", "Cake", "Camel", "Camera", "Candle", "Candy", "Cannon",
    "Canoe", "Carrot", "Cart", "Castle", "Cat", "Cattle", "Cello", "Chair", "Cheese", "Chest of drawers", "Chicken",
    "Christmas tree", "Coat", "Cocktail", "Coffee", "Coffee cup", "Coffee table", "Coin", "Common sunflower",
    "Computer keyboard", "Computer monitor", "Convenience store", "Cookie", "Countertop", "Cowboy hat", "Crab",
    "Crocodile", "Cucumber", "Cupboard", "Curtain", "Deer", "Desk", "Dinosaur", "Dog", "Doll", "Dolphin", "Door",
    "Dragonfly", "Drawer", "Dress", "Drum", "Duck", "Eagle", "Earrings", "Egg (Food)", "Elephant", "Falcon",
    "Fedora", "Flag", "Flowerpot", "Football", "Football helmet", "Fork", "Fountain", "French fries", "French horn",
    "Frog", "Giraffe", "Girl", "Glasses", "Goat", "Goggles", "Goldfish", "Gondola", "Goose", "Grape", "Grapefruit",
    "Guitar", "Hamburger", "Handbag", "Harbor seal", "Headphones", "Helicopter", "High heels", "Hiking equipment",
    "Horse", "House", "Houseplant", "Human arm", "Human beard", "Human body", "Human ear", "Human eye",
    "Human face", "Human foot", "Human hair", "Human hand", "Human head", "Human leg", "Human mouth", "Human nose",
    "Ice cream", "Jacket", "Jeans", "Jellyfish", "Juice", "Kitchen & dining room table", "Kite", "Lamp", "Lantern",
    "Laptop", "Lavender (Plant)", "Lemon", "Light bulb", "Lighthouse", "Lily", "Lion", "Lipstick", "Lizard", "Man",
    "Maple", "Microphone", "Mirror", "Mixing bowl", "Mobile phone", "Monkey", "Motorcycle", "Muffin", "Mug", "Mule",
    "Mushroom", "Musical keyboard", "Necklace", "Nightstand", "Office building", "Orange", "Owl", "Oyster",
    "Paddle", "Palm tree", "Parachute", "Parrot", "Pen", "Penguin", "Personal flotation device", "Piano",
    "Picture frame", "Pig", "Pillow", "Pizza", "Plate", "Platter", "Porch", "Poster", "Pumpkin", "Rabbit", "Rifle",
    "Roller skates", "Rose", "Salad", "Sandal", "Saucer", "Saxophone", "Scarf", "Sea lion", "Sea turtle", "Sheep",
    "Shelf", "Shirt", "Shorts", "Shrimp", "Sink", "Skateboard", "Ski", "Skull", "Skyscraper", "Snake", "Sock",
    "Sofa bed", "Sparrow", "Spider", "Spoon", "Sports uniform", "Squirrel", "Stairs", "Stool", "Strawberry",
    "Street light", "Studio couch", "Suit", "Sun hat", "Sunglasses", "Surfboard", "Sushi", "Swan", "Swimming pool",
    "Swimwear", "Tank", "Tap", "Taxi", "Tea", "Teddy bear", "Television", "Tent", "Tie", "Tiger", "Tin can", "Tire",
    "Toilet", "Tomato", "Tortoise", "Tower", "Traffic light", "Train", "Tripod", "Truck", "Trumpet", "Umbrella",
    "Van", "Vase", "Vehicle registration plate", "Violin", "Wall clock", "Waste container", "Watch", "Whale",
    "Wheel", "Wheelchair", "Whiteboard", "Window", "Wine", "Wine glass", "Woman", "Zebra", "Zucchini",
)


def _cv2():
    try:
        import cv2
    except ImportError:
        raise DatasetError("OpenCV is needed to read OpenImages JPEGs the way the MLPerf reference does.",
                           "pip install opencv-python-headless (or use the synthetic dataset).") from None
    return cv2


def preprocess_image(bgr: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """The reference's ``pre_process_openimages_retinanet`` on an image as ``cv2.imread`` returns it.

    float32 first, then (grayscale ->) RGB, ``cv2.resize`` to size x size with INTER_LINEAR (no aspect
    ratio kept, resized in float so nothing is rounded), / 255, HWC -> CHW. Returns float32 [3,size,size].
    """
    cv2 = _cv2()
    img = np.array(bgr, dtype=np.float32)
    if img.ndim < 3 or img.shape[2] != 3:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    img /= 255.0
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def read_image(path: Path) -> np.ndarray:
    """``cv2.imread`` (BGR, EXIF orientation applied), as the reference reads images and their sizes."""
    img = _cv2().imread(str(path))
    if img is None:
        raise DatasetError(f"{path} is not a readable image (truncated or not a JPEG?).",
                           "delete it and download it again, or replace it with the original file.")
    return img


def read_annotations(path: Path) -> dict[str, Any]:
    """Load a COCO-format annotation file and check the keys the harness and pycocotools use."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path} does not exist: the OpenImages folder has no MLPerf annotations.",
                           f"point --dataset-path at a folder holding {ANNOTATIONS_FILE} and {IMAGES_DIR}/, "
                           "or download the dataset.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not a valid JSON annotation file ({exc}).",
                           "download the dataset again (the file may be truncated).") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise DatasetError(f"{path} is not in COCO format (it needs images, annotations and categories lists).",
                           "use the openimages-mlperf.json made by the MLPerf download procedure.")
    for image in data["images"]:
        if not all(k in image for k in ("id", "file_name", "height", "width")):
            raise DatasetError(f"{path}: an image entry lacks id, file_name, height or width: {image}.",
                               "use the openimages-mlperf.json made by the MLPerf download procedure.")
    return data


# Synthetic ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SyntheticImage:
    height: int
    width: int
    boxes: np.ndarray
    """float64 [n,4] x, y, w, h in pixels of the original image."""
    categories: np.ndarray
    colours: np.ndarray
    background: np.ndarray


class SyntheticOpenImages:
    """Generated OpenImages-shaped samples with COCO annotations made alongside. Not an MLPerf dataset.

    Sample ``i`` stands for an image of a seeded random original size (320..1024 px a side) holding 1 to
    6 boxes of random MLPerf classes, drawn as flat-coloured rectangles on a blocky random background,
    then "resized" to 800x800: it is drawn directly at 800x800 from the box coordinates scaled by
    800/width and 800/height, so the annotations (in original pixels, as in ``openimages-mlperf.json``)
    describe exactly what the model sees. Values in [0,1], float32, NCHW. Any sample and its
    annotations can be rebuilt on their own from (seed, index).
    """

    synthetic = True
    layout = "NCHW"

    def __init__(self, count: int, *, seed: int = 0):
        self.count = count
        self.seed = seed
        self.description = (f"synthetic OpenImages ({count} generated 800x800 images with seeded random boxes "
                            "of the 264 MLPerf classes)")

    def _image(self, index: int) -> _SyntheticImage:
        if not 0 <= index < self.count:
            raise IndexError(f"sample {index} out of range (0..{self.count - 1})")
        rng = np.random.default_rng((self.seed, index))
        height, width = (int(v) for v in rng.integers(320, 1025, size=2))
        n = int(rng.integers(1, 7))
        sizes = rng.uniform(0.08, 0.6, size=(n, 2)) * (width, height)
        corners = rng.uniform(0.0, 1.0, size=(n, 2)) * ((width, height) - sizes)
        return _SyntheticImage(
            height=height, width=width, boxes=np.concatenate([corners, sizes], axis=1),
            categories=rng.integers(0, NUM_CLASSES, size=n), colours=rng.uniform(0.0, 1.0, size=(n, 3)),
            background=rng.uniform(0.0, 1.0, size=(3, 25, 25)))

    def sample(self, index: int) -> np.ndarray:
        img = self._image(index)
        blocks = IMAGE_SIZE // 25
        out = np.repeat(np.repeat(img.background, blocks, axis=1), blocks, axis=2).astype(np.float32)
        scale = np.array([IMAGE_SIZE / img.width, IMAGE_SIZE / img.height] * 2)
        for box, colour in zip(img.boxes * scale, img.colours, strict=True):
            x0, y0 = int(round(box[0])), int(round(box[1]))
            x1, y1 = int(round(box[0] + box[2])), int(round(box[1] + box[3]))
            out[:, y0:y1, x0:x1] = colour.astype(np.float32)[:, None, None]
        return out

    def image_size(self, index: int) -> tuple[int, int]:
        """(height, width) of the original image sample ``index`` stands for."""
        img = self._image(index)
        return img.height, img.width

    def annotations(self) -> dict[str, Any]:
        """COCO-format annotations in the layout of ``openimages-mlperf.json`` (image ids from 1, in QSL order)."""
        images, annotations = [], []
        for index in range(self.count):
            img = self._image(index)
            images.append({"id": index + 1, "file_name": f"synthetic-{self.seed}-{index:06d}.jpg",
                           "height": img.height, "width": img.width, "license": None, "coco_url": None})
            for box, category in zip(img.boxes, img.categories, strict=True):
                bbox = [float(v) for v in box]
                annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": int(category),
                                    "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0})
        return {"info": {"dataset": "openimages_mlperf (synthetic)", "version": "v6", "seed": self.seed},
                "licenses": [], "categories": _categories(MLPERF_CLASSES), "images": images,
                "annotations": annotations}

    def write_annotations(self, path: Path) -> Path:
        """Write :meth:`annotations` as JSON to ``path`` (atomically) and return the path."""
        _write_bytes(Path(path), json.dumps(self.annotations()).encode("utf-8"))
        return Path(path)


def _categories(classes: Sequence[str]) -> list[dict[str, Any]]:
    return [{"id": i, "name": name, "supercategory": None} for i, name in enumerate(classes)]


# Import of an existing folder ----------------------------------------------------------------------


@dataclass(frozen=True)
class FolderCheck:
    """What :func:`check_folder` found."""

    root: Path
    annotation_file: Path
    images: int
    """Images listed in the annotation file."""
    missing: tuple[str, ...]
    """File names listed but absent from ``validation/data``."""

    @property
    def present(self) -> int:
        return self.images - len(self.missing)

    @property
    def complete(self) -> bool:
        return not self.missing

    def summary(self) -> str:
        text = f"{self.present} of {self.images} images present in {self.root / IMAGES_DIR}"
        if self.missing:
            shown = ", ".join(self.missing[:5]) + (", ..." if len(self.missing) > 5 else "")
            text += f"; {len(self.missing)} missing: {shown}"
        return text


def check_folder(root: Path, *, count: int | None = None) -> FolderCheck:
    """Count the images ``annotations/openimages-mlperf.json`` lists (the first ``count`` of them if
    given) and report those missing from ``validation/data``. Raises DatasetError when the annotation
    file is missing or invalid."""
    root = Path(root)
    annotation_file = root / ANNOTATIONS_FILE
    images = read_annotations(annotation_file)["images"]
    if count is not None:
        images = images[:count]
    data = root / IMAGES_DIR
    missing = tuple(img["file_name"] for img in images if not (data / img["file_name"]).is_file())
    return FolderCheck(root=root, annotation_file=annotation_file, images=len(images), missing=missing)


class OpenImages:
    """The MLPerf OpenImages folder: ``<root>/validation/data/*.jpg`` + ``<root>/annotations/openimages-mlperf.json``.

    Sample ``i`` is image ``i`` of the annotation file, preprocessed as the reference does. ``count``
    keeps the first ``count`` images (the reference's ``--count``); every kept image must be present,
    since QSL indices are positions in the annotation file (a missing image would shift them).
    :meth:`prepare` writes one preprocessed ``.npy`` per image into ``cache_dir`` (about 7.7 MB each,
    190 GB for all 24,781, as the reference's preprocessed folder): each file is written to a
    temporary name and renamed, so an interrupted preparation leaves only complete files and resumes
    where it stopped. :meth:`sample` reads the cache and falls back to preprocessing the JPEG.
    """

    synthetic = False
    layout = "NCHW"

    def __init__(self, root: Path, *, count: int | None = None, cache_dir: Path | None = None):
        self.root = Path(root)
        self.annotation_file = self.root / ANNOTATIONS_FILE
        images = read_annotations(self.annotation_file)["images"]
        if not images:
            raise DatasetError(f"{self.annotation_file} lists no images.",
                               "download the dataset again or use another --dataset-path.")
        if count is not None:
            if count < 1:
                raise DatasetError(f"The OpenImages subset size must be at least 1 (got {count}).",
                                   "choose a positive --count.")
            images = images[:count]
        self.images = images
        self.count = len(images)
        check = check_folder(self.root, count=self.count)
        if check.missing:
            raise DatasetError(f"The OpenImages folder is incomplete: {check.summary()}.",
                               "download the missing images again (the download resumes), or use a subset "
                               "that excludes them.")
        key = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:12]
        self.cache_dir = Path(cache_dir) if cache_dir else (
            locations().datasets / "openimages" / f"preprocessed-{IMAGE_SIZE}-NCHW-v{PREPROCESS_VERSION}-{key}")
        self.description = f"OpenImages MLPerf ({self.count} images from {self.root})"

    @property
    def image_sizes(self) -> list[tuple[int, int]]:
        """(height, width) of each original image, from the annotation file."""
        return [(int(img["height"]), int(img["width"])) for img in self.images]

    def image_path(self, index: int) -> Path:
        return self.root / IMAGES_DIR / self.images[index]["file_name"]

    def cache_path(self, index: int) -> Path:
        return self.cache_dir / (self.images[index]["file_name"] + ".npy")

    @property
    def prepared(self) -> bool:
        """Whether every sample has its preprocessed file."""
        return all(self.cache_path(i).is_file() for i in range(self.count))

    def prepare(self, progress: Progress | None = None) -> int:
        """Preprocess every image not cached yet; returns how many were written. Resumable.

        ``complete.json``, written last, holds the size and sha256 of every cached file
        (:mod:`harness.cache_integrity`): a truncated, deleted or modified one is rebuilt, and said so
        through ``progress``."""
        from .. import cache_integrity

        names = [self.cache_path(i).name for i in range(self.count)]
        marker = self.cache_dir / _CACHE_MARKER
        try:
            files = json.loads(marker.read_text(encoding="utf-8")).get("files")
        except (OSError, ValueError, AttributeError):
            files = None
        broken = cache_integrity.manifest_problems(self.cache_dir, files, names) if isinstance(files, dict) else {}
        if isinstance(files, dict) and not broken:
            return 0
        if broken and progress:
            progress(cache_integrity.rebuilding_text(broken), len(broken), len(broken))
        for name in broken:
            (self.cache_dir / name).unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        todo = [i for i in range(self.count) if not self.cache_path(i).is_file()]
        if not todo:
            self._write_cache_marker(names)
            return 0
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        needed = len(todo) * 3 * IMAGE_SIZE * IMAGE_SIZE * 4
        free = shutil.disk_usage(self.cache_dir).free
        if free < needed:
            raise DatasetError(f"Preprocessing {len(todo)} OpenImages images needs {needed / 1e9:.1f} GB in "
                               f"{self.cache_dir}, which has {free / 1e9:.1f} GB free.",
                               "free some space, or use a subset (--count).")
        done_before = self.count - len(todo)
        for n, i in enumerate(todo, start=1):
            array = preprocess_image(read_image(self.image_path(i)))
            _save_npy(self.cache_path(i), array)
            if progress:
                progress("preprocessing", done_before + n, self.count)
        self._write_cache_marker(names)
        return len(todo)

    def _write_cache_marker(self, names: list[str]) -> None:
        from .. import cache_integrity

        try:
            files = cache_integrity.manifest(self.cache_dir, names)
        except OSError as exc:
            raise DatasetError(f"Could not read back the OpenImages cache in {self.cache_dir}: "
                               f"{exc.strerror or exc}.", "check the folder, then rerun.") from exc
        record = {"version": PREPROCESS_VERSION, "root": str(self.root.resolve()), "files": files}
        _write_bytes(self.cache_dir / _CACHE_MARKER, (json.dumps(record) + "\n").encode("utf-8"))

    def sample(self, index: int) -> np.ndarray:
        cached = self.cache_path(index)
        if cached.is_file():
            return np.load(cached)
        return preprocess_image(read_image(self.image_path(index)))


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        write_bytes_atomically(path, data, sync=False)  # caches and downloads that can be redone
    except OSError as exc:
        raise DatasetError(f"Could not write {path}: {exc.strerror or exc}.",
                           f"make sure {path.parent} is writable and has space, then rerun.") from exc


def _save_npy(path: Path, array: np.ndarray) -> None:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    _write_bytes(path, buffer.getvalue())


# Download (the reference's tools/openimages.py, with urllib) ------------------------------------


@dataclass(frozen=True)
class Sources:
    """Where :func:`download` fetches from; the defaults are the reference's."""

    class_descriptions_url: str = CLASS_DESCRIPTIONS_URL
    annotations_url: str = BBOX_ANNOTATIONS_URL
    images_base_url: str = IMAGES_BASE_URL
    """Images are fetched as ``<images_base_url>/validation/<ImageID>.jpg``."""


@dataclass
class DownloadReport:
    """What :func:`download` did."""

    root: Path
    annotation_file: Path
    images: int
    downloaded: int
    """Images fetched by this call (the others were already there)."""
    seconds: float
    skipped_duplicates: int = 0
    """With ``max_images``: draws that repeated an image already drawn."""


def _fetch(url: str, path: Path, *, timeout: float, retries: int = 2) -> bool:
    """Download ``url`` to ``path`` unless it exists (a file under the final name is complete: it is
    written to a temporary name first). Returns whether it was downloaded."""
    if path.is_file():
        return False
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read()
            _write_bytes(path, data)
            return True
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == retries:
                raise DatasetError(f"Downloading {url} failed: HTTP {exc.code} {exc.reason}.",
                                   "check the URL (or mirror) and rerun; files already downloaded are kept.") from None
        except (urllib.error.URLError, OSError) as exc:
            if attempt == retries:
                reason = getattr(exc, "reason", exc)
                raise DatasetError(f"Could not download {url} ({reason}).",
                                   "check the network connection and rerun (files already downloaded are kept), "
                                   "or import an existing OpenImages folder with --dataset-path.") from None
        time.sleep(0.5 * 2 ** attempt)
    return False


def read_class_descriptions(path: Path) -> dict[str, str]:
    """``class-descriptions-boxable.csv`` (no header: LabelName, DisplayName) as LabelName -> DisplayName."""
    with open(path, newline="", encoding="utf-8") as fh:
        return {row[0]: row[1] for row in csv.reader(fh) if len(row) >= 2}


def read_box_annotations(path: Path) -> list[dict[str, str]]:
    """``validation-annotations-bbox.csv`` (header: ImageID, Source, LabelName, Confidence, XMin, XMax,
    YMin, YMax, IsOccluded, IsTruncated, IsGroupOf, IsDepiction, IsInside) as rows."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def select_images(classes: Sequence[str], class_map: dict[str, str], rows: list[dict[str, str]]) -> list[str]:
    """ImageIDs with a box of one of ``classes``, in order of first appearance (the reference's
    ``get_image_list``)."""
    wanted = set(classes)
    labels = {label for label, name in class_map.items() if name in wanted}
    return list(dict.fromkeys(row["ImageID"] for row in rows if row["LabelName"] in labels))


def export_to_coco(classes: Sequence[str], class_map: dict[str, str], rows: list[dict[str, str]],
                   image_ids: Sequence[str], images_dir: Path) -> dict[str, Any]:
    """The reference's ``export_to_coco``: category id = position in ``classes``; images sorted by ImageID
    with ids from 1; boxes in pixels of the image as ``cv2.imread`` reads it; ``iscrowd`` = IsGroupOf.

    Annotation ids are the boxes' positions (from 1) among the kept rows in CSV order, as the
    reference's merged DataFrame index; the reference then sorts by ImageID with a non-stable sort, so
    the order of boxes within one image may differ from its file (ids and mAP do not).
    """
    category = {name: i for i, name in enumerate(classes)}
    label_category = {label: category[name] for label, name in class_map.items() if name in category}
    sizes = {}
    for image_id in dict.fromkeys(image_ids):
        height, width = read_image(Path(images_dir) / f"{image_id}.jpg").shape[:2]
        sizes[image_id] = (int(height), int(width))
    kept = [row for row in rows if row["ImageID"] in sizes and row["LabelName"] in label_category]
    numbered = sorted(enumerate(kept, start=1), key=lambda item: item[1]["ImageID"])
    coco_ids: dict[str, int] = {}
    for _, row in numbered:
        coco_ids.setdefault(row["ImageID"], len(coco_ids) + 1)
    images = [{"id": coco_id, "file_name": f"{image_id}.jpg", "height": sizes[image_id][0],
               "width": sizes[image_id][1], "license": None, "coco_url": None}
              for image_id, coco_id in coco_ids.items()]
    annotations = []
    for ann_id, row in numbered:
        height, width = sizes[row["ImageID"]]
        x_min, x_max, y_min, y_max = (float(row[k]) for k in ("XMin", "XMax", "YMin", "YMax"))
        bbox = [x_min * width, y_min * height, (x_max - x_min) * width, (y_max - y_min) * height]
        flags = {k: int(row[k]) for k in ("IsOccluded", "IsInside", "IsDepiction", "IsTruncated", "IsGroupOf")}
        annotations.append({"id": ann_id, "image_id": coco_ids[row["ImageID"]],
                            "category_id": label_category[row["LabelName"]], "bbox": bbox,
                            "area": bbox[2] * bbox[3], "iscrowd": flags["IsGroupOf"], **flags})
    return {"info": {"dataset": "openimages_mlperf", "version": "v6"}, "licenses": [],
            "categories": _categories(classes), "images": images, "annotations": annotations}


def download(root: Path, *, sources: Sources = Sources(), classes: Sequence[str] = MLPERF_CLASSES,
             max_images: int | None = None, seed: int = 42, workers: int = 8, timeout: float = 60.0,
             progress: Progress | None = None) -> DownloadReport:
    """Build the MLPerf OpenImages folder under ``root`` as the reference's ``openimages_mlperf.sh`` does.

    1. class list: ``annotations/class-descriptions-boxable.csv``;
    2. validation subset: ``annotations/validation-annotations-bbox.csv``, the images holding a box of
       one of ``classes`` (24,781 for the MLPerf classes);
    3. images: ``validation/data/<ImageID>.jpg``;
    4. ``annotations/openimages-mlperf.json`` in COCO format (:func:`export_to_coco`).

    ``max_images`` draws that many images as the reference's ``--max-images`` with ``--seed`` (with
    replacement, ``np.random.seed(seed); np.random.choice(n, size=max_images)``); drawn twice, an image
    is kept once (the reference would repeat its boxes). Files already present are kept, so an
    interrupted download resumes; every file is written under a temporary name first. Raises
    DatasetError when a file cannot be fetched (after retries on network errors and HTTP 5xx).
    """
    start = time.perf_counter()
    root = Path(root)
    ann_dir, images_dir = root / ANNOTATIONS_FILE.parent, root / IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)

    if progress:
        progress("annotations", 0, 2)
    _fetch(sources.class_descriptions_url, ann_dir / CLASS_DESCRIPTIONS_FILE, timeout=timeout)
    class_map = read_class_descriptions(ann_dir / CLASS_DESCRIPTIONS_FILE)
    if progress:
        progress("annotations", 1, 2)
    _fetch(sources.annotations_url, ann_dir / BBOX_ANNOTATIONS_FILE, timeout=timeout)
    rows = read_box_annotations(ann_dir / BBOX_ANNOTATIONS_FILE)
    if progress:
        progress("annotations", 2, 2)

    unknown = sorted(set(classes) - set(class_map.values()))
    if unknown:
        raise DatasetError(f"{len(unknown)} classes are not in {CLASS_DESCRIPTIONS_FILE}: {', '.join(unknown[:5])}.",
                           "check the class descriptions URL (it must be the Open Images boxable list).")
    image_ids = select_images(classes, class_map, rows)
    skipped = 0
    if max_images is not None:
        drawn = np.random.RandomState(seed).choice(len(image_ids), size=max_images)
        chosen = list(dict.fromkeys(image_ids[int(i)] for i in drawn))
        skipped = max_images - len(chosen)
        image_ids = chosen

    base = sources.images_base_url.rstrip("/")
    done = downloaded = 0
    failures: list[str] = []
    # Not a `with` block: on Ctrl-C (or a cancel raised from `progress`) the queued images must be dropped,
    # not all fetched first; the ones in flight finish and are kept for the next run.
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = {pool.submit(_fetch, f"{base}/validation/{image_id}.jpg", images_dir / f"{image_id}.jpg",
                               timeout=timeout): image_id for image_id in image_ids}
        for future in as_completed(futures):
            try:
                downloaded += bool(future.result())
            except DatasetError as exc:
                failures.append(f"{futures[future]}: {exc.message}")
            done += 1
            if progress:
                progress("images", done, len(image_ids))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failures:
        raise DatasetError(f"{len(failures)} of {len(image_ids)} OpenImages images could not be downloaded "
                           f"(first: {sorted(failures)[0]}).",
                           "rerun the download: images already fetched are kept.")

    if progress:
        progress("coco", 0, 1)
    coco = export_to_coco(classes, class_map, rows, image_ids, images_dir)
    annotation_file = root / ANNOTATIONS_FILE
    _write_bytes(annotation_file, json.dumps(coco).encode("utf-8"))
    if progress:
        progress("coco", 1, 1)
    return DownloadReport(root=root, annotation_file=annotation_file, images=len(coco["images"]),
                          downloaded=downloaded, seconds=time.perf_counter() - start,
                          skipped_duplicates=skipped)
