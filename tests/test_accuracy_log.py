"""The one reader of ``mlperf_log_accuracy.json`` and LoadGen's detail log, fed hostile input (issue 7 item 5).

Every accuracy script (ImageNet top-1, OpenImages mAP, SQuAD F1) reads the log through
:func:`harness.accuracy.log.read_accuracy_log`; a damaged log is "The accuracy log is corrupt: <file> (...)"
and never a traceback. The detail-log parser skips records that are valid JSON but not LoadGen records.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.accuracy.imagenet import top1
from harness.accuracy.log import AccuracyLogError, read_accuracy_log
from harness.accuracy.openimages import openimages_map
from harness.accuracy.squad import squad_accuracy
from harness.datasets.openimages import SyntheticOpenImages
from harness.datasets.squad import SyntheticSquad
from harness.errors import WizardError
from harness.results import explain, metric_of, parse_detail

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats() | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10)


def good_log(path: Path, samples: int = 8, floats: int = 2) -> bytes:
    rows = [{"seq_id": i, "qsl_idx": i, "data": np.arange(floats, dtype=np.float32).tobytes().hex().upper()}
            for i in range(samples)]
    path.write_text(json.dumps(rows))
    return path.read_bytes()


@st.composite
def damaged(draw, original: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "replace-entry", "replace-field", "replace-all", "garbage"]))
    if kind == "truncate":
        return original[: draw(st.integers(0, len(original) - 1))]
    if kind == "flip":
        at = draw(st.integers(0, len(original) - 1))
        return original[:at] + bytes([original[at] ^ (1 << draw(st.integers(0, 7)))]) + original[at + 1:]
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    rows = json.loads(original)
    if kind == "replace-all":
        return json.dumps(draw(json_values)).encode()
    n = draw(st.integers(0, len(rows) - 1))
    if kind == "replace-entry":
        rows[n] = draw(json_values)
    else:
        hexish = st.text(alphabet="0123456789ABCDEFxyz")
        rows[n][draw(st.sampled_from(["qsl_idx", "data"]))] = draw(json_values | hexish)
    return json.dumps(rows).encode()


@given(data=st.data())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_damaged_log_reads_or_is_called_corrupt(tmp_path: Path, data) -> None:
    path = tmp_path / "mlperf_log_accuracy.json"
    original = good_log(path)
    path.write_bytes(data.draw(damaged(original)))
    try:
        responses = read_accuracy_log(path, samples=8, floats_per_item=2)
    except AccuracyLogError as exc:
        assert exc.message.startswith(f"The accuracy log is corrupt: {path} (")
        assert len(exc.message) < 300 and exc.fix
        return
    for r in responses:  # what reads is what LoadGen could have written
        assert 0 <= r.qsl_idx < 8 and len(r.data) % 8 == 0
        assert r.floats(2).shape[1] == 2


@pytest.mark.parametrize("text, why", [
    ("", "not valid JSON"), ('[{"qsl_idx": 0, "data": "00', "not valid JSON"), ("{}", "a JSON dict"),
    ("[1]", "entry 0 is not an object"), ('[{"data": "00000000"}]', "no sample index"),
    ('[{"qsl_idx": true, "data": "00000000"}]', "no sample index"),
    ('[{"qsl_idx": 99, "data": "00000000"}]', "answers sample 99, but the dataset has 10"),
    ('[{"qsl_idx": 0, "data": "zz"}]', "not hexadecimal"), ('[{"qsl_idx": 0, "data": "000000"}]', "3 bytes"),
    ('[{"qsl_idx": 0}]', "no response data"), ("[" * 100_000, "not valid JSON")])
def test_each_scorer_names_the_corrupt_log(tmp_path: Path, text: str, why: str) -> None:
    log = tmp_path / "mlperf_log_accuracy.json"
    log.write_text(text)
    scorers = [lambda: top1(log, np.arange(10)),
               lambda: openimages_map(log, SyntheticOpenImages(10, seed=0).annotations()),
               lambda: squad_accuracy(log, SyntheticSquad(10, seed=0))]
    for score in scorers:
        with pytest.raises(AccuracyLogError, match="The accuracy log is corrupt") as caught:
            score()
        assert why in caught.value.message or "bytes, not whole rows" in caught.value.message


def test_a_missing_log_says_it_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(AccuracyLogError, match="does not exist"):
        top1(tmp_path / "mlperf_log_accuracy.json", np.arange(3))


def test_a_good_log_still_scores(tmp_path: Path) -> None:
    log = tmp_path / "mlperf_log_accuracy.json"
    rows = [{"qsl_idx": i, "data": np.float32([i % 3]).tobytes().hex().upper()} for i in range(6)]
    log.write_text(json.dumps(rows))
    assert top1(log, np.array([0, 1, 2, 0, 0, 0]))["good"] == 4


MLLOG_RECORDS = st.one_of(json_values, st.fixed_dictionaries(
    {"key": st.text(max_size=12) | json_values, "value": json_values, "metadata": json_values}))


@given(records=st.lists(MLLOG_RECORDS, max_size=12))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_detail_log_records_of_any_shape_are_parsed_or_skipped(tmp_path: Path, records: list) -> None:
    path = tmp_path / "mlperf_log_detail.txt"
    lines = [':::MLLOG {"key": "result_validity", "value": "VALID", "metadata": {}}']
    lines += [":::MLLOG " + json.dumps(r) for r in records]
    lines += [":::MLLOG [1, 2]", ":::MLLOG 3", ":::MLLOG " + "[" * 5000]
    path.write_text("\n".join(lines))
    detail = parse_detail(path)
    assert isinstance(detail["_errors"], list) and isinstance(detail["_warnings"], list)
    for scenario in ("Offline", "Server", "SingleStream", "MultiStream"):
        try:
            metric_of(scenario, detail)
            explain(scenario, "resnet50", "short", detail, test_query_count=10, target=5.0)
        except WizardError:
            pass
