"""System screen: what detection found, shown while the probe runs, refreshable."""

from __future__ import annotations

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, LoadingIndicator, Static

from harness.detect import Detection, install_command


def hardware_text(d: Detection) -> str:
    cpu = d.cpu
    lines = [
        f"[b]CPU[/b]     {escape(cpu.model)} ({cpu.arch}), {cpu.physical_cores} cores / {cpu.logical_cores} threads",
        f"        ISA: {', '.join(cpu.isa) or 'none detected'}",
        f"[b]Memory[/b]  {d.memory_total_bytes / 2**30:.1f} GiB ({d.memory_available_bytes / 2**30:.1f} GiB free)",
        f"[b]Disk[/b]    {d.disk_free_bytes / 2**30:.1f} GiB free for results",
    ]
    if d.gpus:
        lines += [f"[b]GPU {g.index}[/b]   {g.name}, {g.memory_total_mib:,} MiB, driver {g.driver}" for g in d.gpus]
    else:
        lines.append("[b]GPUs[/b]    none found (no NVIDIA driver / NVML)")
    return "\n".join(lines)


def warnings(d: Detection) -> list[str]:
    """What matters for the choices ahead."""
    out = []
    cuda_backends = [b.name for b in d.backends.values() if "cuda" in b.devices]
    if not d.gpus:
        out.append("No NVIDIA GPU here: runs use the CPU.")
    elif not cuda_backends:
        # The backends mlperf-wizard runs on CUDA (coverage table), and how pip makes each usable there.
        commands = [cmd for b in d.backends.values() if "cuda" in b.implemented
                    if (cmd := install_command(b.name, "cuda", b.details.get("distribution")))]
        out.append("No CUDA-capable backend installed: GPU runs need " + " or ".join(f"`{c}`" for c in commands)
                   + "." if commands else "No backend mlperf-wizard runs on CUDA is installed here.")
    for b in d.backends.values():
        if not b.implemented:
            continue  # the coverage table says so; no install advice that would make nothing runnable
        if not b.installed:
            out.append(f"{b.name} is not installed: `{b.install_command}`." if b.install_command
                       else f"{b.name} is not installed.")
        elif b.error:
            out.append(f"{b.name} is installed but does not load: {b.error}")
    return out


class SystemScreen(Screen):
    """First screen: the machine and its backends."""

    HELP = "What mlperf-wizard found on this machine. Enter (or n) goes on to the choices; r probes again."
    BINDINGS = [
        Binding("enter,n", "next", "Next: choose", id="system.next", tooltip="Choose model, backend, scenario"),
        Binding("r", "refresh", "Refresh", id="system.refresh", tooltip="Probe hardware and backends again"),
        Binding("p", "app.profiles", "Profiles", id="system.profiles", tooltip="Saved and shipped profiles"),
        Binding("h", "app.history", "History", id="system.history", tooltip="Past runs"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="system"):
            yield Static("Looking at this machine…", id="hardware")
            yield LoadingIndicator(id="probing")
            table = DataTable(id="backends", cursor_type="row", zebra_stripes=True)
            table.add_columns("backend", "version", "devices", "status")
            yield table
            yield Static("", id="warnings")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#backends").display = False
        if self.app.detection is not None:
            self.show(self.app.detection)
        else:
            self.probe(False)

    @work(thread=True, exclusive=True, group="detect")
    def probe(self, refresh: bool) -> None:
        try:
            detection = self.app.detector(refresh)
        except Exception as exc:  # shown, never a crash
            self.app.call_from_thread(self.app.show_error, exc)
            return
        self.app.call_from_thread(self.show, detection)

    def show(self, d: Detection) -> None:
        self.app.detection = d
        self.query_one("#probing").display = False
        self.query_one("#hardware", Static).update(hardware_text(d))
        table = self.query_one("#backends", DataTable)
        table.clear()
        for b in d.backends.values():
            status = ("not implemented" if not b.implemented else "ok" if b.installed and not b.error
                      else "does not load" if b.installed else "not installed")
            table.add_row(b.name, b.version or "-", ", ".join(b.devices) or "-", status)
        table.display = True
        probe = f"backend probe {d.probe_seconds:.2f} s" + (" (cached)" if d.cached else "")
        lines = [f"[b yellow]![/] {escape(w)}" for w in warnings(d)] + [f"[dim]{probe}. Enter: next.[/]"]
        self.query_one("#warnings", Static).update("\n".join(lines))

    def action_next(self) -> None:
        self.app.goto("choose")

    def action_refresh(self) -> None:
        self.query_one("#probing").display = True
        self.probe(True)

    def palette_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand("Refresh detection", "Probe hardware and backends again", self.action_refresh)
        yield SystemCommand("Choose", "Go on to the benchmark choices", self.action_next)
