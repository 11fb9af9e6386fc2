"""CPU time by process over a span of bench work.

A rate on its own cannot say whether a goal is within reach: the rebuild shares two cores
with PostgreSQL and nats-server. The CPU each process spends per event, measured over the same
span, can: at a target rate, every event has `cores / rate` seconds of CPU in all, however the
work is spread across processes.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psutil


@dataclass(frozen=True)
class Reading:
    """A process's CPU seconds at one moment: its own with its reaped children's (the kernel
    adds a child's whole lifetime to the parent when it is reaped), and each live child's."""

    own_and_reaped: float
    children: dict[int, float]


def _read(process: psutil.Process, attempts: int = 20) -> Reading:
    """One consistent reading. A child reaped while its siblings are being read would be
    counted twice or not at all (in the parent's total and in the list, or in neither), so
    the parent is read before and after the children, until nothing was reaped in between."""
    for _ in range(attempts):
        first = process.cpu_times()
        children: dict[int, float] = {}
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child_times = child.cpu_times()
                children[child.pid] = child_times.user + child_times.system
        second = process.cpu_times()
        reaped = second.children_user + second.children_system
        if reaped == first.children_user + first.children_system:
            return Reading(second.user + second.system + reaped, children)
    raise RuntimeError(f"no steady CPU reading of process {process.pid}")


def _spent(before: Reading, after: Reading, *, live_children: bool) -> float:
    """CPU seconds spent between two readings: the process's own, its children's that ended
    in between (less what they had spent before, which their parent only now adds), and with
    `live_children` the running children's too (a server that forks a backend per
    connection, as PostgreSQL does). Without it, running children are someone else's (the
    servers the bench started) and only children that end in the span count (a rebuild's
    helper processes)."""
    ended = [pid for pid in before.children if pid not in after.children]
    spent = after.own_and_reaped - before.own_and_reaped - sum(before.children[p] for p in ended)
    if live_children:
        spent += sum(cpu - before.children.get(pid, 0.0) for pid, cpu in after.children.items())
    return spent


@dataclass
class Span:
    """One measured span: wall seconds, CPU seconds per process, the events it covered."""

    seconds: float = 0.0
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    events: int = 0

    def per_event_us(self) -> dict[str, float]:
        if not self.events:
            return {}
        split = {name: 1e6 * cpu / self.events for name, cpu in self.cpu_seconds.items()}
        split["total"] = sum(split.values())
        return split

    def as_dict(self) -> dict[str, object]:
        return {
            "events": self.events,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "cpu_us_per_event": self.per_event_us(),
            "cores_busy": sum(self.cpu_seconds.values()) / self.seconds if self.seconds else 0.0,
        }


class CpuMeter:
    """CPU of this process (the client, with the helper processes it started and reaped within
    a span) and of named servers (each with all its children) over spans of work."""

    def __init__(self, servers: dict[str, int]) -> None:
        self.processes: dict[str, tuple[psutil.Process, bool]] = {
            "client": (psutil.Process(os.getpid()), False)
        }
        for name, pid in servers.items():
            self.processes[name] = (psutil.Process(pid), True)
        self.recorded: dict[str, Span] = {}

    def _now(self) -> dict[str, Reading]:
        return {name: _read(process) for name, (process, _) in self.processes.items()}

    def recorder(self, label: str) -> Callable[[], contextlib.AbstractContextManager[Span]]:
        """A context-manager factory for code that takes one (a rebuild's `timed`): its span is
        kept in `recorded[label]`."""

        @contextlib.contextmanager
        def record() -> Iterator[Span]:
            with self.span() as span:
                self.recorded[label] = span
                yield span

        return record

    @contextlib.contextmanager
    def span(self) -> Iterator[Span]:
        """`with meter.span() as span: ...; span.events = n`; filled in on leaving."""
        span = Span()
        before = self._now()
        began = time.perf_counter()
        try:
            yield span
        finally:
            span.seconds = time.perf_counter() - began
            after = self._now()
            span.cpu_seconds = {
                name: _spent(before[name], after[name], live_children=live)
                for name, (_, live) in self.processes.items()
            }


def budget_us_per_event(rate_per_s: float, cores: int | None = None) -> float:
    """CPU microseconds each event may use, across all processes, at `rate_per_s` on `cores`."""
    cores = cores or psutil.cpu_count() or 1
    return 1e6 * cores / rate_per_s
