"""Downloads against a real HTTP server on 127.0.0.1: resume, Range-less servers, checksum failures,
mirror fallback, no network, cancel; checksums, import, and the `models` command as a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness import download
from harness.errors import ModelError, ResultsError
from harness.models.registry import RESNET50, OfficialFile

BODY = os.urandom(300_000)
BODY_MD5 = hashlib.md5(BODY).hexdigest()
FAST = {"backoff_s": 0.01, "timeout_s": 2.0}


@dataclass
class Route:
    """How the server answers one path."""

    body: bytes = BODY
    status: int = 200
    ranges: bool = True
    drops: int = 0
    """The next ``drops`` requests send only ``drop_after`` bytes of the body, then close the connection."""
    drop_after: int = 100_000
    stall_s: float = 0.0
    """Send half of what was asked for, then go silent this long."""
    piece: int = 0
    piece_delay_s: float = 0.0
    """Trickle: ``piece`` bytes every ``piece_delay_s``."""


class _Handler(BaseHTTPRequestHandler):
    server: LocalServer

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        route = srv.routes.get(self.path)
        if route is None or route.status != 200:
            self.send_error(404 if route is None else route.status)
            return
        body, start = route.body, 0
        asked = self.headers.get("Range")
        if asked and route.ranges:
            start = int(asked.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            if route.drops > 0:
                route.drops -= 1
                self.wfile.write(payload[:route.drop_after])
                self.close_connection = True
                return
            if route.stall_s:
                self.wfile.write(payload[:len(payload) // 2])
                self.wfile.flush()
                srv.stopping.wait(route.stall_s)
                return
            if route.piece:
                for i in range(0, len(payload), route.piece):
                    if srv.stopping.is_set():
                        return
                    self.wfile.write(payload[i:i + route.piece])
                    self.wfile.flush()
                    time.sleep(route.piece_delay_s)
                return
            self.wfile.write(payload)
        except OSError:
            pass  # the client went away (timeout, cancel): nothing to do


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.stopping = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def handle_error(self, request, client_address) -> None:
        pass


@pytest.fixture
def server():
    srv = LocalServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.stopping.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def refused_url() -> str:
    """A URL on a port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/model.onnx"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def part_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


# -------------------------------------------------------------------------------------------- fetch


def test_fetch_downloads_verifies_and_renames(server, tmp_path):
    server.routes["/model.onnx"] = Route()
    dest = tmp_path / "cache" / "model.onnx"
    calls = []
    assert download.fetch([server.url("/model.onnx")], dest, md5=BODY_MD5, size=len(BODY),
                          progress=lambda d, t: calls.append((d, t)), **FAST) == dest
    assert dest.read_bytes() == BODY
    assert not part_of(dest).exists()
    assert calls[-1] == (len(BODY), len(BODY))
    assert json.loads((tmp_path / "cache" / "model.onnx.md5.json").read_text())["md5"] == BODY_MD5


def test_resume_after_dropped_connection(server, tmp_path):
    server.routes["/model.onnx"] = Route(drops=1, drop_after=120_000)
    dest = tmp_path / "model.onnx"
    with pytest.raises(ModelError) as err:
        download.fetch([server.url("/model.onnx")], dest, md5=BODY_MD5, retries=0, **FAST)
    assert "kept in" in str(err.value) and "resumes" in str(err.value)
    assert not dest.exists()
    assert part_of(dest).read_bytes() == BODY[:120_000]

    assert download.fetch([server.url("/model.onnx")], dest, md5=BODY_MD5, retries=0, **FAST) == dest
    assert server.requests[-1] == ("/model.onnx", "bytes=120000-")
    assert md5(dest.read_bytes()) == BODY_MD5
    assert not part_of(dest).exists()


def test_retries_within_one_fetch_resume_where_the_drop_happened(server, tmp_path):
    server.routes["/model.onnx"] = Route(drops=2, drop_after=50_000)
    notes = []
    dest = download.fetch([server.url("/model.onnx")], tmp_path / "model.onnx", md5=BODY_MD5, retries=3,
                          notify=notes.append, **FAST)
    assert dest.read_bytes() == BODY
    assert [r for _, r in server.requests] == [None, "bytes=50000-", "bytes=100000-"]
    assert len(notes) == 2 and "connection closed after" in notes[0]


