"""A profile resolved into a plan: the model and data it uses, and one LoadGen test per scenario x mode.

Making a plan touches no framework and writes nothing; a dry run prints it.
"""

from __future__ import annotations

import os
import socket
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import catalogue, coverage, targets, tuning
from .errors import CoverageError, DatasetError
from .loadgen_settings import TestSize, duration_words, test_size
from .models.registry import MODELS, ModelChoice, resolve_model
from .paths import locations
from .profile import AUTO, Profile, device_index
from .scenarios import scenario as scenario_type

# mlperf.conf values the plan needs to size a run (see MLPERF_FACTS.md); LoadGen itself reads its
# embedded copy, these only feed estimates and messages.
MIN_DURATION_S = 600
SHORT_DATASET_SIZE = 500
DEFAULT_BATCH = {"cpu": {"Offline": 8, "Server": 8}, "cuda": {"Offline": 64, "Server": 32}}
MODE_DIR = {"performance": "performance/run_1", "accuracy": "accuracy", "tune": "tune", "search": "search"}
MEASURING_STEPS = ("tune", "search")
"""Steps that measure the SUT before the LoadGen tests (harness.tuning): not results of their own."""
LOADGEN_MODE = {"performance": "PerformanceOnly", "accuracy": "AccuracyOnly"}


@dataclass
class TestSpec:
    """Everything the child process needs to run one LoadGen test (JSON-serialisable)."""

    scenario: str
    mode: str
    rel_dir: str
    model: str
    conf_key: str
    backend: str
    device: str
    precision: str
    style: str
    model_path: str
    model_synthetic: bool
    model_variant: str | None
    dataset_count: int
    dataset_synthetic: bool
    batch_size: int
    workers: int
    threads: int | None
    test_query_count: int | None
    target: float | None
    """target QPS (Offline, Server) or target latency in ms (SingleStream, MultiStream); None = measure."""
    target_reason: str
    performance_sample_count: int
    out_dir: str = ""
    compile: str = "off"
    """The backend's compile step before the run: off, default or max-autotune."""
    model_derived_from: str | None = None
    """The official file ``model_path`` is converted from on first use (RetinaNet for TensorFlow)."""
    watchdog: int = 180
    system_name: str = ""
    dataset_path: str | None = None
    """A dataset folder in the official format; None = the synthetic generator."""
    tune_fixed: list[str] = field(default_factory=list)
    """The SUT settings the user gave (workers, threads, batch_size): a tune or search keeps them."""
    sut_reason: str = ""
    """Why the SUT runs with these workers, threads and batch size (tuned when, defaults, given)."""
    tune_key: dict[str, str] = field(default_factory=dict)
    """What a tune or search of this scenario is remembered under (harness.tuning)."""
    refused: str = ""
    """Why this test will not run (a Server bound no rate can meet here), decided before it starts."""
    server_probes: list[dict[str, Any]] = field(default_factory=list)
    """The Server search's probe runs this test's target came from (rate, p99, passed): the evidence a
    fix for an INVALID result is drawn from."""

    @property
    def name(self) -> str:
        return f"{self.scenario} {self.mode}"

    @property
    def target_kind(self) -> str:
        return scenario_type(self.scenario).target_kind

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestSpec:
        return cls(**data)


