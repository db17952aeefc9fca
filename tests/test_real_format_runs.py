"""End to end with data in the official formats: a generated ImageNet folder (JPEGs + val_map.txt) and a
classifier whose answers are known by construction, through the real CLI, LoadGen and accuracy script."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from test_imagenet import _colour_classifier

from harness.datasets.imagenet_real import make_fake_imagenet


def test_imagenet_folder_and_known_classifier_give_exact_top1(home, cli, tmp_path: Path):
    fake = make_fake_imagenet(tmp_path / "val", 48, seed=5)
    model = _colour_classifier(tmp_path / "colour.onnx")
    done = cli("run", "--model-path", model, "--dataset-path", fake.folder, "--scenario", "Offline",
               "SingleStream", "--mode", "both", "--test-query-count", "100", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    accuracy = [t for t in record["tests"] if t["mode"] == "accuracy"]
    assert len(accuracy) == 2
    for t in accuracy:
        assert t["status"] == "completed"
        assert (t["accuracy"]["value"], t["accuracy"]["good"], t["accuracy"]["total"]) == (100.0, 48, 48)
        assert not t["synthetic"]
        text = (Path(t["directory"]) / "accuracy.txt").read_text()
        assert text.startswith("accuracy=100.000%, good=48, total=48")
    perf = [t for t in record["tests"] if t["mode"] == "performance"]
    assert [t["validity"] for t in perf] == ["VALID", "VALID"]
    assert not record["synthetic"]
    assert "SYNTHETIC" not in done.stderr


def test_retinanet_on_an_openimages_folder(home, cli, tmp_path: Path):
    """The MLPerf OpenImages layout (JPEGs + COCO json) through RetinaNet, LoadGen and the mAP script."""
    from test_openimages import make_folder

    coco = make_folder(tmp_path / "openimages")
    done = cli("run", "--model", "retinanet", "--dataset-path", tmp_path / "openimages", "--scenario", "Offline",
               "--mode", "both", "--test-query-count", "3", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    accuracy, performance = record["tests"]
    assert accuracy["status"] == "completed" and accuracy["accuracy"]["metric"] == "mAP"
    assert accuracy["accuracy"]["images"] == len(coco["images"])
    assert not accuracy["synthetic_data"] and accuracy["synthetic_model"]
    log = json.loads((Path(accuracy["directory"]) / "mlperf_log_accuracy.json").read_text())
    assert sorted({e["qsl_idx"] for e in log}) == list(range(len(coco["images"])))
    for entry in log:  # the reference's encoding: 7 floats per detection, the first one the QSL index
        detections = np.frombuffer(bytes.fromhex(entry["data"]), dtype=np.float32).reshape(-1, 7)
        assert (detections[:, 0] == entry["qsl_idx"]).all()
    assert performance["validity"] == "VALID" and performance["unit"] == "samples/s"


def test_bert_on_a_squad_folder(home, cli, tmp_path: Path):
    """dev-v1.1.json + vocab.txt through the tokeniser, BERT (int8 too), LoadGen and the SQuAD script."""
    from test_squad import squad_json, write_vocab

    folder = tmp_path / "squad"
    folder.mkdir()
    (folder / "dev-v1.1.json").write_text(json.dumps(squad_json(extra_question=True)), encoding="utf-8")
    write_vocab(folder / "vocab.txt")
    for precision in ("fp32", "int8"):
        done = cli("run", "--model", "bert", "--precision", precision, "--dataset-path", folder,
                   "--scenario", "Offline", "--mode", "accuracy", "--json")
        assert done.returncode == 0, done.stderr
        (test,) = json.loads(done.stdout)["tests"]
        assert test["status"] == "completed" and not test["synthetic_data"]
        acc = test["accuracy"]
        # 3 questions; the 700-word context gives several features (doc_stride 128), all of them issued.
        assert acc["metric"] == "F1" and acc["total"] == 3 and acc["features"] > 3
        assert 0.0 <= acc["value"] <= 100.0
        line = (Path(test["directory"]) / "accuracy.txt").read_text().splitlines()[0]
        assert json.loads(line).keys() == {"exact_match", "f1"}
