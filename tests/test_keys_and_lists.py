"""Issue 7 item 21: the keys the README names work where it says; falling back to plain prompts says why;
profiles are listed by name in one order everywhere."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from fixed_machine import machine

from harness.paths import locations
from harness.profile import make_profile, save_profile
from wizard.tui.app import WizardApp
from wizard.tui.profiles import list_profiles


def test_f2_f3_and_f1_work_on_every_flow_screen(home) -> None:
    async def scenario():
        app = WizardApp(detection=machine())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)
            for keys, screen in (((), "SystemScreen"), (("enter",), "ChooseScreen"), (("n",), "DetailsScreen"),
                                 (("n",), "ReviewScreen")):
                for key in keys:
                    await pilot.press(key)
                    await pilot.pause(0.15)
                assert type(app.screen).__name__ == screen
                for key, opened in (("f2", "ProfilesScreen"), ("f3", "HistoryScreen"), ("f1", "Message")):
                    await pilot.press(key)
                    await pilot.pause(0.2)
                    assert type(app.screen).__name__ == opened, (screen, key)
                    if key != "f1":
                        await pilot.press(key)  # again: no second copy on top
                        await pilot.pause(0.1)
                        assert type(app.screen).__name__ == opened
                        assert sum(type(s).__name__ == opened for s in app.screen_stack) == 1
                    await pilot.press("escape")
                    await pilot.pause(0.2)
                    assert type(app.screen).__name__ == screen

    asyncio.run(scenario())


def test_falling_back_to_plain_prompts_says_why(home) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 20, 60, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "wizard.cli"], stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "TERM": "xterm"}, close_fds=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while b"Model" not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(master, 4096)
        except OSError:
            break
    os.write(master, b"\x03")
    assert proc.wait(timeout=30) == 130
    os.close(master)
    text = seen.decode(errors="replace")
    assert "Using plain prompts: the terminal is 60x20; the full-screen wizard needs 80x24." in text, text


def test_profiles_are_listed_by_name_everywhere(cli, home: Path) -> None:
    folder = locations().profiles
    for name in ("beta", "Alpha", "gamma"):
        save_profile(make_profile({}), folder / f"{name}.yaml")
    (folder / "delta.yml").write_text((folder / "beta.yaml").read_text())
    done = cli("profiles", "list")
    assert done.returncode == 0, done.stderr
    saved = done.stdout.split("shipped")[0].split()
    assert [w for w in saved if w in ("Alpha", "beta", "delta", "gamma")] == ["Alpha", "beta", "delta", "gamma"]
    assert [e.name for e in list_profiles() if e.where == "saved"] == ["Alpha", "beta", "delta", "gamma"]
    assert cli("run", "delta", "--dry-run").returncode == 0
