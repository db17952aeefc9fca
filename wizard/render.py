"""Rich renderings of detection and coverage for the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

HERE_STYLE = {"works": "green", "verified": "bold green", "untested": "yellow", "broken": "red",
              "unsupported": "dim", "not-installed": "cyan", "no-device": "magenta", "unknown": "dim"}


def render_detection(d) -> None:
    console = Console()
    cpu = d.cpu
    console.print(f"[bold]CPU[/]     {cpu.model} ({cpu.arch}), {cpu.physical_cores} cores / "
                  f"{cpu.logical_cores} threads")
    console.print(f"        ISA: {', '.join(cpu.isa) or 'none detected'}")
    console.print(f"[bold]Memory[/]  {d.memory_total_bytes / 2**30:.1f} GiB ({d.memory_available_bytes / 2**30:.1f} "
                  "GiB available)")
    console.print(f"[bold]Disk[/]    {d.disk_free_bytes / 2**30:.1f} GiB free at {d.disk_path}")
    if d.gpus:
        for g in d.gpus:
            console.print(f"[bold]GPU {g.index}[/]   {g.name}, {g.memory_total_mib} MiB, driver {g.driver}")
    else:
        console.print("[bold]GPUs[/]    none (no NVIDIA driver/NVML found)")
    table = Table(title="Backends", show_lines=False)
    for col in ("backend", "installed", "version", "devices", "note"):
        table.add_column(col)
    for b in d.backends.values():
        note = b.error or ("" if b.installed else f"install: {b.install_command}")
        table.add_row(b.name, "yes" if b.installed else "no", b.version or "-", ", ".join(b.devices) or "-", note)
    console.print(table)
    how = "cached probe" if d.cached else "probed now"
    console.print(f"[dim]backend probe: {d.probe_seconds:.2f} s ({how})[/]")


def render_coverage(verdicts) -> None:
    console = Console()
    table = Table(title="Coverage: model x backend x device x precision")
    for col in ("model", "backend", "device", "precision", "here", "why / how", "seed table"):
        table.add_column(col)
    for v in verdicts:
        row = v.row
        style = HERE_STYLE.get(v.here, "")
        why = v.install_command if v.here == "not-installed" and v.install_command else v.reason
        seed = f"{row.seed_status}" + (f": {row.seed_note}" if row.seed_note else "")
        table.add_row(row.model, row.backend, row.device, row.precision, f"[{style}]{v.here}[/]", why or "", seed)
    console.print(table)
