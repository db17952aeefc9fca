"""Top-1 accuracy for ResNet50, as the reference ``accuracy-imagenet.py`` computes it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np


def read_accuracy_log(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def top1(log_path: Path, labels: np.ndarray) -> dict[str, Any]:
    """Count correct predictions over unique ``qsl_idx`` (LoadGen may log a sample more than once)."""
    entries = read_accuracy_log(log_path)
    seen: set[int] = set()
    good = 0
    for entry in entries:
        idx = int(entry["qsl_idx"])
        if idx in seen:
            continue
        seen.add(idx)
        predicted = np.frombuffer(bytes.fromhex(entry["data"]), dtype=np.float32)
        if predicted.size and int(predicted[0]) == int(labels[idx]):
            good += 1
    total = len(seen)
    return {"metric": "top-1 accuracy", "value": 100.0 * good / total if total else 0.0, "good": good,
            "total": total}


def accuracy_text(result: dict[str, Any], log_path: Path) -> str:
    """``accuracy.txt`` as the submission expects: the script's line, then the log's sha256."""
    digest = hashlib.sha256(Path(log_path).read_bytes()).hexdigest()
    return (f"accuracy={result['value']:.3f}%, good={result['good']}, total={result['total']}\n"
            f"hash={digest}\n")