def test_server_without_range_support_starts_over_cleanly(server, tmp_path):
    server.routes["/model.onnx"] = Route(ranges=False)
    dest = tmp_path / "model.onnx"
    part_of(dest).write_bytes(b"\0" * 70_000)  # not even the right bytes: must not survive
    notes = []
    download.fetch([server.url("/model.onnx")], dest, md5=BODY_MD5, notify=notes.append, **FAST)
    assert server.requests == [("/model.onnx", "bytes=70000-")]
    assert dest.read_bytes() == BODY
    assert any("does not resume" in n for n in notes)


def test_checksum_failure_everywhere_keeps_nothing(server, tmp_path):
    wrong = bytes(reversed(BODY))
    server.routes["/a/model.onnx"] = Route(body=wrong)
    server.routes["/b/model.onnx"] = Route(body=wrong)
    dest = tmp_path / "model.onnx"
    with pytest.raises(ModelError) as err:
        download.fetch([server.url("/a/model.onnx"), server.url("/b/model.onnx")], dest, md5=BODY_MD5, **FAST)
    text = str(err.value)
    assert f"expected md5 {BODY_MD5}" in text and f"md5 {md5(wrong)}" in text
    assert "was not kept" in text and "models import PATH" in text
    assert server.url("/a/model.onnx") in text and server.url("/b/model.onnx") in text
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("leftover", ["corrupt", "too long"])
def test_bad_part_is_discarded_and_fetched_again(server, tmp_path, leftover):
    server.routes["/model.onnx"] = Route()
    dest = tmp_path / "model.onnx"
    if leftover == "corrupt":
        # Right length prefix, wrong bytes: only the md5 at the end can tell.
        part_of(dest).write_bytes(b"\xff" * 100_000)
    else:
        part_of(dest).write_bytes(BODY + b"trailing junk")
    download.fetch([server.url("/model.onnx")], dest, md5=BODY_MD5, **FAST)
    assert dest.read_bytes() == BODY
    assert [r for _, r in server.requests] == (
        ["bytes=100000-", None] if leftover == "corrupt" else [f"bytes={len(BODY) + 13}-", None])


def test_part_longer_than_the_known_size_is_dropped_before_asking(server, tmp_path):
    server.routes["/model.onnx"] = Route()
    dest = tmp_path / "model.onnx"
    part_of(dest).write_bytes(BODY + b"junk")
    download.fetch([server.url("/model.onnx")], dest, md5=BODY_MD5, size=len(BODY), **FAST)
    assert server.requests == [("/model.onnx", None)]
    assert dest.read_bytes() == BODY


@pytest.mark.parametrize("first", ["404", "500", "refused"])
def test_falls_back_to_the_next_mirror(server, tmp_path, first):
    server.routes["/good/model.onnx"] = Route()
    if first == "refused":
        bad = refused_url()
    else:
        server.routes["/bad/model.onnx"] = Route(status=int(first))
        bad = server.url("/bad/model.onnx")
    notes = []
    dest = download.fetch([bad, server.url("/good/model.onnx")], tmp_path / "model.onnx", md5=BODY_MD5, retries=2,
                          notify=notes.append, **FAST)
    assert dest.read_bytes() == BODY
    tries_on_bad = [p for p, _ in server.requests if p == "/bad/model.onnx"]
    assert len(tries_on_bad) == {"404": 1, "500": 3, "refused": 0}[first]  # 404: no point in asking again
    assert any("trying " + server.url("/good/model.onnx") in n for n in notes)


def test_stalled_mirror_times_out_and_the_next_one_continues_the_part(server, tmp_path):
    server.routes["/slow/model.onnx"] = Route(stall_s=10)
    server.routes["/good/model.onnx"] = Route()
    start = time.monotonic()
    dest = download.fetch([server.url("/slow/model.onnx"), server.url("/good/model.onnx")], tmp_path / "model.onnx",
                          md5=BODY_MD5, retries=0, backoff_s=0.01, timeout_s=0.3)
    assert time.monotonic() - start < 5
    assert dest.read_bytes() == BODY
    assert server.requests[-1] == ("/good/model.onnx", f"bytes={len(BODY) // 2}-")


