"""Top-1 accuracy for ResNet50, as the reference ``accuracy-imagenet.py`` computes it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from .log import read_accuracy_log


def top1(log_path: Path, labels: np.ndarray) -> dict[str, Any]:
    """Count correct predictions over unique ``qsl_idx`` (LoadGen may log a sample more than once)."""
    entries = read_accuracy_log(log_path, samples=len(labels))
    seen: set[int] = set()
    good = 0
    for entry in entries:
        idx = entry.qsl_idx
        if idx in seen:
            continue
        seen.add(idx)
        predicted = entry.floats()
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
