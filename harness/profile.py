"""The profile: one typed model of every choice a run needs, with its YAML form.

Every field's allowed values, default and help live here once. The CLI flags, the TUI forms and the
plain prompts are all generated from :data:`FIELDS`; none keeps its own list of choices.
"""

from __future__ import annotations

import difflib
import errno
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from . import catalogue
from . import scenarios as scenario_types
from .errors import ProfileError
from .fsutil import atomic_write_text
from .paths import locations
from .safe_yaml import BoundedLoader, YamlLimitError, quoted

SCHEMA_VERSION = 1

MODELS = ("resnet50", "retinanet", "bert")
BACKENDS = catalogue.NAMES
DEVICES = ("cpu", "cuda")
PRECISIONS = catalogue.PRECISIONS
# LoadGen's own spelling (TestScenario): it is case-sensitive, so user input is normalised to these.
SCENARIOS = scenario_types.NAMES
MODES = ("performance", "accuracy", "both")
STYLES = ("short", "full", "submission")
COMPILE_MODES = ("off",) + catalogue.COMPILE_MODES
SOURCES = ("auto", "official", "local", "synthetic")
AUTO = "auto"


@dataclass(frozen=True)
class Field:
    """One profile field: its type, allowed values, default and the help every front end shows."""

    name: str
    kind: str
    """choice | choices (a list) | int | number_or_auto | text | path"""
    default: Any
    help: str
    group: str
    choices: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False
    """None is allowed (shown as 'auto' or 'not set')."""
    seed_flag: str | None = None
    """The name of the same choice in the CM/mlcr command line, where it has one."""
    pattern: str | None = None
    cli_flag: str | None = None
    """The command-line flag when it differs from the field name (e.g. --scenario for scenarios)."""
    indexed: tuple[str, ...] = ()
    """Choices that also take an index, written NAME:N (``cuda:1``: the second GPU)."""

    @property
    def flag(self) -> str:
        return self.cli_flag or "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")


def _aliases(**pairs: str) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in pairs.items()}