def test_no_network_says_so_quickly_with_the_fix(tmp_path):
    urls = [refused_url(), refused_url()]
    start = time.monotonic()
    with pytest.raises(ModelError) as err:
        download.fetch(urls, tmp_path / "model.onnx", md5=BODY_MD5, backoff_s=0.05, timeout_s=1)
    assert time.monotonic() - start < 5
    text = str(err.value)
    assert text.startswith("Could not reach any source of model.onnx")
    assert all(f"{u} (connection refused)" in text for u in urls)
    assert "mlperf-wizard models import PATH" in text and "--model-source synthetic" in text
    assert list(tmp_path.iterdir()) == []


def test_present_file_is_not_downloaded_again_but_a_wrong_one_is_replaced(server, tmp_path):
    dest = tmp_path / "model.onnx"
    dest.write_bytes(BODY)
    assert download.fetch([server.url("/model.onnx")], dest, md5=BODY_MD5, **FAST) == dest
    assert server.requests == []  # the route does not even exist

    server.routes["/model.onnx"] = Route()
    dest.write_bytes(b"an older, different file")
    download.fetch([server.url("/model.onnx")], dest, md5=BODY_MD5, **FAST)
    assert dest.read_bytes() == BODY and len(server.requests) == 1


def test_progress_is_reported_at_most_about_ten_times_a_second(server, tmp_path):
    server.routes["/model.onnx"] = Route(piece=5_000, piece_delay_s=0.01)  # 60 pieces over ~0.7 s
    calls = []
    start = time.monotonic()
    download.fetch([server.url("/model.onnx")], tmp_path / "model.onnx", md5=BODY_MD5,
                   progress=lambda d, t: calls.append((time.monotonic(), d, t)), **FAST)
    elapsed = time.monotonic() - start
    assert 2 <= len(calls) <= elapsed * 10 + 2
    assert calls[-1][1:] == (len(BODY), len(BODY))
    assert [d for _, d, _ in calls] == sorted(d for _, d, _ in calls)


def test_cancel_keeps_the_part_and_a_later_fetch_resumes(server, tmp_path):
    route = server.routes["/model.onnx"] = Route(piece=10_000, piece_delay_s=0.05)
    dest = tmp_path / "model.onnx"
    cancel = threading.Event()

    def progress(done: int, total: int | None) -> None:
        if done >= 20_000:
            cancel.set()

    with pytest.raises(download.DownloadCancelled) as err:
        download.fetch([server.url("/model.onnx")], dest, md5=BODY_MD5, progress=progress, cancel=cancel, **FAST)
    kept = part_of(dest).stat().st_size
    assert 20_000 <= kept < len(BODY) and not dest.exists()
    assert err.value.kept == kept and str(part_of(dest)) in str(err.value)

    route.piece = 0
    download.fetch([server.url("/model.onnx")], dest, md5=BODY_MD5, **FAST)
    assert server.requests[-1] == ("/model.onnx", f"bytes={kept}-")
    assert dest.read_bytes() == BODY


def test_cancel_during_back_off_is_prompt(tmp_path):
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(download.DownloadCancelled):
        download.fetch([refused_url()], tmp_path / "model.onnx", md5=BODY_MD5, backoff_s=30, cancel=cancel)
    assert time.monotonic() - start < 3


