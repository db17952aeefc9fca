"""The plain-prompt wizard driven with keystrokes through real questionary/prompt_toolkit prompts.

Keys go in up front through a pipe input that is then closed: a prompt the script did not expect hits the
end of input and the wizard returns 130, so a wrong script fails instead of hanging.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from harness.detect import Detection, detect
from harness.guidance import nearest_runnable
from harness.paths import locations
from harness.profile import Profile, load_profile, save_profile
from wizard.plain import run_plain

ENTER, DOWN, UP, SPACE, CTRL_C = "\r", "\x1b[B", "\x1b[A", " ", "\x03"
SAVED = "resnet50-onnxruntime-cpu"  # the default profile name: model-backend-device

# The questions of the default path, in order, each answered with Enter unless a test says otherwise.
QUESTIONS = ("model", "backend", "device", "precision", "scenarios", "mode", "style", "test_query_count",
             "target_qps", "advanced", "model_source", "dataset_source", "submission", "save", "name")


def typed(text: str) -> str:
    """Replace a text prompt's default (Ctrl-U clears the line) and press Enter."""
    return "\x15" + text + ENTER


def script(**answers: str) -> str:
    """The keystrokes for QUESTIONS, Enter for each one not given; an answer may cover extra questions."""
    return "".join(answers.get(q, ENTER) for q in QUESTIONS) + answers.get("after", "")


def wizard(keys: str, *, then: tuple[tuple[str, str], ...] = (), launch: bool | None = False,
           detection: Detection | None = None, output=None) -> tuple[int, str]:
    """Run the wizard on ``keys``; ``then``: (text to wait for on the output, keys to send once it shows)."""
    out = io.StringIO() if output is None else output
    result: list[int] = []
    with create_pipe_input() as pipe:
        worker = threading.Thread(target=lambda: result.append(
            run_plain(input=pipe, output=out, detection=detection, launch=launch)))
        worker.start()
        pipe.send_text(keys)
        for text, more in then:
            deadline = time.monotonic() + 30
            while text not in out.getvalue() and worker.is_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            pipe.send_text(more)
        pipe.close()
        worker.join(timeout=120)
    assert result, "the wizard did not return"
    return result[0], out.getvalue() if isinstance(out, io.StringIO) else ""


def saved(name: str = SAVED) -> Profile:
    return load_profile(locations().profiles / f"{name}.yaml")


@pytest.fixture
def detection(home: Path) -> Detection:
    return detect()


def test_enter_through_everything_saves_the_default_runnable_profile(detection: Detection) -> None:
    code, text = wizard(script(), detection=detection)
    assert code == 0, text
    assert saved() == nearest_runnable(Profile(), detection)
    assert "Plan: ResNet50 v1.5 on onnxruntime (cpu, fp32), style short" in text
    assert "Equivalent command: mlperf-wizard run\n" in text
    # The first question is drawn before any key arrives: every model is offered.
    assert all(name in text for name in ("resnet50", "retinanet", "bert"))


def test_arrow_keys_and_typing_change_the_profile(detection: Detection) -> None:
    keys = script(scenarios=DOWN + SPACE + ENTER, mode=DOWN + ENTER, target_qps=typed("250"),
                  advanced="y" + typed("2") + ENTER + typed("3") + DOWN + ENTER + typed("60"),
                  model_source=DOWN * 2 + ENTER,
                  dataset_source=ENTER + typed("50"),
                  submission="y" + ENTER + typed("acme") + typed("node-1") + UP + ENTER + DOWN + ENTER,
                  name=typed("mine"))
    code, text = wizard(keys, detection=detection)
    assert code == 0, text
    profile = saved("mine")
    assert (profile.scenarios, profile.mode, profile.target_qps, profile.model_source) == (
        ("Offline", "Server"), "accuracy", 250.0, "synthetic")
    assert (profile.threads, profile.batch_size, profile.watchdog, profile.dataset_size) == (2, None, 60, 50)
    assert (profile.workers, profile.tune) == (3, "off")
    assert (profile.submitter, profile.system_name, profile.results_dir, profile.division, profile.category) == (
        "acme", "node-1", None, "closed", "datacenter")
    assert "--scenario Offline Server --mode accuracy --target-qps 250" in text