FIELDS: tuple[Field, ...] = (
    Field("implementation", "choice", "python", "MLPerf implementation: the Python reference harness "
          "(python) or the C++ one (cpp).", "benchmark", ("python", "cpp"),
          {"reference": "python", "c++": "cpp"}, seed_flag="lang"),
    Field("model", "choice", "resnet50", "Benchmark model: ResNet50 v1.5 (image classification), "
          "RetinaNet (object detection) or BERT-large (question answering).", "benchmark", MODELS,
          _aliases(resnet="resnet50", **{"resnet50-v1.5": "resnet50", "bert-99": "bert", "bert-99.9": "bert",
                                         "bert-large": "bert"}), seed_flag="model"),
    Field("backend", "choice", "onnxruntime", "Inference framework that executes the model.", "benchmark",
          BACKENDS, catalogue.aliases(), seed_flag="backend"),
    Field("device", "choice", "cpu", "Where the model runs: the CPU or an NVIDIA GPU through CUDA (cuda is "
          "the first GPU, cuda:N the GPU numbered N).",
          "benchmark", DEVICES, {"gpu": "cuda"}, seed_flag="device", indexed=("cuda",)),
    Field("precision", "choice", "fp32", "Numeric precision: fp32; tf32, fp16 or bf16 (PyTorch on CUDA; bf16 "
          "also on the CPU); int8 (quantized).",
          "benchmark", PRECISIONS, {"float32": "fp32", "quantized": "int8", "float16": "fp16", "half": "fp16",
                                    "bfloat16": "bf16"}),
    Field("scenarios", "choices", ("Offline",), "LoadGen scenario(s) to run, one LoadGen test each.",
          "benchmark", SCENARIOS, {s.lower(): s for s in SCENARIOS}, seed_flag="scenario",
          cli_flag="--scenario"),
    Field("mode", "choice", "performance", "What to measure: performance, accuracy, or both "
          "(one LoadGen test each).", "benchmark", MODES,
          {"perf": "performance", "performanceonly": "performance", "accuracyonly": "accuracy",
           "valid": "both", "all": "both"}, seed_flag="mode"),
    Field("style", "choice", "short", "short: a quick check with a fixed query count (not a valid "
          "MLPerf run); full: the mlperf.conf rules (at least 600 s per test); submission: full plus what "
          "a submission needs.", "run", STYLES, {"test": "short", "valid": "full"}),
    Field("test_query_count", "int", 100, "Queries in a short run (Offline: samples). Typical: 5, 50, "
          "100, 500.", "run", minimum=1, maximum=10_000_000, seed_flag="test_query_count"),
    Field("target_qps", "number_or_auto", AUTO, "Expected throughput (Offline) or the Server arrival rate "
          "in queries/s; auto measures the SUT first or reuses what it sustained before.", "run",
          minimum=0.001, maximum=10_000_000, seed_flag="target_qps"),
    Field("target_latency", "number_or_auto", AUTO, "Expected latency in ms (SingleStream, MultiStream); "
          "auto measures the SUT first or reuses what it sustained before.", "run",
          minimum=0.001, maximum=3_600_000, seed_flag="target_latency"),
    Field("threads", "int", None, "Threads the backend may use; not set = all cores.", "run",
          minimum=1, maximum=4096, optional=True, seed_flag="threads"),
    Field("batch_size", "int", None, "Samples per inference call (Offline, Server); not set = the "
          "model's default for the device.", "run", minimum=1, maximum=65536, optional=True,
          seed_flag="batch_size"),
    Field("workers", "int", None, "Concurrent inference calls (Offline, Server), each with --threads "
          "intra-op threads; not set = tuned on the CPU, 2 on CUDA.", "run", minimum=1, maximum=1024,
          optional=True),
    Field("tune", "choice", AUTO, "SUT settings by measurement: auto measures workers x threads x batch "
          "size the first time per machine, model, backend and scenario (about a minute) and reuses it, "
          "and searches Server's highest VALID rate; off keeps the given values or the defaults.", "run",
          (AUTO, "off"), {"on": AUTO, "yes": AUTO, "no": "off", "none": "off"}),
    Field("compile", "choice", "off", "Compile the model before the run (PyTorch: torch.compile; the "
          "first run compiles for minutes, later runs reuse the cache): off; default; max-autotune (tries "
          "kernel variants). Experimental: on an H200 a plain loop ran 2x faster compiled; a LoadGen "
          "Offline run was slower, its last, padded batch recompiling (fixed since, not yet measured "
          "again there).", "run", COMPILE_MODES,
          {"no": "off", "none": "off", "eager": "off", "on": "default", "yes": "default",
           "max-autotune-no-cudagraphs": "max-autotune"}),
    Field("watchdog", "int", 180, "Seconds without progress after which a test is stopped and "
          "reported as stalled.", "run", minimum=1, maximum=86_400),
    Field("model_source", "choice", AUTO, "auto: the official model if it is in the cache (or "
          "--model-path), else the synthetic stand-in; official; local (--model-path); synthetic "
          "(real architecture, seeded random weights: not an MLPerf result).", "data", SOURCES),
    Field("model_path", "path", None, "A local model file in the official format.", "data",
          optional=True),
    Field("dataset_source", "choice", AUTO, "auto: the real dataset if imported (or --dataset-path), "
          "else synthetic; official; local (--dataset-path); synthetic (generated inputs: not an "
          "MLPerf result).", "data", SOURCES),
    Field("dataset_path", "path", None, "A local dataset folder in the official layout.", "data",
          optional=True),
    Field("dataset_size", "int", None, "Samples in the dataset used (accuracy runs go through all "
          "of them); not set = 500 for short runs, the whole dataset otherwise.", "data",
          minimum=1, maximum=10_000_000, optional=True, seed_flag="count"),
    Field("results_dir", "path", None, "Where results go; not set = the results folder that "
          "`mlperf-wizard locate` prints.", "submission", optional=True, seed_flag="results_dir"),
    Field("submitter", "text", "local", "Submitting organisation, as written in the submission.",
          "submission", seed_flag="submitter", pattern=r"[A-Za-z0-9][A-Za-z0-9_. -]{0,63}"),
    Field("system_name", "text", None, "Name of the system under test (the seed's hw_name); not "
          "set = this machine's host name.", "submission", optional=True, seed_flag="hw_name",
          pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"),
    Field("division", "choice", "open", "MLPerf division: closed (the reference model and rules "
          "exactly) or open.", "submission", ("closed", "open")),
    Field("category", "choice", "edge", "MLPerf system category, which decides the required "
          "scenarios.", "submission", ("edge", "datacenter")),
)

FIELD_BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class Profile:
    """Every choice of a run. Build one with :func:`make_profile` or :func:`load_profile`."""

    implementation: str = "python"
    model: str = "resnet50"
    backend: str = "onnxruntime"
    device: str = "cpu"
    precision: str = "fp32"
    scenarios: tuple[str, ...] = ("Offline",)
    mode: str = "performance"
    style: str = "short"
    test_query_count: int = 100
    target_qps: float | str = AUTO
    target_latency: float | str = AUTO
    threads: int | None = None
    batch_size: int | None = None
    workers: int | None = None
    tune: str = AUTO
    compile: str = "off"
    watchdog: int = 180
    model_source: str = AUTO
    model_path: str | None = None
    dataset_source: str = AUTO
    dataset_path: str | None = None
    dataset_size: int | None = None
    results_dir: str | None = None
    submitter: str = "local"
    system_name: str | None = None
    division: str = "open"
    category: str = "edge"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": SCHEMA_VERSION}
        for f in FIELDS:
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def with_values(self, values: dict[str, Any], where: str = "") -> Profile:
        """A copy with ``values`` (raw, as a user typed them) validated and applied."""
        clean = {name: coerce(FIELD_BY_NAME[name], raw, where) for name, raw in values.items()}
        return _check_consistency(replace(self, **clean), where)

    @property
    def device_kind(self) -> str:
        """``cpu`` or ``cuda``, without the GPU's index: what the coverage table and the defaults key on."""
        return device_kind(self.device)

    @property
    def modes(self) -> tuple[str, ...]:
        """LoadGen tests per scenario, in the order they run (accuracy first, as the reference does)."""
        if self.style == "submission" or self.mode == "both":
            return ("accuracy", "performance")
        return (self.mode,)


def device_kind(device: str) -> str:
    """``cuda:1`` -> ``cuda``; ``cpu`` -> ``cpu``."""
    return device.partition(":")[0]


def device_index(device: str) -> int | None:
    """The GPU number of ``cuda`` (0) or ``cuda:N`` (N); None for the CPU."""
    kind, _, index = device.partition(":")
    return None if kind == "cpu" else int(index or 0)


def _suggest(value: str, allowed: Iterable[str], aliases: dict[str, str] | None = None) -> str:
    close = difflib.get_close_matches(value.lower(), [a.lower() for a in allowed], n=1, cutoff=0.5)
    if not close:
        return ""
    original = next(a for a in allowed if a.lower() == close[0])
    # A near alias ('onnx') points the user at the name itself ('onnxruntime').
    return f" Did you mean '{(aliases or {}).get(original, original)}'?"


def _bad(f: Field, raw: Any, why: str, where: str, allowed: str) -> ProfileError:
    at = f" ({where})" if where else ""
    # On the command line the user typed the flag, so the message names the flag.
    name = f.flag if where == "command line" else f.name
    return ProfileError(f"{name}{at}: {why}", f"use {allowed}.")


def _number(f: Field, raw: Any, where: str, integer: bool) -> float | int:
    text = str(raw).strip()
    kind = "a whole number" if integer else "a number"
    bounds = f"{kind} from {_fmt(f.minimum)} to {_fmt(f.maximum)}"
    try:
        if isinstance(raw, bool):
            raise ValueError
        value: float | int = int(text) if integer else float(text)
    except ValueError:
        raise _bad(f, raw, f"{quoted(raw)} is not {kind}.", where, bounds + (" or auto" if f.kind ==
                                                                          "number_or_auto" else "")) from None
    if value != value or (f.minimum is not None and value < f.minimum) or (
            f.maximum is not None and value > f.maximum):
        raise _bad(f, raw, f"{quoted(raw)} is out of range.", where, bounds)
    return value


# A NUL or other control character in a path or a name only fails later, in the OS or in LoadGen.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _fmt(x: float | None) -> str:
    return "?" if x is None else (f"{x:g}" if x < 1e6 else f"{int(x):,}")


def coerce(f: Field, raw: Any, where: str = "") -> Any:
    """Validate one raw value (from YAML, a flag or a form) and return it in canonical form."""
    if raw is None or (isinstance(raw, str) and raw.strip() == "" and f.optional):
        if f.optional:
            return None
        raise _bad(f, raw, "a value is required.", where, _allowed_text(f))
    if f.kind == "choice":
        return _choice(f, raw, where)
    if f.kind == "choices":
        items = raw if isinstance(raw, (list, tuple)) else str(raw).replace(",", " ").split()
        if not items:
            raise _bad(f, raw, "at least one value is required.", where, _allowed_text(f))
        out: list[str] = []
        for item in items:
            value = _choice(f, item, where)
            if value not in out:
                out.append(value)
        return tuple(out)
    if f.kind == "int":
        return int(_number(f, raw, where, integer=True))
    if f.kind == "number_or_auto":
        if isinstance(raw, str) and raw.strip().lower() == AUTO:
            return AUTO
        return float(_number(f, raw, where, integer=False))
    if f.kind in ("text", "path"):
        if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
            raise _bad(f, raw, f"expected text, got {type(raw).__name__}.", where, _allowed_text(f))
        text = str(raw).strip()
        if _CONTROL.search(text):
            raise _bad(f, raw, f"{quoted(text)} holds a control character.", where, _allowed_text(f))
        if f.pattern and not re.fullmatch(f.pattern, text):
            raise _bad(f, raw, f"{quoted(text)} is not allowed.", where, _allowed_text(f))
        if f.kind == "path" and not text:
            raise _bad(f, raw, "an empty path.", where, _allowed_text(f))
        return text
    raise AssertionError(f"unknown field kind {f.kind}")


def _choice(f: Field, raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise _bad(f, raw, f"expected one of the names, got {quoted(raw)}.", where, _allowed_text(f))
    text = raw.strip()
    if text in f.choices:
        return text
    lowered = text.lower()
    for choice in f.choices:
        if choice.lower() == lowered:
            return choice
    if lowered in f.aliases:
        return f.aliases[lowered]
    base, colon, index = lowered.partition(":")
    base = f.aliases.get(base, base)
    if colon and base in f.indexed:
        if not re.fullmatch(r"[0-9]{1,2}", index):
            raise _bad(f, raw, f"{quoted(text)}: the index after '{base}:' must be a number from 0 to 99.",
                       where, _allowed_text(f))
        return f"{base}:{int(index)}"
    hint = _suggest(text, list(f.choices) + list(f.aliases), f.aliases)
    raise _bad(f, raw, f"unknown value {quoted(text)}.{hint}", where, _allowed_text(f))


def _allowed_text(f: Field) -> str:
    if f.kind in ("choice", "choices"):
        indexed = "".join(f" ({name}:N for number N)" for name in f.indexed)
        return "one of: " + ", ".join(f.choices) + indexed + (" (several allowed)" if f.kind == "choices" else "")
    if f.kind == "int":
        return f"a whole number from {_fmt(f.minimum)} to {_fmt(f.maximum)}"
    if f.kind == "number_or_auto":
        return f"auto or a number from {_fmt(f.minimum)} to {_fmt(f.maximum)}"
    if f.kind == "text" and f.pattern:
        return "letters, digits, '.', '_' and '-' (up to 64, starting with a letter or digit)"
    return "a path" if f.kind == "path" else "text"


def allowed_text(f: Field) -> str:
    """The allowed values of a field, in words (for help and errors)."""
    return _allowed_text(f)


def _check_consistency(p: Profile, where: str) -> Profile:
    at = f" ({where})" if where else ""
    if p.model_source == "local" and not p.model_path:
        raise ProfileError(f"model_source{at}: 'local' needs a model file.",
                           "set model_path (--model-path FILE) or choose model_source auto/synthetic.")
    if p.dataset_source == "local" and not p.dataset_path:
        raise ProfileError(f"dataset_source{at}: 'local' needs a dataset folder.",
                           "set dataset_path (--dataset-path DIR) or choose dataset_source auto/synthetic.")
    if p.model_path and p.model_source == "synthetic":
        raise ProfileError(f"model_path{at}: a model file was given but model_source is synthetic.",
                           "remove model_path, or set model_source to local or auto.")
    if p.dataset_path and p.dataset_source == "synthetic":
        raise ProfileError(f"dataset_path{at}: a dataset folder was given but dataset_source is synthetic.",
                           "remove dataset_path, or set dataset_source to local or auto.")
    return p


def make_profile(values: dict[str, Any] | None = None, base: Profile | None = None, where: str = "") -> Profile:
    """A profile from raw values (flags, form input) applied over ``base`` (or the defaults)."""
    return (base or Profile()).with_values(values or {}, where)


# ----------------------------------------------------------------------------------------- YAML


# What constructing a node with a standard tag and a bad value raises (`!!int abc`, `!!bool maybe`,
# `!!timestamp x`, an int too long to convert), besides PyYAML's own errors.
_CONSTRUCT_ERRORS = (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError, OverflowError,
                     RecursionError)


def _line_of(exc: BaseException, text: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f", line {mark.line + 1}"
    position = getattr(exc, "position", None)  # a ReaderError (a control character) has only a position
    return f", line {text.count(chr(10), 0, position) + 1}" if isinstance(position, int) else ""


def parse_profile_text(text: str, source: str = "<profile>") -> Profile:
    """Parse and validate a profile's YAML text. Errors name ``source`` and the line."""
    try:
        loader = BoundedLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except YamlLimitError as exc:
        line = f", line {exc.line}" if exc.line else ""
        raise ProfileError(f"{source}{line}: the profile is too large to read: it {exc.problem}.",
                           "write the values out plainly; a profile needs no anchors or aliases.") from None
    except (yaml.YAMLError, RecursionError) as exc:
        line = _line_of(exc, text)
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
        raise ProfileError(f"{source}{line}: not valid YAML ({quoted(problem, 200)[1:-1]}).",
                           "fix the YAML syntax there (indentation, a missing ':' or quote, a control "
                           "character).") from None
    if node is None:
        raise ProfileError(f"{source}: the profile is empty.", "write at least `version: 1` and a model.")
    if not isinstance(node, yaml.MappingNode):
        raise ProfileError(f"{source}, line {node.start_mark.line + 1}: a profile is a mapping of "
                           "`key: value` lines.", "see profiles/quickstart.yaml for an example.")
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    constructor = BoundedLoader("")
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        try:
            key = constructor.construct_object(key_node, deep=True)
        except _CONSTRUCT_ERRORS:
            key = None
        if not isinstance(key, str) or key_node.tag != "tag:yaml.org,2002:str":
            shown = quoted(key) if key is not None else f"a {key_node.tag.rsplit(':', 1)[-1]} key"
            raise ProfileError(f"{source}, line {line}: keys must be names, got {shown}.",
                               "use the field names listed by `mlperf-wizard run --help` (no merge keys '<<' "
                               "or tags).")
        if key in values:
            raise ProfileError(f"{source}, line {line}: {quoted(key)} is given twice (also on line "
                               f"{lines[key]}).", "keep one of them.")
        try:
            values[key] = constructor.construct_object(value_node, deep=True)
        except _CONSTRUCT_ERRORS as exc:
            why = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
            raise ProfileError(f"{source}, line {value_node.start_mark.line + 1}: cannot read the value of "
                               f"{quoted(key)} ({quoted(why, 200)[1:-1]}).",
                               "fix that value (a tag such as !!int needs a value of that type).") from None
        lines[key] = line
    version = values.pop("version", None)
    if version is None:
        raise ProfileError(f"{source}: the `version:` key is missing.", f"add `version: {SCHEMA_VERSION}`.")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise ProfileError(f"{source}, line {lines['version']}: profile version {quoted(version)} is not known "
                           f"to this mlperf-wizard (it reads version {SCHEMA_VERSION}).",
                           f"set `version: {SCHEMA_VERSION}` or upgrade mlperf-wizard.")
    for key in values:
        if key not in FIELD_BY_NAME:
            hint = _suggest(key, FIELD_BY_NAME)
            raise ProfileError(f"{source}, line {lines[key]}: unknown key {quoted(key)}.{hint}",
                               "allowed keys: version, " + ", ".join(FIELD_BY_NAME) + ".")
    profile = Profile()
    clean = {}
    for key, raw in values.items():
        clean[key] = coerce(FIELD_BY_NAME[key], raw, f"{source}, line {lines[key]}")
    return _check_consistency(replace(profile, **clean), source)


def load_profile(path: str | Path) -> Profile:
    """Read a profile file; a missing or unreadable file is a ProfileError that says so."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"Profile file {path} does not exist.",
                           "check the path, or list the saved profiles with `mlperf-wizard profiles list`.") from None
    except IsADirectoryError:
        raise ProfileError(f"{path} is a folder, not a profile file.", "give the path of a .yaml file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"Cannot read profile {path}: {exc}.", "check the file's permissions.") from None
    return parse_profile_text(text, str(path))


def dump_profile(profile: Profile) -> str:
    """The profile as YAML text, every field written so a rerun never depends on changed defaults."""
    header = ("# mlperf-wizard profile. Rerun it with: mlperf-wizard run <this file>\n"
              "# Every key is documented by `mlperf-wizard run --help`.\n")
    data = profile.to_dict()
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


PROFILE_SUFFIXES = (".yaml", ".yml")


def profile_files(folder: Path) -> list[Path]:
    """The profile files in ``folder`` (none when it does not exist or cannot be read), sorted by name as a
    person reads it (case-insensitive): the one order the CLI, the TUI and the history list them in."""
    try:
        found = [p for p in Path(folder).iterdir() if p.suffix in PROFILE_SUFFIXES and p.is_file()]
    except OSError:
        return []
    return sorted(found, key=lambda p: (p.stem.lower(), p.name))


PROFILE_NAME_RULE = "letters, digits, '-', '_' and '.', starting with a letter or digit"
_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _profile_stem(name: str) -> str:
    return re.sub(r"\.ya?ml$", "", name.strip())


def profile_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a saved profile, or None. A name is a name, never a path.

    The one rule the CLI (``profiles save``, ``run --save``), the plain prompts and the TUI's save box share;
    a trailing ``.yaml``/``.yml`` is accepted and dropped (see :func:`saved_profile_path`).
    """
    stem = _profile_stem(name)
    if _PROFILE_NAME.fullmatch(stem):
        return None
    if "/" in stem or "\\" in stem:
        return f"{quoted(name, 30)} is a path; a profile name uses {PROFILE_NAME_RULE}."
    if len(stem) > 64:
        return f"a profile name has at most 64 characters ({len(stem)} given)."
    return f"{quoted(name, 40)} is not a profile name: use {PROFILE_NAME_RULE}."


def saved_profile_path(name: str) -> Path:
    """The file a profile saved as ``name`` lives in, inside the saved-profiles folder; ProfileError if bad."""
    problem = profile_name_problem(name)
    if problem:
        raise ProfileError(problem[0].upper() + problem[1:], "choose a name such as my-resnet50.")
    return locations().profiles / f"{_profile_stem(name)}.yaml"


def save_profile(profile: Profile, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``profile`` atomically. Refuses to replace an existing file unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ProfileError(f"A profile already exists at {path}; it was left unchanged.",
                           "choose another name, or pass --force to replace it.")
    try:
        atomic_write_text(path, dump_profile(profile), overwrite=overwrite)
    except FileExistsError:
        raise ProfileError(f"A profile already exists at {path}; it was left unchanged.",
                           "choose another name, or pass --force to replace it.") from None
    except OSError as exc:  # pragma: no cover - atomic_write_text converts OS errors already
        if exc.errno == errno.ENOSPC:
            raise ProfileError(f"The disk is full: {path} was not written.", "free some space.") from None
        raise
    return path


def equivalent_command(profile: Profile, profile_path: str | None = None,
                       quote: Callable[[str], str] | None = None) -> str:
    """The one-line `mlperf-wizard run` command that reproduces ``profile`` (non-default fields only)."""
    import shlex

    q = quote or shlex.quote
    parts = ["mlperf-wizard", "run"]
    base = Profile()
    if profile_path:
        parts.append(q(profile_path))
        base = load_profile(profile_path)
    for f in FIELDS:
        value = getattr(profile, f.name)
        if value == getattr(base, f.name):
            continue
        if f.kind == "choices":
            parts.append(f.flag)
            parts.extend(value)
        elif value is None:
            parts.extend([f.flag, q("")])  # the base profile sets it; an empty value unsets it
        else:
            parts.extend([f.flag, q(_fmt_value(value))])
    return " ".join(parts)


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)  # never round a target away
    return str(value)


def field_names() -> list[str]:
    return [f.name for f in fields(Profile)]
