"""The profile model: field metadata, aliases, YAML load/save and the equivalent command.

Real YAML text, real files in a temp directory, the real CLI parser (and the real CLI for dry runs).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import threading
from pathlib import Path

import pytest

from harness.errors import ProfileError
from harness.profile import (
    AUTO,
    FIELDS,
    SCHEMA_VERSION,
    Profile,
    coerce,
    dump_profile,
    equivalent_command,
    field_names,
    load_profile,
    make_profile,
    parse_profile_text,
    save_profile,
)
from wizard.cli import _build_parser, _profile_from_args

# A profile where every field differs from its default, so a round trip has to carry each one.
EVERYTHING = {
    "implementation": "cpp", "model": "bert", "backend": "tensorflow", "device": "cuda", "precision": "int8",
    "scenarios": ["Server", "SingleStream", "MultiStream"], "mode": "both", "style": "full",
    "test_query_count": 16, "target_qps": 1234567.5, "target_latency": 0.0125, "threads": 3,
    "batch_size": 5, "watchdog": 30, "model_source": "local", "model_path": "/models/my model.onnx",
    "dataset_source": "local", "dataset_path": "/data/imagenet", "dataset_size": 64,
    "results_dir": "/tmp/results dir", "submitter": "Acme Corp", "system_name": "box-1.lab",
    "division": "closed", "category": "datacenter",
}


def _errors(text: str) -> str:
    with pytest.raises(ProfileError) as info:
        parse_profile_text(text, "p.yaml")
    message = str(info.value)
    assert "Fix:" in message, message
    return message


def _reparse(command: str) -> Profile:
    """Feed an `mlperf-wizard run ...` command line back through the CLI's own parser."""
    argv = shlex.split(command)
    assert argv[:2] == ["mlperf-wizard", "run"]
    args = _build_parser().parse_args(argv[1:])
    return _profile_from_args(args, args.profile)


class TestFields:
    def test_defaults_are_valid(self):
        assert make_profile({}) == Profile()
        for f in FIELDS:
            assert coerce(f, f.default) == f.default, f.name

    def test_fields_match_profile_attributes_in_order(self):
        assert [f.name for f in FIELDS] == field_names()
        defaults = {a.name: a.default for a in dataclasses.fields(Profile)}
        for f in FIELDS:
            assert defaults[f.name] == f.default, f.name
            assert f.help.strip() and f.group, f.name
            if f.kind in ("choice", "choices"):
                assert f.choices and all(v in f.choices for v in f.aliases.values()), f.name

    @pytest.mark.parametrize(("name", "raw", "expected"), [
        ("backend", "tf", "tensorflow"),
        ("backend", "TF", "tensorflow"),
        ("backend", "tvm-pip-install-onnx", "tvm-onnx"),
        ("backend", "ort", "onnxruntime"),
        ("device", "gpu", "cuda"),
        ("scenarios", "offline", ("Offline",)),
        ("scenarios", "offline,server singlestream", ("Offline", "Server", "SingleStream")),
        ("scenarios", ["multistream", "MultiStream"], ("MultiStream",)),
        ("mode", "accuracyonly", "accuracy"),
        ("model", "resnet50-v1.5", "resnet50"),
        ("target_qps", "AUTO", AUTO),
        ("target_latency", "12.5", 12.5),
    ])
    def test_aliases_and_spellings(self, name, raw, expected):
        assert getattr(make_profile({name: raw}), name) == expected

    def test_aliases_in_yaml(self):
        text = f"version: {SCHEMA_VERSION}\nbackend: tf\ndevice: gpu\nscenarios: [offline, server]\n"
        p = parse_profile_text(text)
        assert (p.backend, p.device, p.scenarios) == ("tensorflow", "cuda", ("Offline", "Server"))


class TestYaml:
    def test_round_trip_defaults(self):
        assert parse_profile_text(dump_profile(Profile())) == Profile()

    def test_round_trip_every_field(self):
        p = make_profile(EVERYTHING)
        text = dump_profile(p)
        assert parse_profile_text(text) == p
        assert text.count("\n") > len(FIELDS)  # every field is written, defaults included
        assert f"version: {SCHEMA_VERSION}" in text

    def test_malformed_yaml_names_the_line(self):
        msg = _errors("version: 1\nmodel: resnet50\n  backend: onnxruntime\n")
        assert "p.yaml, line 3" in msg and "not valid YAML" in msg

    def test_unclosed_bracket_names_a_line(self):
        msg = _errors("version: 1\nscenarios: [Offline\nmode: performance\n")
        assert "p.yaml, line 3" in msg and "not valid YAML" in msg

    def test_unknown_key_suggests_the_closest(self):
        msg = _errors("version: 1\nmodel: resnet50\ntest_querry_count: 5\n")
        assert "line 3" in msg and "unknown key 'test_querry_count'" in msg
        assert "Did you mean 'test_query_count'?" in msg

    def test_duplicate_key(self):
        msg = _errors("version: 1\nmodel: resnet50\nmode: accuracy\nmodel: bert\n")
        assert "line 4" in msg and "'model' is given twice" in msg and "line 2" in msg

    def test_wrong_type(self):
        msg = _errors("version: 1\nmodel: resnet50\ntest_query_count: abc\n")
        assert "line 3" in msg and "test_query_count" in msg and "'abc' is not a whole number" in msg
        assert "from 1 to" in msg

    def test_boolean_is_not_a_number(self):
        msg = _errors("version: 1\ntest_query_count: yes\n")
        assert "line 2" in msg and "not a whole number" in msg

    def test_out_of_range(self):
        msg = _errors("version: 1\ntarget_qps: 0\n")
        assert "line 2" in msg and "target_qps" in msg and "out of range" in msg

    def test_list_where_a_name_is_expected(self):
        msg = _errors("version: 1\nmodel: [resnet50, bert]\n")
        assert "line 2" in msg and "model" in msg and "resnet50, retinanet, bert" in msg

    def test_unknown_choice_suggests_the_closest(self):
        msg = _errors("version: 1\nscenarios: [Offline, Sever]\n")
        assert "line 2" in msg and "Did you mean 'Server'?" in msg

    def test_missing_version(self):
        msg = _errors("model: resnet50\n")
        assert "`version:` key is missing" in msg and f"version: {SCHEMA_VERSION}" in msg

    def test_unknown_version(self):
        msg = _errors("model: resnet50\nversion: 99\n")
        assert "line 2" in msg and "version 99" in msg and "upgrade" in msg

    def test_empty_and_not_a_mapping(self):
        assert "empty" in _errors("")
        assert "line 1" in _errors("- model\n- backend\n")

    def test_inconsistent_values(self):
        msg = _errors("version: 1\nmodel_source: local\n")
        assert "--model-path" in msg

    def test_load_missing_file(self, tmp_path):
        with pytest.raises(ProfileError, match="does not exist"):
            load_profile(tmp_path / "nope.yaml")


