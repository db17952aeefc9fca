"""Rich renderings of detection and coverage for the terminal (fit for 80 columns)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

HERE_STYLE = {"works": "green", "verified": "bold green", "untested": "yellow", "broken": "red",
              "unsupported": "dim", "not-installed": "cyan", "no-device": "magenta", "unknown": "dim",
              "not-defined": "dim", "ok": "green"}
"""Colours of coverage verdicts (and guidance's 'ok'/'not-defined'), shared by the CLI and the TUI."""
def human_size(n: int | None) -> str:
    """Bytes in the unit a person reads (``-`` when unknown)."""
    if n is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


SEED_MARK = {"works": "✅", "broken": "❌", "untested": "?", "absent": "–"}


def render_detection(d) -> None:
    console = Console()
    cpu = d.cpu
    console.print(f"[bold]CPU[/]     {escape(cpu.model)} ({cpu.arch}), {cpu.physical_cores} cores / "
                  f"{cpu.logical_cores} threads")
    console.print(f"        ISA: {', '.join(cpu.isa) or 'none detected'}")
    console.print(f"[bold]Memory[/]  {d.memory_total_bytes / 2**30:.1f} GiB "
                  f"({d.memory_available_bytes / 2**30:.1f} GiB available)")
    console.print(f"[bold]Disk[/]    {d.disk_free_bytes / 2**30:.1f} GiB free at {escape(d.disk_path)}")
    if d.gpus:
        for g in d.gpus:
            console.print(f"[bold]GPU {g.index}[/]   {escape(g.name)}, {g.memory_total_mib} MiB, driver {g.driver}")
    else:
        console.print("[bold]GPUs[/]    none (no NVIDIA driver/NVML found)")
    table = Table(title="Backends", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("backend", "version", "devices", "note"):
        table.add_column(col)
    for b in d.backends.values():
        note = b.advice
        table.add_row(b.name, b.version or "-", ", ".join(b.devices) or "-", escape(note))
    console.print(table)
    how = "cached probe" if d.cached else "probed now"
    console.print(f"[dim]backend probe: {d.probe_seconds:.2f} s ({how})[/]")


def render_coverage(verdicts) -> None:
    console = Console()
    table = Table(title="Coverage here (seed: the CM README's table)", box=box.SIMPLE_HEAD, pad_edge=False)
    for col, width in (("model", 9), ("backend", 11), ("device", 6), ("prec", 4), ("here", 13), ("seed", 4)):
        table.add_column(col, no_wrap=True, min_width=width)
    # Long notes are cut at the terminal's width: `coverage --json` and refusals carry them whole.
    table.add_column("note", no_wrap=True, overflow="ellipsis", max_width=max(12, console.width - 69))
    for v in verdicts:
        row = v.row
        style = HERE_STYLE.get(v.here, "")
        if v.here == "not-installed" and v.install_command:
            note = v.install_command
        elif v.here in ("works", "verified", "untested"):
            note = v.reason if v.here == "verified" else row.note
        else:
            note = row.note if v.here in ("unsupported", "broken") else v.reason
        table.add_row(row.model, row.backend, row.device, row.precision, f"[{style}]{v.here}[/]",
                      SEED_MARK.get(row.seed_status, row.seed_status), escape(note or ""))
    console.print(table)