def test_a_file_that_cannot_be_written_is_a_results_error_and_the_part_stays(server, tmp_path):
    server.routes["/model.onnx"] = Route()
    dest = tmp_path / "model.onnx"
    # A file-size limit makes writes fail past 64 kB, as a full disk would (in a child: the limit is per process).
    code = ("import resource, sys\n"
            "from pathlib import Path\n"
            "from harness import download\n"
            "from harness.errors import ResultsError\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY))\n"
            "try:\n"
            f"    download.fetch([{server.url('/model.onnx')!r}], Path({str(dest)!r}), md5={BODY_MD5!r},"
            " backoff_s=0.01, timeout_s=2)\n"
            "except ResultsError as exc:\n"
            "    print(exc); sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 3, done.stderr
    assert "Could not write" in done.stdout and "model.onnx.part" in done.stdout
    assert len(server.requests) == 1  # not retried: another try cannot succeed
    assert part_of(dest).stat().st_size == 65536 and not dest.exists()


def test_disk_full_message_names_the_file_and_the_fix(tmp_path):
    exc = download._write_error(tmp_path / "model.onnx.part", OSError(28, "No space left on device"))
    assert isinstance(exc, ResultsError)
    assert str(exc).startswith(f"The disk is full: could not write {tmp_path / 'model.onnx.part'}.")
    assert "free space" in str(exc) and "resumes" in str(exc)


# --------------------------------------------------------------------------------- verify and import


def test_verify_remembers_checksums_by_size_and_mtime(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(BODY)
    assert download.verify(path, BODY_MD5) and not download.verify(path, "0" * 32)
    sidecar = tmp_path / "model.onnx.md5.json"
    record = json.loads(sidecar.read_text())
    assert record["md5"] == BODY_MD5 and record["size"] == len(BODY)
    # The sidecar is trusted while size and mtime match (that is the point: no re-hash every run) ...
    sidecar.write_text(json.dumps({**record, "md5": "f" * 32}))
    assert download.verify(path, "f" * 32)
    # ... and not once the file changes, nor when asked to hash again.
    assert download.verify(path, BODY_MD5, use_cache=False)
    path.write_bytes(BODY[:-1])
    assert not download.verify(path, BODY_MD5)
    assert not download.verify(tmp_path / "missing.onnx", BODY_MD5)


def tiny_files(*bodies: bytes) -> list:
    names = ("tiny.onnx", "tiny.pth")
    formats = ("onnx", "pytorch")
    return [(RESNET50, OfficialFile(fmt, "fp32", name, (), md5(body)))
            for fmt, name, body in zip(formats, names, bodies, strict=False)]


def test_import_copies_a_matching_file_into_the_cache(home, tmp_path):
    src = tmp_path / "downloads" / "tiny.onnx"
    src.parent.mkdir()
    src.write_bytes(BODY)
    (_, file), = tiny_files(BODY)
    path = download.import_file(src, file)
    assert path == home / "cache" / "models" / "official" / "tiny.onnx"
    assert path.read_bytes() == BODY and download.verify(path, BODY_MD5)
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.onnx", "tiny.onnx.md5.json"]
    assert sorted(p.name for p in src.parent.iterdir()) == ["tiny.onnx"]  # the user's folder untouched


def test_import_refuses_a_wrong_file_and_keeps_nothing(home, tmp_path):
    src = tmp_path / "tiny.onnx"
    src.write_bytes(b"not the model")
    (_, file), = tiny_files(BODY)
    with pytest.raises(ModelError) as err:
        download.import_file(src, file)
    assert f"its md5 is {md5(b'not the model')}, expected {BODY_MD5}" in str(err.value)
    assert "not imported" in str(err.value)
    folder = home / "cache" / "models" / "official"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_import_identifies_the_file_by_its_md5(home, tmp_path):
    other = b"the pytorch weights"
    known = tiny_files(BODY, other)
    src = tmp_path / "whatever-name.bin"
    src.write_bytes(other)
    spec, file, path = download.import_model_file(src, known=known)
    assert (spec.name, file.filename, path.name) == ("resnet50", "tiny.pth", "tiny.pth")
    # Asked for the ONNX file, given the PyTorch one: it says what the file is instead.
    with pytest.raises(ModelError) as err:
        download.import_model_file(src, backend="onnxruntime", known=known)
    assert "is tiny.pth (ResNet50 v1.5, pytorch fp32), not tiny.onnx" in str(err.value)
    src.write_bytes(b"something else")
    with pytest.raises(ModelError, match="none of the official model files"):
        download.import_model_file(src, known=known)


def test_identify_knows_the_registry_checksums():
    spec, file = download.identify("F6A4DA60CD5F084D97EFC2C1DDB10BEB")
    assert (spec.name, file.filename) == ("resnet50", "resnet50_v1.onnx")
    assert download.identify("0" * 32) is None


def test_official_status_and_mirror_sources(home, monkeypatch):
    status = download.official_status("resnet50", "onnxruntime", "fp32")
    assert (status.state, status.path) == ("missing", home / "cache" / "models" / "official" / "resnet50_v1.onnx")
    status.path.parent.mkdir(parents=True)
    part_of(status.path).write_bytes(b"12345")
    assert download.official_status("resnet50", "onnxruntime", "fp32").state == "partial"
    status.path.write_bytes(b"not resnet")
    after = download.official_status("resnet50", "onnxruntime", "fp32")
    assert (after.present, after.verified, after.state) == (True, False, "wrong checksum")
    with pytest.raises(ModelError, match="publishes no int8"):
        download.official_status("resnet50", "onnxruntime", "int8")

    monkeypatch.setenv(download.MIRROR_ENV, "http://mirror.local/models/ http://backup.local")
    _, file = download.find_official("bert", "onnxruntime", "int8")
    assert download.sources(file) == ["http://mirror.local/models/bert_large_v1_1_fake_quant.onnx",
                                      "http://backup.local/bert_large_v1_1_fake_quant.onnx", *file.urls]


# ------------------------------------------------------------------------------------ the CLI command


def models_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wizard.cli", "models", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def test_cli_list_verify_and_import(home, tmp_path):
    cache = home / "cache" / "models" / "official"
    listed = models_cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    files = json.loads(listed.stdout)["files"]
    assert len(files) == 9 and {f["state"] for f in files} == {"missing"}
    assert {"model": "resnet50", "filename": "resnet50_v1.onnx", "expected_md5": "f6a4da60cd5f084d97efc2c1ddb10beb",
            "cached": False, "verified": False}.items() <= files[0].items()

    cache.mkdir(parents=True)
    (cache / "resnet50_v1.onnx").write_bytes(b"corrupt")
    (cache / "model.onnx.part").write_bytes(b"x" * 2000)
    table = models_cli("list")
    assert table.returncode == 0 and "wrong md5" in table.stdout and "2.0 kB partial" in table.stdout
    assert "f6a4da60cd5f084d97efc2c1ddb10beb" in table.stdout and "models import PATH" in table.stdout

    checked = models_cli("verify", "resnet50")
    assert checked.returncode == 1
    assert f"WRONG CHECKSUM (md5 {md5(b'corrupt')}, expected f6a4da60cd5f084d97efc2c1ddb10beb)" in checked.stdout
    assert "resnet50_v1.pb: missing" in checked.stdout and "models fetch" in checked.stderr
    assert models_cli("verify", "bert").returncode == 0

    src = tmp_path / "resnet50_v1.onnx"
    src.write_bytes(b"a file that is no model")
    unknown = models_cli("import", str(src))
    assert unknown.returncode == 2 and "none of the official model files" in unknown.stderr
    asked = models_cli("import", str(src), "--model", "resnet50", "--backend", "onnxruntime")
    assert asked.returncode == 2
    assert "expected f6a4da60cd5f084d97efc2c1ddb10beb" in asked.stderr and "not imported" in asked.stderr
    assert (cache / "resnet50_v1.onnx").read_bytes() == b"corrupt"  # a refused import changes nothing


SLOW_BODY = 4_000_000
"""A trickled download of this size lasts at least 10 s (20 kB every 50 ms): long enough to interrupt."""


def sigint_as_in_a_terminal() -> None:
    """Popen's preexec_fn for a child that gets Ctrl-C: Python keeps SIGINT ignored when it starts that way
    (pytest run as a background job, as `cmd &` does), and the child would then never see the interrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when_part_grows(proc: subprocess.Popen, part: Path, size: int = 40_000, wait_s: float = 120) -> None:
    """Send Ctrl-C to ``proc`` once ``part`` holds ``size`` bytes. The wait allows for a slow start (the
    CLI's imports on a loaded 2-core machine); the test fails, saying so, if the download never got there."""
    deadline = time.monotonic() + wait_s
    while not (part.is_file() and part.stat().st_size >= size):
        if proc.poll() is not None:
            pytest.fail(f"the command ended (exit {proc.returncode}) before {part} held {size} bytes: "
                        f"{proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{part} did not reach {size} bytes within {wait_s:.0f} s")
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)


def test_cli_fetch_uses_the_mirror_and_ctrl_c_keeps_the_part(home, server):
    server.routes["/mirror/resnet50_v1.onnx"] = Route(body=os.urandom(SLOW_BODY), piece=20_000, piece_delay_s=0.05)
    part = home / "cache" / "models" / "official" / "resnet50_v1.onnx.part"
    env = {download.MIRROR_ENV: server.url("/mirror/")}
    proc = subprocess.Popen([sys.executable, "-m", "wizard.cli", "models", "fetch", "resnet50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, **env}, preexec_fn=sigint_as_in_a_terminal)
    try:
        interrupt_when_part_grows(proc, part)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert f"source: {server.url('/mirror/resnet50_v1.onnx')}" in out.splitlines()[1]  # the mirror comes first
    assert f"kept in {part}" in err and "again to resume" in err
    assert part.stat().st_size >= 40_000
    assert not part.with_name("resnet50_v1.onnx").exists()
    assert [p for p, _ in server.requests] == ["/mirror/resnet50_v1.onnx"]