class TestSave:
    def test_save_and_load(self, tmp_path):
        p = make_profile({"test_query_count": 16, "scenarios": "Server"})
        path = save_profile(p, tmp_path / "deep" / "mine.yaml")
        assert load_profile(path) == p
        assert sorted(x.name for x in path.parent.iterdir()) == ["mine.yaml"]  # no temp file left

    def test_refuses_to_overwrite(self, tmp_path):
        path = tmp_path / "mine.yaml"
        save_profile(make_profile({"test_query_count": 16}), path)
        before = path.read_bytes()
        with pytest.raises(ProfileError) as info:
            save_profile(make_profile({"test_query_count": 32}), path)
        assert "already exists" in str(info.value) and "--force" in str(info.value)
        assert path.read_bytes() == before
        assert sorted(x.name for x in tmp_path.iterdir()) == ["mine.yaml"]

    def test_overwrite_replaces(self, tmp_path):
        path = tmp_path / "mine.yaml"
        save_profile(make_profile({"test_query_count": 16}), path)
        save_profile(make_profile({"test_query_count": 32}), path, overwrite=True)
        assert load_profile(path).test_query_count == 32
        assert sorted(x.name for x in tmp_path.iterdir()) == ["mine.yaml"]

    def test_concurrent_saves_one_wins_whole(self, tmp_path):
        """Many writers, one name: exactly one succeeds and the file is one complete profile."""
        path = tmp_path / "race.yaml"
        profiles = [make_profile({"test_query_count": n}) for n in range(1, 17)]
        outcomes: list[object] = []
        barrier = threading.Barrier(len(profiles))

        def save(p):
            barrier.wait()
            try:
                save_profile(p, path)
                outcomes.append(p)
            except ProfileError as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=save, args=(p,)) for p in profiles]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [o for o in outcomes if isinstance(o, Profile)]
        assert len(winners) == 1 and len(outcomes) == len(profiles)
        assert load_profile(path) == winners[0]
        assert sorted(x.name for x in tmp_path.iterdir()) == ["race.yaml"]


class TestEquivalentCommand:
    def test_defaults(self, home):
        assert equivalent_command(Profile()) == "mlperf-wizard run"
        assert _reparse(equivalent_command(Profile())) == Profile()

    @pytest.mark.parametrize("values", [
        {"test_query_count": 16, "scenarios": ["SingleStream", "Offline"], "mode": "both"},
        {"target_qps": 1234567.5, "target_latency": 0.0125, "threads": 2, "batch_size": 3},
        {"model_source": "local", "model_path": "/models/my model.onnx", "results_dir": "/tmp/a b"},
        EVERYTHING,
    ], ids=["scenarios", "numbers", "paths", "everything"])
    def test_reproduces_the_profile(self, home, values):
        p = make_profile(values)
        assert _reparse(equivalent_command(p)) == p

    def test_relative_to_a_profile_file(self, home, tmp_path):
        base_path = save_profile(make_profile({"threads": 4, "scenarios": "Server", "test_query_count": 8}),
                                 tmp_path / "base.yaml")
        p = make_profile({"threads": "", "scenarios": "Offline", "test_query_count": 8},
                         base=load_profile(base_path))
        assert p.threads is None
        command = equivalent_command(p, str(base_path))
        assert str(base_path) in command and "--test-query-count" not in command  # only the differences
        assert _reparse(command) == p

    def test_dry_run_json_tests_match(self, cli):
        flags = ["--scenario", "Server", "SingleStream", "--mode", "both", "--test-query-count", "16",
                 "--target-qps", "123.25", "--threads", "1", "--system-name", "box-1"]
        first = cli("run", *flags, "--dry-run", "--json")
        assert first.returncode == 0, first.stderr
        plan = json.loads(first.stdout)
        assert plan["dry_run"] is True and len(plan["tests"]) == 4
        again = cli(*shlex.split(plan["command"])[1:], "--dry-run", "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["tests"] == plan["tests"]
        assert "Equivalent command: " + plan["command"] in first.stderr


def test_shipped_quickstart_is_valid():
    path = Path(__file__).resolve().parent.parent / "profiles" / "quickstart.yaml"
    p = load_profile(path)
    assert (p.model, p.backend, p.device, p.scenarios, p.style) == (
        "resnet50", "onnxruntime", "cpu", ("Offline",), "short")
