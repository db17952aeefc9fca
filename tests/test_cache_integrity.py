"""Corrupt caches are found and repaired: the synthetic model (integrity sidecar, rebuilt and reported by
the next run), and `models verify` names a broken one. Real tiny builds, the real CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import cache_integrity
from harness.models.registry import RESNET50, synthetic_path

RUN = ("run", "--synthetic", "--test-query-count", "8", "--dataset-size", "8")


def _model(home: Path) -> Path:
    return synthetic_path(RESNET50, "tiny")


@pytest.fixture
def built(home: Path, cli) -> Path:
    """A first short run, which builds and caches the tiny synthetic ResNet50."""
    done = cli(*RUN)
    assert done.returncode == 0, done.stderr
    path = _model(home)
    assert path.is_file() and cache_integrity.read_record(path) is not None
    return path


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def _say_rebuilt(done) -> str:
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert "was corrupt" in text and "rebuilding" in text, text
    assert "internal error" not in text
    return text


class TestSyntheticModel:
    def test_truncated_model_is_rebuilt_and_the_run_says_so(self, built: Path, cli):
        good = built.read_bytes()
        os.truncate(built, len(good) // 3)
        text = _say_rebuilt(cli(*RUN))
        assert f"size {len(good) // 3:,} bytes, expected {len(good):,}" in text
        assert built.read_bytes() == good

    def test_flipped_byte_is_rebuilt(self, built: Path, cli):
        good = built.read_bytes()
        _flip(built, len(good) // 2)
        text = _say_rebuilt(cli(*RUN))
        assert "content changed" in text
        assert built.read_bytes() == good

    def test_untouched_model_is_not_rebuilt(self, built: Path, cli):
        done = cli(*RUN)
        assert done.returncode == 0 and "was corrupt" not in done.stdout + done.stderr

    def test_models_verify_reports_the_broken_synthetic_model(self, built: Path, cli):
        assert cli("models", "verify").returncode == 0
        _flip(built, 10)
        done = cli("models", "verify")
        assert done.returncode == 1
        assert str(built) in done.stdout and "content changed" in done.stdout


class TestRecords:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.binary(min_size=1, max_size=4096), cut=st.integers(min_value=0), flip=st.integers(min_value=0))
    def test_any_truncation_or_flipped_byte_is_found(self, tmp_path: Path, data: bytes, cut: int, flip: int):
        path = tmp_path / "entry.bin"
        path.write_bytes(data)
        cache_integrity.record_file(path)
        assert cache_integrity.check_file(path) is None
        os.truncate(path, cut % len(data))
        assert "expected" in (cache_integrity.check_file(path) or "")
        path.write_bytes(data)
        _flip(path, flip % len(data))
        assert cache_integrity.check_file(path) is not None
        assert cache_integrity.check_file(path, deep=True) is not None


def _fake_imagenet(tmp_path: Path) -> Path:
    from harness.datasets.imagenet_real import make_fake_imagenet

    return make_fake_imagenet(tmp_path / "val", 8, seed=3).folder


def _prepared(home: Path) -> list[Path]:
    return sorted((home).rglob("imagenet/*/images/*.npy"))


class TestPreparedImageNet:
    def _run(self, cli, folder: Path):
        return cli("run", "--model-source", "synthetic", "--dataset-path", folder, "--test-query-count", "8",
                   "--dataset-size", "8")

    @pytest.mark.parametrize("damage", ["truncate", "delete", "pixels"])
    def test_broken_prepared_array_is_rebuilt(self, home: Path, cli, tmp_path: Path, damage: str):
        folder = _fake_imagenet(tmp_path)
        first = self._run(cli, folder)
        assert first.returncode == 0, first.stdout + first.stderr
        target = _prepared(home)[3]
        good = target.read_bytes()
        if damage == "truncate":
            os.truncate(target, 100)
        elif damage == "delete":
            target.unlink()
        else:
            with open(target, "r+b") as fh:
                fh.seek(len(good) - 3000)
                fh.write(b"\x00" * 3000)
        done = self._run(cli, folder)
        text = done.stdout + done.stderr
        assert done.returncode == 0, text
        assert "was corrupt" in text and "rebuilding" in text and target.name in text, text
        assert target.read_bytes() == good

    def test_datasets_verify_reports_a_broken_prepared_array(self, home: Path, cli, tmp_path: Path):
        folder = _fake_imagenet(tmp_path)
        imported = cli("datasets", "import", "imagenet", folder)
        assert imported.returncode == 0, imported.stdout + imported.stderr
        assert cli("datasets", "verify", "imagenet").stdout.strip() == "imagenet: verified"
        target = _prepared(home)[0]
        _flip(target, target.stat().st_size - 1)
        done = cli("datasets", "verify", "imagenet")
        assert done.returncode == 1
        assert str(target) in done.stdout and "content changed" in done.stdout


class TestPreparedOpenImages:
    @given(cut=st.integers(min_value=0, max_value=10_000_000), flip=st.booleans())
    @settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def test_any_damage_to_a_prepared_array_is_rebuilt_and_reported(self, tmp_path_factory, cut: int, flip: bool):
        from test_openimages import make_folder

        from harness.datasets.openimages import OpenImages

        root = tmp_path_factory.mktemp("oi")
        make_folder(root / "openimages")
        data = OpenImages(root / "openimages", cache_dir=root / "cache")
        assert data.prepare() == data.count
        target = data.cache_path(1)
        good = target.read_bytes()
        if flip:
            _flip(target, cut % len(good))
        else:
            os.truncate(target, cut % len(good))
        said: list[str] = []
        assert data.prepare(lambda stage, done, total: said.append(stage)) == 1
        assert any("was corrupt" in s and target.name in s for s in said), said
        assert target.read_bytes() == good
