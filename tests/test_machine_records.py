"""Machine records: this machine's coverage cells exported from real verify records, imported elsewhere after
checking (hostile files refused whole), and the README's per-machine table generated from the shipped ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import machine_records
from harness.coverage import assess, check, export_record, merged_table, record_verified
from harness.coverage_table import load_table
from harness.detect import Detection
from harness.errors import CoverageError, ProfileError

REPO = Path(__file__).resolve().parent.parent
README_START = "<!-- coverage-by-machine:start -->"
README_END = "<!-- coverage-by-machine:end -->"
CPU_ONLY = Detection.from_dict({
    "cpu": {"model": "Test CPU", "logical_cores": 2},
    "backends": {"onnxruntime": {"installed": True, "version": "1.32.0", "devices": ["cpu"]}}})


def test_export_says_works_fails_or_untested_with_the_reason_for_every_cell(home) -> None:
    record_verified("resnet50", "onnxruntime", "cpu", "fp32", ok=True, when="2026-12-03T10:00:00+00:00",
                    details={"backend_version": "1.32.0", "duration_s": 12.5, "variant": "tiny"})
    record_verified("bert", "onnxruntime", "cpu", "fp32", ok=False, when="2026-12-03T10:01:00+00:00",
                    details={"backend_version": "1.32.0", "reason": "Offline accuracy failed: out of memory"})
    record = export_record(CPU_ONLY, "test-box")
    cells = record["cells"]
    assert set(cells) == {"/".join(row.key) for row in load_table()}
    assert cells["resnet50/onnxruntime/cpu/fp32"] == {"result": "works", "reason": "", "backend_version": "1.32.0",
                                                      "at": "2026-12-03T10:00:00+00:00", "duration_s": 12.5,
                                                      "variant": "tiny"}
    assert cells["bert/onnxruntime/cpu/fp32"]["result"] == "fails"
    assert "out of memory" in cells["bert/onnxruntime/cpu/fp32"]["reason"]
    assert cells["retinanet/onnxruntime/cpu/fp32"] == {"result": "untested",
                                                       "reason": "no verify run on this machine yet"}
    assert "not installed" in cells["resnet50/pytorch/cpu/fp32"]["reason"]
    assert "no NVIDIA GPU" in cells["resnet50/onnxruntime/cuda/fp32"]["reason"]
    assert "CPU only" in cells["resnet50/tvm-onnx/cuda/fp32"]["reason"]
    assert record["machine"]["name"] == "test-box" and record["machine"]["cores"] == 2
    # What is exported is what an import accepts, unchanged.
    assert machine_records.parse(json.dumps(record)) == record


def test_cli_export_import_and_markdown(cli, home, tmp_path) -> None:
    target = tmp_path / "box.json"
    done = cli("coverage", "--export", target, "--machine-name", "box-1")
    assert done.returncode == 0 and "Wrote the record of box-1" in done.stdout
    before = target.read_bytes()
    again = cli("coverage", "--export", target, "--machine-name", "box-1")
    assert again.returncode == 2 and "exists: not replaced" in again.stderr and target.read_bytes() == before
    assert cli("coverage", "--export", target, "--machine-name", "box-1", "--force").returncode == 0
    bad_name = cli("coverage", "--export", tmp_path / "x.json", "--machine-name", "../etc")
    assert bad_name.returncode == 2 and "is not a name" in bad_name.stderr and "Traceback" not in bad_name.stderr
    imported = cli("coverage", "--import", target)
    assert imported.returncode == 0 and "Imported the record of box-1" in imported.stdout
    assert (home / "state" / "verified-elsewhere" / "box-1.json").is_file()
    table = cli("coverage", "--markdown")
    assert table.returncode == 0 and "| box-1 |" in table.stdout.splitlines()[-len(load_table()) - 2]
    hostile = tmp_path / "hostile.json"
    hostile.write_text(json.dumps({"schema": 1, "machine": {"name": "evil"},
                                   "cells": {"../../x/onnxruntime/cpu/fp32": {"result": "works"}}}))
    refused = cli("coverage", "--import", hostile)
    assert refused.returncode == 2 and "is not a cell of the coverage table" in refused.stderr
    assert not (home / "state" / "verified-elsewhere" / "evil.json").exists()


def test_guidance_names_what_other_machines_saw(home) -> None:
    """A cell this machine cannot run (no GPU) still says which machine ran it, when and with what: the shipped
    H200 record; an imported record adds its own machine; a cell no machine ran says nothing."""
    shipped = machine_records.read(machine_records.SHIPPED / "h200-16core.json")
    entry = shipped["cells"]["resnet50/onnxruntime/cuda/fp32"]
    assert entry["result"] == "works"
    verdict = assess("resnet50", "onnxruntime", "cuda", "fp32", CPU_ONLY)
    assert verdict.here == "no-device" and not verdict.runnable
    assert f"h200-16core: works ({entry['at'][:10]}, onnxruntime {entry['backend_version']}" in verdict.elsewhere
    try:
        check("resnet50", "onnxruntime", "cuda", "fp32", CPU_ONLY)
    except CoverageError as exc:
        assert "Other machines' runs: h200-16core: works" in str(exc)
    else:
        raise AssertionError("a CUDA cell ran on a machine without a GPU")
    record = export_record(CPU_ONLY, "box-2")
    record["cells"]["bert/onnxruntime/cpu/fp32"] = {"result": "fails", "reason": "out of memory at batch 64",
                                                   "at": "2026-12-04T01:00:00+00:00"}
    folder = machine_records.imported_dir()
    folder.mkdir(parents=True)
    (folder / "box-2.json").write_text(json.dumps(record))
    bert = assess("bert", "onnxruntime", "cpu", "fp32", CPU_ONLY)
    assert "box-2: fails: out of memory at batch 64" in bert.elsewhere
    by_key = {"/".join(v.row.key): v for v in merged_table(CPU_ONLY)}
    assert by_key["bert/onnxruntime/cpu/fp32"].elsewhere == bert.elsewhere
    assert by_key["resnet50/tvm-onnx/cuda/fp32"].elsewhere == ""  # unsupported: the table's own verdict


def test_a_damaged_imported_record_is_skipped_not_fatal(home) -> None:
    folder = machine_records.imported_dir()
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text("{not json")
    names = [r["machine"]["name"] for r in machine_records.records()]
    assert "broken" not in names


def _valid() -> dict:
    return export_record(CPU_ONLY, "box")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_any_text_is_a_record_or_a_clear_error(home, text) -> None:
    try:
        machine_records.parse(text)
    except ProfileError as exc:
        assert "is not a machine record" in exc.message


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
_json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["schema", "machine", "machine.name", "cells", "cells.*", "cells.*.result",
                             "cells.*.reason", "cells.*.duration_s", "exported_at", "machine.gpus"]),
       value=_json_values)
def test_a_mutated_record_is_accepted_only_when_it_is_still_valid(home, path, value) -> None:
    record = _valid()
    first = next(iter(record["cells"]))
    parts = [first if p == "*" else p for p in path.split(".")]
    holder = record
    for p in parts[:-1]:
        holder = holder[p]
    holder[parts[-1]] = value
    try:
        parsed = machine_records.parse(json.dumps(record))
    except ProfileError as exc:
        assert "is not a machine record" in exc.message
        return
    except ValueError:  # json.dumps of NaN is valid JSON for Python; the parser must cope either way
        raise
    # Accepted: every kept value has the checked type.
    assert parsed["machine"]["name"] and all(c["result"] in machine_records.RESULTS for c in parsed["cells"].values())
    for cell in parsed["cells"].values():
        assert all(isinstance(cell.get(f), str) for f in ("reason", "at", "backend_version") if f in cell)
        assert "duration_s" not in cell or 0 <= cell["duration_s"] < 1e6


def test_the_readme_table_is_generated_from_the_shipped_records() -> None:
    shipped = machine_records.records(include_imported=False)
    assert shipped, "the project ships its machines' records in harness/data/verified/"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(re.escape(README_START) + r"\n(.*?)" + re.escape(README_END), readme, re.S)
    assert match, f"README.md has no {README_START} ... {README_END} section"
    assert match.group(1) == machine_records.markdown(shipped), (
        "README.md's coverage-by-machine table is stale: regenerate it with `mlperf-wizard coverage --markdown`")
