"""harness.events: the typed child-to-parent protocol, decoded in one place; hostile lines never raise."""

from __future__ import annotations

import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from harness import events as ev
from harness.events import KINDS, PROTOCOL_VERSION, EventReader, EventWriter, decode, encode

SAMPLES = [
    ev.Start(directory="/r/run_1"), ev.Phase(phase="preparing", detail="model", update=True),
    ev.Phase(phase="running", detail="LoadGen Offline performance", expected=256, min_duration_s=0.0),
    ev.Target(target_kind="target_qps", value=88.5, unit="queries/s", reason="measured"),
    ev.Log(message="built"), ev.Warn(message="rebuilding"), ev.Error(message="boom", fix="do this"),
    ev.Progress(issued=8, completed=4, expected=8, qps=2.0, qps_window_s=5.0, mean_qps=1.5, elapsed_s=2.0,
                min_duration_s=0.0, p50_ms=1.0, p90_ms=2.0, p99_ms=3.0),
    ev.SutTiming(ms={"infer_p50": 1.2}), ev.Accuracy(result={"metric": "top-1", "value": 76.0}),
    ev.Result(result={"status": "completed"}),
]


def test_every_kind_goes_through_the_pipe_unchanged():
    assert {type(e) for e in SAMPLES} == set(KINDS.values())
    read_fd, write_fd = os.pipe()
    writer = EventWriter(write_fd)
    for event in SAMPLES:
        writer.emit(event)
    os.close(write_fd)
    data = os.read(read_fd, 1 << 20)
    os.close(read_fd)
    got = EventReader().feed(data)
    assert [type(e) for e in got] == [type(e) for e in SAMPLES]
    for sent, received in zip(SAMPLES, got, strict=True):
        assert received.t > 0 and {**vars(received), "t": 0.0} == vars(sent)
    assert all(json.loads(line)["v"] == PROTOCOL_VERSION for line in data.splitlines())


def test_a_partial_line_waits_for_the_rest():
    line = encode(ev.Log(message="hello"))
    reader = EventReader()
    assert reader.feed(line[:5]) == []
    (event,) = reader.feed(line[5:])
    assert event == ev.Log(message="hello")


def test_words_of_the_events_that_have_them():
    assert ev.Error(message="boom", fix="do this").line() == "ERROR: boom\n  fix: do this"
    assert ev.Target(target_kind="target_qps", value=88.5, unit="queries/s", reason="r").line() == \
        "target_qps = 88.5 queries/s: r"
    assert ev.Progress(issued=1, completed=1, expected=1, qps=1, qps_window_s=5, mean_qps=1, elapsed_s=1,
                       min_duration_s=0).line() is None


def test_other_versions_unknown_kinds_and_wrong_types_become_warnings():
    assert "protocol version 2" in decode({"v": 2, "event": "log", "message": "x"}).message
    assert "unknown kind" in decode({"v": 1, "event": "explode"}).message
    assert "no message" in decode({"v": 1, "event": "log"}).message
    assert "completed is not int" in decode({"v": 1, "event": "progress", "issued": 1, "completed": "many",
                                             "expected": 1, "qps": 1.0, "qps_window_s": 5.0, "mean_qps": 1.0,
                                             "elapsed_s": 1.0, "min_duration_s": 0.0}).message
    assert "update is not bool" in decode({"v": 1, "event": "phase", "phase": "x", "update": 1}).message
    assert "expected is not int" in decode({"v": 1, "event": "phase", "phase": "x", "expected": True}).message
    # A field a later version adds is ignored.
    assert decode({"v": 1, "event": "log", "message": "x", "colour": "red"}) == ev.Log(message="x")
    (event,) = EventReader().feed(b"\xff not json\n")
    assert isinstance(event, ev.Warn) and "not JSON" in event.message


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                       max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS) + ["other"]), fields=st.dictionaries(
    st.sampled_from(["message", "phase", "detail", "update", "expected", "completed", "issued", "qps", "value",
                     "result", "ms", "t", "fix", "directory", "target_kind", "unit", "reason", "x"]), json_values),
    version=st.sampled_from([1, 1, 1, 0, "1", None]))
def test_any_object_decodes_to_an_event_and_never_raises(kind, fields, version):
    event = decode({**fields, "v": version, "event": kind})
    assert isinstance(event, ev.Event)
    if isinstance(event, ev.Warn) and event.message.startswith("unreadable event"):
        assert len(event.message) < 300
    event.line()  # every decoded event can be put in words


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_become_events_or_wait(data):
    events = EventReader().feed(data)
    assert all(isinstance(e, ev.Event) for e in events)