@dataclass
class Plan:
    profile: Profile
    model: ModelChoice
    dataset_description: str
    dataset_synthetic: bool
    system_name: str
    results_root: Path
    tests: list[TestSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _sizes: list[TestSize] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def synthetic(self) -> bool:
        return self.model.synthetic or self.dataset_synthetic

    def sizes(self) -> list[TestSize]:
        """Per test: the samples LoadGen will issue and about how long it will run (LoadGen's own settings;
        worked out once per plan)."""
        if self._sizes is None or len(self._sizes) != len(self.tests):
            self._sizes = [test_size(t) for t in self.tests]
        return self._sizes

    def describe(self) -> str:
        """The plan in words, as a dry run prints it."""
        p = self.profile
        lines = [
            f"Plan: {MODELS[p.model].title} on {p.backend} ({p.device}, {p.precision}), style {p.style}",
            f"  model:   {self.model.description}",
            f"           {self.model.path}" + ("" if self.model.path.exists() or not self.model.synthetic
                                               else "  (built on first use, then cached)"),
            f"  dataset: {self.dataset_description}",
            f"  system:  {self.system_name}",
            f"  results: {self.results_root}/<run id>/",
            "  LoadGen tests (each in its own process):",
        ]
        for i, (t, size) in enumerate(zip(self.tests, self.sizes(), strict=True), 1):
            lines.append(f"    {i}. {t.scenario:<12} {t.mode:<11} -> {t.rel_dir}")
            if t.mode in MEASURING_STEPS:
                what = ("workers x threads per worker, then the batch size"
                        if t.mode == "tune" and scenario_type(t.scenario).throughput else
                        "the threads per query" if t.mode == "tune" else
                        "the highest rate that meets the latency bound, by short runs")
                lines.append(f"       measures {what}")
                lines.append(f"       at most about {duration_words(size.expected_s or 0)}")
                continue
            lines.append(f"       {_test_size(t, size)}")
            if t.refused:
                lines.extend(textwrap.wrap(f"refused before it starts: {t.refused}", 74,
                                           initial_indent=" " * 7, subsequent_indent=" " * 12))
                continue
            lines.extend(textwrap.wrap(f"SUT: {_sut_text(t)}", 74, initial_indent=" " * 7,
                                       subsequent_indent=" " * 12))
            if t.mode == "performance":
                lines.extend(textwrap.wrap(f"{t.target_kind}: {_target_text(t)}", 74, initial_indent=" " * 7,
                                           subsequent_indent=" " * 12))
            lines.append(f"       expected duration: {size.duration_text(t)}")
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.synthetic:
            lines.append("  SYNTHETIC: model and/or data are local stand-ins; the result is NOT an MLPerf result.")
        return "\n".join(lines)


def _test_size(t: TestSpec, size: TestSize) -> str:
    if t.mode == "accuracy":
        return f"accuracy: all {size.count_text(t)} of the dataset"
    if t.style == "short":
        return f"short run: {size.count_text(t)}, no minimum duration (not a valid MLPerf run)"
    return f"{t.style} run: {size.count_text(t)}, at least {duration_words(size.min_duration_s)} (mlperf.conf)"


def _sut_text(t: TestSpec) -> str:
    threads = f"{t.threads} thread{'s' if t.threads != 1 else ''}" if t.threads else "all cores"
    if scenario_type(t.scenario).throughput:
        how = f"{t.workers} worker{'s' if t.workers != 1 else ''} x {threads}, batch {t.batch_size}"
    else:
        how = threads
    return f"{how} ({t.sut_reason})" if t.sut_reason else how


def _target_text(t: TestSpec) -> str:
    unit = "queries/s" if t.target_kind == "target_qps" else "ms"
    if t.target is None:
        return f"auto ({t.target_reason})"
    return f"{t.target:g} {unit} ({t.target_reason})"


def default_system_name() -> str:
    name = socket.gethostname().split(".")[0] or "system"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def prepare(profile: Profile, detection) -> Plan:
    """The checked plan of ``profile`` on this machine, for every front end: the coverage check (a
    combination that cannot run here stops with the reason, never a silent fallback) and then the plan.
    What a front end shows for review is the plan that runs: it is made once, here."""
    coverage.check(profile.model, profile.backend, profile.device, profile.precision, detection)
    index = device_index(profile.device)
    if index and detection is not None and profile.backend in detection.backends:
        seen = int(detection.backends[profile.backend].details.get("cuda_device_count") or len(detection.gpus))
        if index >= seen:
            raise CoverageError(f"--device {profile.device}: {profile.backend} sees {seen} GPU(s) here, "
                                "numbered from 0.", f"use --device cuda:0 .. cuda:{seen - 1}." if seen > 1 else
                                "use --device cuda (GPU 0)." if seen else "use --device cpu.")
    return make_plan(profile)


def make_plan(profile: Profile) -> Plan:
    """Resolve ``profile`` into the tests to run. Raises WizardError subclasses with the fix."""
    spec = MODELS[profile.model]
    if profile.implementation != "python":
        raise CoverageError("The C++ implementation (implementation: cpp) is not part of mlperf-wizard yet.",
                            "use implementation python (the reference harness).")
    model = resolve_model(profile.model, profile.backend, profile.precision, profile.model_source,
                          profile.model_path)
    if profile.compile != "off" and profile.compile not in catalogue.backend(profile.backend).compile_modes:
        able = [b.name for b in catalogue.BACKENDS if profile.compile in b.compile_modes]
        raise CoverageError(f"compile {profile.compile}: the {profile.backend} backend has no compile step.",
                            f"use --compile off, or --backend {' or '.join(able)}.")
    for scenario in profile.scenarios:
        if why := spec.scenario_problem(scenario):
            raise CoverageError(f"{why}.", "choose another scenario.")
    system = profile.system_name or default_system_name()
    if profile.style == "short":
        count = min(spec.dataset_size, profile.dataset_size or SHORT_DATASET_SIZE)
    else:
        count = min(spec.dataset_size, profile.dataset_size or spec.dataset_size)
    dataset_path = resolve_dataset(profile, spec)
    if dataset_path is not None and profile.dataset_size is None:
        from .models.families import family

        # The default subset is a cap: a smaller folder (a trimmed val_map.txt) is used whole.
        count = min(count, family(profile.model).real_size(dataset_path))
    if dataset_path is None:
        dataset_description = (f"synthetic {spec.dataset} ({count} generated samples, seeded): "
                               "NOT an MLPerf dataset")
    else:
        dataset_description = f"{spec.dataset} from {dataset_path} (first {count} samples)"
    root = Path(profile.results_dir).expanduser() if profile.results_dir else locations().results
    plan = Plan(profile, model, dataset_description, dataset_path is None, system, root.resolve())
    if profile.style == "submission":
        plan.notes.append("submission style runs accuracy and performance for every scenario.")
    cores = os.cpu_count() or 1
    if profile.threads and profile.threads > cores:
        plan.notes.append(f"WARNING: --threads {profile.threads} oversubscribes the {cores} logical cores "
                          "of this machine: threads will wait for a core and the results will suffer.")
    fixed = [name for name in SUT_FIELDS if getattr(profile, name) is not None]
    for scenario in profile.scenarios:
        sut = sut_settings(profile, scenario, model)
        target, reason = _target_for(profile, scenario, model, sut)
        steps = [(mode, target, reason) for mode in profile.modes]
        if sut.step:
            steps.insert(0, (sut.step, None, "not used: this step measures"))
        for mode, target, reason in steps:
            test = TestSpec(
                scenario=scenario, mode=mode,
                rel_dir=f"{system}/{spec.name}/{scenario}/{MODE_DIR[mode]}",
                model=spec.name, conf_key=spec.conf_key, backend=profile.backend, device=profile.device,
                precision=profile.precision, style=profile.style, model_path=str(model.path),
                model_synthetic=model.synthetic, model_variant=model.variant, dataset_count=count,
                model_derived_from=str(model.derived_from) if model.derived_from else None,
                dataset_synthetic=dataset_path is None, dataset_path=str(dataset_path) if dataset_path else None,
                batch_size=sut.batch_size, workers=sut.workers, threads=sut.threads, compile=profile.compile,
                test_query_count=profile.test_query_count if profile.style == "short" else None,
                target=target, target_reason=reason,
                performance_sample_count=min(spec.performance_sample_count, count),
                watchdog=max(profile.watchdog, STEP_WATCHDOG_S) if mode in MEASURING_STEPS else profile.watchdog,
                system_name=system, tune_fixed=list(fixed), sut_reason=sut.reason, tune_key=sut.key,
                refused=sut.refused if mode == "performance" else "")
            plan.tests.append(test)
    return plan


SUT_FIELDS = ("workers", "threads", "batch_size")
TUNE_ENV = "MLPERF_WIZARD_TUNE"
"""``off`` turns ``tune: auto`` off for every run of this environment (CI, scripts that want fixed settings)."""
STEP_WATCHDOG_S = 240
"""A tune or search step reports between measurements; a slow model's candidate can take a minute."""


@dataclass(frozen=True)
class SutSettings:
    """How a scenario's tests run the SUT, and why; ``step`` names the measuring step to run first."""

    workers: int
    threads: int | None
    batch_size: int
    reason: str
    key: dict[str, str]
    step: str | None = None
    refused: str = ""
    measured: bool = True
    """False when tuning is off: remembered tunes and searches are not used either."""


def tune_key(profile: Profile, scenario: str, model: ModelChoice) -> dict[str, str]:
    """What a tuned SUT is stored under: this machine, this model file, this backend and version."""
    from .probe_backends import installed_distribution

    given = ",".join(f"{n}={getattr(profile, n)}" for n in SUT_FIELDS if getattr(profile, n) is not None)
    return {**tuning.machine_id(), "model": profile.model,
            "model_file": tuning.model_id(str(model.path), model.synthetic, model.variant, profile.precision),
            "backend": profile.backend, "backend_version": installed_distribution(profile.backend)[1] or "?",
            "device": profile.device, "precision": profile.precision, "scenario": scenario,
            "given": given or "none"}


def sut_settings(profile: Profile, scenario: str, model: ModelChoice) -> SutSettings:
    """Workers, threads and batch size of a scenario's tests: the user's, a remembered tune, a tune to run
    first, or the defaults, in that order; each with the reason the plan shows."""
    kind = scenario_type(scenario)
    spec = MODELS[profile.model]
    cpu = profile.device_kind == "cpu"
    if kind.throughput:
        batch = profile.batch_size or DEFAULT_BATCH[profile.device_kind][scenario]
    elif kind.batched_queries:
        batch = spec.multistream_samples
    else:
        batch = 1
    workers = profile.workers or (1 if cpu or not kind.throughput else 2)
    threads = profile.threads
    key = tune_key(profile, scenario, model)
    default = "defaults"
    given = [n for n in SUT_FIELDS if getattr(profile, n) is not None]
    searched = set(SUT_FIELDS) if kind.throughput else {"threads"}
    if profile.tune == "off":
        return SutSettings(workers, threads, batch, default + " (tune off)", key, measured=False)
    if os.environ.get(TUNE_ENV, "").strip().lower() == "off":
        return SutSettings(workers, threads, batch, default + f" (tune off: {TUNE_ENV}=off)", key, measured=False)
    if kind.scheduled and profile.target_qps == AUTO:
        # The rate and the split are found together: the split that meets the bound at the highest rate.
        found = tuning.lookup_search(key)
        if found is not None:
            config, rate, why = found
            if config is None:
                return SutSettings(workers, threads, batch, default, key, refused=why)
            return SutSettings(config.workers, config.threads or threads, config.batch_size,
                               "the Server search's choice, with the rate below", key)
        if "performance" in profile.modes:
            return SutSettings(workers, threads, batch, "until the search step above chooses", key,
                               step="search")
        return SutSettings(workers, threads, batch, default, key)
    if not cpu:
        return SutSettings(workers, threads, batch, default + " (the tuner measures CPU runs)", key)
    if searched <= set(given):
        return SutSettings(workers, threads, batch, "given: " + ", ".join(
            f"{n.replace('_', ' ')} {getattr(profile, n)}" for n in given), key)
    tuned = tuning.lookup(key)
    if tuned is not None:
        best = tuned.best
        return SutSettings(best.workers, best.threads, best.batch_size, tuned.reason(), key)
    if "performance" not in profile.modes:
        return SutSettings(workers, threads, batch, default + " (no performance test: not tuned)", key)
    return SutSettings(workers, threads, batch, "until the tune step above chooses", key, step="tune")


def resolve_dataset(profile: Profile, spec) -> Path | None:
    """The dataset folder a run reads, or None for the synthetic generator. Checks only that it exists:
    the child validates its contents (and reports what is missing) before LoadGen starts."""
    from .datasets import store
    from .models.families import supports_real_dataset

    if profile.dataset_source == "synthetic":
        return None
    if not profile.dataset_path:
        # A dataset fetched or imported with `mlperf-wizard datasets` is what auto and official mean.
        prepared = store.official_dataset_dir(profile.model) if supports_real_dataset(profile.model) else None
        if prepared is not None:
            return prepared
        if profile.dataset_source == "auto":
            return None
    if not supports_real_dataset(profile.model):
        raise DatasetError(f"Reading the real {spec.dataset} is not supported yet for {spec.title}.",
                           "use --dataset-source synthetic (generated inputs, labelled as not an MLPerf result).")
    if profile.dataset_source == "official" and not profile.dataset_path:
        raise store.not_prepared_error(profile.model)
    path = Path(profile.dataset_path or "").expanduser()
    if not path.is_dir():
        raise DatasetError(f"Dataset folder {path} does not exist.",
                           "check --dataset-path, or use --dataset-source synthetic.")
    return path.resolve()


def target_key(profile: Profile, scenario: str, model: ModelChoice) -> dict[str, str]:
    """What a remembered target is stored under: the same SUT doing the same work."""
    return {"system": profile.system_name or default_system_name(), "model": profile.model,
            "model_variant": model.variant or model.source, "backend": profile.backend,
            "device": profile.device, "precision": profile.precision, "scenario": scenario,
            "threads": str(profile.threads or "all"), "batch_size": str(profile.batch_size or "default")}


def _target_for(profile: Profile, scenario: str, model: ModelChoice, sut: SutSettings) -> tuple[float | None, str]:
    qps = scenario_type(scenario).throughput
    given = profile.target_qps if qps else profile.target_latency
    if given != AUTO:
        return float(given), "given in the profile"
    if scenario_type(scenario).scheduled and sut.measured:
        found = tuning.lookup_search(sut.key)
        if found is not None and found[1] is not None:
            return found[1], found[2]
        if sut.step == "search":
            return None, "the Server search before the tests finds it"
    remembered = targets.lookup(target_key(profile, scenario, model))
    if remembered:
        return remembered.value, f"what this SUT sustained on {remembered.when[:10]} (run {remembered.run_id})"
    return None, "measured briefly before the test starts"
