"""mAP@[.5:.95] for RetinaNet on OpenImages, as the reference ``tools/accuracy-openimages.py`` computes it.

Each logged response holds 7 float32 per detection, ``[qsl_idx, ymin, xmin, ymax, xmax, score, label]``
with coordinates normalised to the model input; ``qsl_idx`` is the position of the image in the
annotation file's ``images`` list. Boxes go back to the original image's pixels with that image's
height and width from the annotations, labels are used as category ids as they are (the ONNX model's
labels are ``openimages-mlperf.json``'s category ids: the reference runs it without ``--use-inv-map``),
and pycocotools' COCOeval (bbox) runs over every image that has a response, with or without detections.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from .log import read_accuracy_log


def _coco(annotations: Path | dict[str, Any]):
    try:
        from pycocotools.coco import COCO
    except ImportError:
        raise DatasetError("pycocotools is needed to compute RetinaNet's mAP.",
                           "pip install pycocotools") from None
    if isinstance(annotations, dict):
        coco = COCO()
        coco.dataset = annotations
        coco.createIndex()
        return coco
    return COCO(str(annotations))


def openimages_map(log_path: Path, annotations: Path | dict[str, Any]) -> dict[str, Any]:
    """mAP from ``mlperf_log_accuracy.json`` against COCO-format ``annotations`` (a file or its content).

    Returns ``{"metric": "mAP", "value": 100 * AP@[.5:.95], "stats": the 12 COCOeval numbers, "images",
    "detections", "no_results" (images answered with no detection), "duplicates" (repeated qsl_idx,
    ignored), "index_mismatches" (detections whose first float is not the log's qsl_idx: the reference
    prints an error for each), "summary" (what pycocotools printed)}``.
    """
    from pycocotools.cocoeval import COCOeval

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        coco_gt = _coco(annotations)
    image_map = coco_gt.dataset["images"]
    entries = read_accuracy_log(Path(log_path), samples=len(image_map), floats_per_item=1)

    detections: list[dict[str, Any]] = []
    image_ids: set[int] = set()
    seen: set[int] = set()
    no_results = mismatches = 0
    for entry in entries:
        idx = entry.qsl_idx
        if idx in seen:
            continue
        seen.add(idx)
        image = image_map[idx]
        image_ids.add(image["id"])
        data = entry.floats()
        if len(data) < 7:
            no_results += 1
            continue
        height, width = image["height"], image["width"]
        for i in range(0, len(data) - 6, 7):
            image_idx, ymin, xmin, ymax, xmax, score, label = data[i:i + 7]
            if int(image_idx) != idx:
                mismatches += 1
            ymin, xmin, ymax, xmax = ymin * height, xmin * width, ymax * height, xmax * width
            detections.append({"image_id": image["id"], "category_id": int(label),
                               "bbox": [float(xmin), float(ymin), float(xmax - xmin), float(ymax - ymin)],
                               "score": float(score)})

    result: dict[str, Any] = {"metric": "mAP", "images": len(image_ids), "detections": len(detections),
                              "no_results": no_results, "duplicates": len(entries) - len(seen),
                              "index_mismatches": mismatches}
    if not detections:
        # pycocotools cannot load an empty result list (the reference crashes there): nothing found, mAP 0.
        result.update(value=0.0, stats=[0.0] * 12, summary=printed.getvalue())
        return result
    with contextlib.redirect_stdout(printed):
        coco_dt = coco_gt.loadRes(detections)
        evaluation = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluation.params.imgIds = sorted(image_ids)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [float(s) for s in evaluation.stats]
    result.update(value=100.0 * stats[0], stats=stats, summary=printed.getvalue())
    return result


def accuracy_text(result: dict[str, Any], log_path: Path) -> str:
    """``accuracy.txt`` as the submission expects: the script's output, then the log's sha256."""
    digest = hashlib.sha256(Path(log_path).read_bytes()).hexdigest()
    summary = result.get("summary", "")
    if summary and not summary.endswith("\n"):
        summary += "\n"
    return f"{summary}mAP={result['value']:.3f}%\nhash={digest}\n"
