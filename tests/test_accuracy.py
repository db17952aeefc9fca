"""ResNet50 top-1 from a hand-built ``mlperf_log_accuracy.json`` whose answer is known by construction."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from harness.accuracy.imagenet import accuracy_text, top1


def _hex(cls: int) -> str:
    """A response exactly as LoadGen logs it: the SUT's float32 class id, upper-case hex."""
    return np.float32([cls]).tobytes().hex().upper()


def _write_log(path: Path, entries: list[tuple[int, int]]) -> Path:
    """``entries`` are (qsl_idx, predicted class); written the way LoadGen writes the file."""
    records = [{"seq_id": seq, "qsl_idx": idx, "data": _hex(cls)} for seq, (idx, cls) in enumerate(entries)]
    path.write_text(json.dumps(records, indent=0), encoding="utf-8")
    return path


LABELS = np.array([3, 17, 999, 0, 512, 42, 7, 100, 250, 876], dtype=np.int64)


@pytest.fixture
def known_log(tmp_path: Path) -> Path:
    """10 unique samples, 7 predicted right (idx 2, 5, 8 wrong), plus 2 repeats of right answers."""
    entries = [(i, int(LABELS[i])) for i in range(10)]
    for wrong in (2, 5, 8):
        entries[wrong] = (wrong, int(LABELS[wrong]) + 1)
    # LoadGen may log a sample more than once; a repeat must not count again (8/12 if it did).
    entries += [(0, int(LABELS[0])), (4, int(LABELS[4]))]
    return _write_log(tmp_path / "mlperf_log_accuracy.json", entries)


def test_top1_counts_each_sample_once(known_log: Path):
    result = top1(known_log, LABELS)
    assert result["good"] == 7
    assert result["total"] == 10
    assert result["value"] == pytest.approx(70.0)
    assert result["metric"] == "top-1 accuracy"


def test_top1_first_logged_response_of_a_sample_counts(tmp_path: Path):
    # As the reference accuracy-imagenet.py does: the first occurrence of a qsl_idx decides.
    log = _write_log(tmp_path / "log.json", [(1, int(LABELS[1])), (1, 0), (3, 5), (3, int(LABELS[3]))])
    result = top1(log, LABELS)
    assert (result["good"], result["total"]) == (1, 2)


def test_top1_reads_loadgen_hex_of_every_class_id(tmp_path: Path):
    labels = np.arange(1000, dtype=np.int64)
    log = _write_log(tmp_path / "log.json", [(i, i) for i in range(1000)])
    assert top1(log, labels)["good"] == 1000


def test_top1_of_an_empty_log_is_zero(tmp_path: Path):
    log = _write_log(tmp_path / "log.json", [])
    assert top1(log, LABELS) == {"metric": "top-1 accuracy", "value": 0.0, "good": 0, "total": 0}


def test_accuracy_text_format_and_hash(known_log: Path):
    text = accuracy_text(top1(known_log, LABELS), known_log)
    lines = text.splitlines()
    assert lines[0] == "accuracy=70.000%, good=7, total=10"
    assert re.fullmatch(r"hash=[0-9a-f]{64}", lines[1])
    assert lines[1] == "hash=" + hashlib.sha256(known_log.read_bytes()).hexdigest()
    assert len(lines) == 2 and text.endswith("\n")


def test_accuracy_text_hash_changes_with_the_log(tmp_path: Path, known_log: Path):
    other = _write_log(tmp_path / "other.json", [(0, int(LABELS[0]))])
    first = accuracy_text(top1(known_log, LABELS), known_log).splitlines()[1]
    second = accuracy_text(top1(other, LABELS), other).splitlines()[1]
    assert first != second
