"""The bench's CPU meter: CPU by process over a span, and the per-event budget at a rate."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.bench.cpu import CpuMeter, Span, _read, budget_us_per_event

pytestmark = pytest.mark.unit

# A "server" that forks a worker to do its work, as PostgreSQL does a backend per connection.
# The worker burns a fixed amount of CPU when told to (however slow the machine is) and says
# so; the server then kills and reaps it when told to, and says so. The test waits on those
# words, never on the clock, so a machine busy with other work changes nothing.
WORKER = (
    "import sys, time\n"
    "sys.stdin.readline()\n"
    "until = time.process_time() + 0.4\n"
    "while time.process_time() < until: pass\n"
    "print('burnt', flush=True)\n"
    "sys.stdin.readline()\n"
)
SERVER = f"""
import subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", {WORKER!r}], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
print("started", flush=True)
sys.stdin.readline()
worker.stdin.write(b"go\\n"); worker.stdin.flush()
worker.stdout.readline()
print("burnt", flush=True)
sys.stdin.readline()
worker.kill(); worker.wait()
print("reaped", flush=True)
sys.stdin.readline()
"""


def _tell(server: subprocess.Popen[bytes], expect: str | None = None) -> None:
    """Send the server its next line and, if given, wait for the word it answers with."""
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(b"\n")
    server.stdin.flush()
    if expect is not None:
        assert server.stdout.readline().decode().strip() == expect


def _start(script: str, first_word: str) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert server.stdout is not None
    assert server.stdout.readline().decode().strip() == first_word
    return server


HELPER = "import time\nuntil = time.process_time() + 0.4\nwhile time.process_time() < until: pass"


def _burn(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


def test_the_budget_is_the_cores_shared_out_over_the_events_of_a_second() -> None:
    assert budget_us_per_event(40_000, cores=2) == pytest.approx(50.0)
    assert budget_us_per_event(1_000, cores=1) == pytest.approx(1_000.0)


def test_a_span_reports_cpu_per_event_by_process_and_in_total() -> None:
    span = Span(seconds=2.0, cpu_seconds={"client": 1.0, "postgres": 0.5}, events=10_000)
    assert span.per_event_us() == {"client": 100.0, "postgres": 50.0, "total": 150.0}
    assert span.as_dict()["cores_busy"] == pytest.approx(0.75)
    assert Span().per_event_us() == {}


def test_the_meter_counts_the_client_and_a_server_with_its_reaped_worker() -> None:
    server = _start(SERVER, "started")
    try:
        meter = CpuMeter({"server": server.pid})
        with meter.span() as span:
            _burn(0.3)  # the client's own work
            _tell(server, "burnt")  # the worker burns its 0.4 s
            _tell(server, "reaped")  # the worker is killed and reaped
        span.events = 1_000
        assert 0.25 <= span.cpu_seconds["client"] < 0.9
        # the reaped worker's CPU still counts, through its parent's children times
        assert span.cpu_seconds["server"] >= 0.35
        assert span.per_event_us()["total"] == pytest.approx(
            1e6 * (span.cpu_seconds["client"] + span.cpu_seconds["server"]) / 1_000
        )
        with meter.span() as idle:
            time.sleep(0.2)
        assert idle.cpu_seconds["server"] < 0.05
        # a helper the client starts and reaps within the span is the client's work
        with meter.span() as helped:
            subprocess.run([sys.executable, "-c", HELPER], check=True)
        assert helped.cpu_seconds["client"] >= 0.3
        assert helped.cpu_seconds["server"] < 0.05
    finally:
        _tell(server)
        server.wait(10)


# A "server" whose worker has already worked when the span starts and ends inside it: the
# parent gains the worker's whole lifetime on reaping it, and the span must not.
BUSY_BEFORE = f"""
import subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", {WORKER!r}], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
worker.stdin.write(b"go\\n"); worker.stdin.flush()
worker.stdout.readline()
print("burnt", flush=True)
sys.stdin.readline()
worker.stdin.write(b"end\\n"); worker.stdin.flush(); worker.wait()
print("reaped", flush=True)
sys.stdin.readline()
"""


def test_a_child_that_ends_in_the_span_counts_only_what_it_spent_in_it() -> None:
    server = _start(BUSY_BEFORE, "burnt")  # the worker has burnt its 0.4 s and waits
    try:
        meter = CpuMeter({"server": server.pid})
        with meter.span() as span:
            _tell(server, "reaped")  # the worker ends and is reaped
        assert span.cpu_seconds["server"] < 0.2
    finally:
        _tell(server)
        server.wait(10)


class _Times:
    def __init__(self, user: float, children_user: float) -> None:
        self.user, self.system = user, 0.0
        self.children_user, self.children_system = children_user, 0.0


class _ReapsMidReading:
    """A parent that reaps its only child (0.4 s spent) while the first reading lists it."""

    pid = 1

    def __init__(self) -> None:
        self.reads = 0

    def cpu_times(self) -> _Times:
        self.reads += 1
        return _Times(1.0, 0.0 if self.reads == 1 else 0.4)

    def children(self, recursive: bool) -> list[object]:
        if self.reads == 1:
            child = type("Child", (), {"pid": 2, "cpu_times": lambda self: _Times(0.4, 0.0)})
            return [child()]
        return []


def test_a_child_reaped_during_a_reading_is_counted_once() -> None:
    reading = _read(_ReapsMidReading())  # type: ignore[arg-type]
    assert reading.own_and_reaped == pytest.approx(1.4)
    assert reading.children == {}