def test_a_disabled_option_cannot_be_chosen(detection: Detection) -> None:
    # Down skips cuda where there is no usable GPU: as many Downs as there are offered devices wrap back to
    # the first (cpu). Every backend is implemented now; a device without hardware is the disabled choice.
    offered = [d for d in ("cpu", "cuda") if detection.backend_usable("onnxruntime", d)]
    if "cuda" in offered:
        pytest.skip("this machine has a GPU onnxruntime can use: no disabled device to skip")
    code, text = wizard(script(device=DOWN * len(offered) + ENTER), detection=detection)
    assert code == 0, text
    assert (saved().model, saved().backend, saved().device) == ("resnet50", "onnxruntime", "cpu")


def test_an_invalid_number_is_asked_again_with_the_cli_message(detection: Detection) -> None:
    keys, at = script(), QUESTIONS.index("test_query_count")
    # The prompt's toolbar shows the CLI's message (less the field name the prompt shows); 0 is out of range.
    message = "'abc' is not a whole number. Fix: use a whole number from 1 to 10,000,000."
    code, text = wizard(keys[:at] + typed("abc"), detection=detection,
                        then=((message, typed("0") + typed("16") + keys[at + 1:]),))
    assert code == 0, text
    assert message in text
    assert saved().test_query_count == 16


def test_no_to_overwrite_keeps_the_existing_profile_byte_identical(detection: Detection) -> None:
    path = save_profile(Profile(mode="accuracy"), locations().profiles / f"{SAVED}.yaml")
    before = path.read_bytes()
    code, text = wizard(script(after=ENTER + "n"), detection=detection)  # Overwrite? Enter = No; Save? n
    assert code == 0, text
    assert path.read_bytes() == before
    assert f"Kept {path} unchanged." in text
    assert list(path.parent.iterdir()) == [path]


def test_yes_to_overwrite_replaces_the_profile(detection: Detection) -> None:
    save_profile(Profile(mode="accuracy"), locations().profiles / f"{SAVED}.yaml")
    code, text = wizard(script(after="y"), detection=detection)
    assert code == 0, text
    assert saved() == nearest_runnable(Profile(), detection)


@pytest.mark.parametrize("at", ["style", "name"])
def test_ctrl_c_returns_130_and_writes_nothing(detection: Detection, at: str) -> None:
    keys = script()
    code, text = wizard(keys[: QUESTIONS.index(at)] + CTRL_C + ENTER * len(QUESTIONS), detection=detection)
    assert code == 130
    assert text.rstrip().endswith("cancelled")
    assert not locations().profiles.exists() or not any(locations().profiles.iterdir())
    assert not locations().results.exists() or not any(locations().results.iterdir())


def test_end_of_input_is_a_cancel_not_a_traceback(detection: Detection) -> None:
    code, text = wizard(ENTER * 3, detection=detection)
    assert code == 130 and "Traceback" not in text


def test_a_user_error_is_printed_and_returns_2(detection: Detection, tmp_path: Path) -> None:
    # A local model file that does not exist passes the prompt (it is a path) and is refused by the plan.
    missing = tmp_path / "missing.onnx"
    code, text = wizard(script(model_source=DOWN + ENTER + typed(str(missing))), detection=detection)
    assert code == 2, text
    assert "error: " in text and "Traceback" not in text
    assert not locations().profiles.exists()


def test_a_prompt_toolkit_output_is_accepted(detection: Detection) -> None:
    code, _ = wizard(script(save="n", name=""), detection=detection, output=DummyOutput())
    assert code == 0
    assert not locations().profiles.exists()


def test_launch_runs_loadgen_and_returns_0(detection: Detection) -> None:
    keys = script(test_query_count=typed("16"), save="n", name="") + "y"  # Launch now? y
    code, text = wizard(keys, launch=None, detection=detection)
    assert code == 0, text
    runs = list(locations().results.glob("*/run.json"))
    assert len(runs) == 1, text
    record = json.loads(runs[0].read_text())
    assert record["status"] == "completed"
    assert [(t["scenario"], t["mode"]) for t in record["tests"]] == [("Offline", "performance")]
    assert f"Run {record['run_id']}: completed." in text


def test_disabled_options_stay_visible_with_their_reason(detection: Detection) -> None:
    if detection.backend_usable("onnxruntime", "cuda"):
        pytest.skip("this machine has a GPU onnxruntime can use: cuda is not disabled here")
    keys = script()
    two = ENTER * 2  # the model's and the backend's answers
    assert keys.startswith(two)
    code, text = wizard(two, then=(("cuda (no-device", keys[len(two):]),), detection=detection)
    assert code == 0, text
    # The reason is printed in full above the prompt (wrapped between words); the choice shows the status.
    assert "  cuda: cuda was asked for but this machine has no NVIDIA GPU" in text and "cuda (no-device)" in text
    assert "cpu (" not in text  # offered
