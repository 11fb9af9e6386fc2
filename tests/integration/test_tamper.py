"""Tampering with a real ledger's files is always caught by `verify` (issue 14, items 15-16).

A real system (`System`: embedded nats-server and PostgreSQL, writer, projector, alerter)
takes a simulated two-site trial with deaths and serious AEs and is stopped cleanly. Each
case tampers with a COPY of that data dir — its JetStream message blocks, with and without
the stream's index (what an unclean stop leaves) — starts nats-server on the copy, and
checks that `verify` fails and names the first bad seq or the missing seq range.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from events.subjects import ALERTS_STREAM, ALERTS_SUBJECTS
from services.cli.demo import simulate_into
from services.config.settings import Settings, read_runtime, write_runtime
from services.ledger.backwards import LedgerWentBackwards
from services.ledger.connection import connect
from services.ledger.io import ensure_streams, read_stream
from services.runtime.embedded import EmbeddedPostgres
from services.runtime.system import System
from services.security.verify import Report, verify_system
from tests.integration import tamper
from tests.integration.tamper import CopiedNats, Record

pytestmark = pytest.mark.integration
SITES = ("site01", "site02")


@dataclass(frozen=True)
class Stored:
    seq: int
    subject: str
    body: dict[str, Any]

    @property
    def patient(self) -> str:
        return ".".join(self.subject.split(".")[1:4])

    @property
    def kind(self) -> str:
        return self.subject.split(".")[-1]


@dataclass(frozen=True)
class Original:
    """The stopped system's data dir and what its ledger held."""

    data_dir: Path
    ledger: list[Stored]
    alerted_seqs: list[int]

    @property
    def head(self) -> int:
        return self.ledger[-1].seq

    def last_death(self) -> Stored:
        """A death that is its patient's last event: removing it leaves every chain intact."""
        for entry in reversed(self.ledger):
            later = [e for e in self.ledger if e.seq > entry.seq and e.patient == entry.patient]
            if entry.kind == "death" and not later:
                return entry
        raise AssertionError("the simulated trial has no death to remove")


@pytest.fixture(scope="module")
async def original(tmp_path_factory: pytest.TempPathFactory) -> Original:
    data_dir = tmp_path_factory.mktemp("tamper") / "original"
    system = await System(data_dir, sites=SITES).start()
    try:
        report = await simulate_into(
            system.settings, sites=2, patients=8, seed=3, console=Console(file=io.StringIO())
        )
        assert report.rejected == 0 and report.accepted > 150
        await system.services["projector"].wait_caught_up(120)
        nc = await connect(system.settings.nats_url or "", system.settings.creds_for("admin"))
        js = nc.jetstream()
        alerted = [
            m.json()["seq"] async for m in read_stream(js, ALERTS_SUBJECTS, stream=ALERTS_STREAM)
        ]
        await nc.close()
    finally:
        await system.stop()  # the writer seals what is unsealed and records its mark
    nc_settings = Settings.from_env(data_dir)
    copy = tamper.copy_data_dir(data_dir, data_dir.parent / "read-back")
    server = CopiedNats(copy, data_dir).start()
    try:
        nc = await connect(server.url, nc_settings.creds_for("auditor"))
        ledger = [Stored(m.seq, m.subject, m.json()) async for m in read_stream(nc.jetstream())]
        await nc.close()
    finally:
        server.stop()
    assert any(e.kind == "death" for e in ledger) and alerted
    return Original(data_dir, ledger, alerted)


@pytest.fixture(scope="module")
def original_postgres(original: Original) -> Iterator[EmbeddedPostgres]:
    """The original's read models (their checkpoints are evidence of how far the ledger went)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = EmbeddedPostgres(original.data_dir / "postgres").start()
    yield server
    server.stop()


@dataclass
class Copy:
    """A copy of the original data dir, and the nats-server started on it."""

    data_dir: Path
    source: Path
    server: CopiedNats | None = None

    def start(self) -> Copy:
        self.server = CopiedNats(self.data_dir, self.source).start()
        runtime = read_runtime(self.data_dir)
        runtime.update(nats_url=self.server.url, database_url=None)
        write_runtime(self.data_dir, runtime)
        return self

    def settings(self, database_url: str | None = None) -> Settings:
        """The copy's own settings: its nats-server, no PostgreSQL unless given."""
        assert self.server is not None
        found = Settings.from_env(self.data_dir)
        return Settings(
            nats_url=self.server.url,
            database_url=database_url,
            data_dir=self.data_dir,
            credentials=found.credentials,
            writer_public_key=found.writer_public_key,
        )


@pytest.fixture
def make_copy(original: Original, tmp_path: Path) -> Iterator[Callable[[str], Copy]]:
    made: list[Copy] = []

    def make(name: str) -> Copy:
        copy = Copy(tamper.copy_data_dir(original.data_dir, tmp_path / name), original.data_dir)
        made.append(copy)
        return copy

    yield make
    for copy in made:
        if copy.server is not None:
            copy.server.stop()


async def verify(copy: Copy) -> Report:
    """As an auditor checks a stopped system: all of it must be sealed (grace 0), so what is
    reported does not depend on how long ago the events were recorded."""
    return await verify_system(copy.settings(), unsealed_grace=0)


def cli_verify(copy: Copy, *args: str) -> tuple[int, dict[str, Any]]:
    """The real `trial-ledger verify`, as an auditor runs it against the copy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "verify",
            "--json",
            "--data-dir",
            str(copy.data_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


def record_of(copy: Copy, seq: int) -> Record:
    return tamper.records(copy.data_dir)[seq]


def first_of_kind(original: Original, kind: str) -> Stored:
    return next(e for e in original.ledger if e.kind == kind)


INDEX = pytest.mark.parametrize("index", ["index kept", "index removed"])


def after_tamper(copy: Copy, index: str) -> Copy:
    if index == "index removed":
        tamper.remove_index(copy.data_dir)
    return copy.start()


def assert_missing_from(report: Report, seq: int, head: int) -> None:
    """The ledger lost seq.. : reported from `seq`, as missing, or as truncated with its range."""
    assert not report.ok
    first = report.first
    assert first is not None and first.seq == seq, report.problems
    assert first.kind in ("missing", "truncated"), report.problems
    if first.kind == "truncated":
        assert (seq, head) in [(a, b) for a, b, _ in report.missing], report.missing


async def test_an_untouched_copy_verifies_clean_under_the_auditors_pinned_key(
    original: Original, make_copy: Callable[[str], Copy]
) -> None:
    copy = make_copy("untouched").start()
    pinned = copy.data_dir / "seal-public-key.pem"
    code, report = await asyncio.to_thread(
        cli_verify, copy, "--public-key", str(pinned), "--unsealed-grace", "0"
    )
    assert code == 0, report["problems"]
    assert report["head_seq"] == report["events"] == original.head
    assert report["pinned_key"] and report["seals"] >= 1
    assert len(report["evidence"]) == 2  # the writer's mark and its latest seal


def test_the_tamper_tools_checksum_like_nats_server(original: Original, tmp_path: Path) -> None:
    copy = tamper.copy_data_dir(original.data_dir, tmp_path / "checksums")
    found = tamper.records(copy)
    assert sorted(found) == [e.seq for e in original.ledger]
    for record in found.values():
        headers = record.headers or b""
        assert (
            tamper.checksum(
                record.block, record.seq_and_time, record.subject.encode(), headers, record.body()
            )
            == record.checksum
        )


@INDEX
async def test_a_flipped_bit_in_a_death_is_reported_at_its_seq(
    original: Original, make_copy: Callable[[str], Copy], index: str
) -> None:
    death = first_of_kind(original, "death")
    copy = make_copy("flip")
    tamper.flip_bit(record_of(copy, death.seq), 40)
    report = await verify(after_tamper(copy, index))
    # the server's checksum hides the message, or (without its index) everything after it
    assert_missing_from(report, death.seq, original.head)


@INDEX
async def test_an_edited_ae_grade_with_a_valid_checksum_is_reported_at_its_seq(
    original: Original, make_copy: Callable[[str], Copy], index: str
) -> None:
    ae = next(
        e for e in original.ledger if e.kind == "ae_reported" and e.body["data"]["grade"] in (3, 4)
    )
    grade = ae.body["data"]["grade"]
    copy = make_copy("edit")
    tamper.edit_body(
        record_of(copy, ae.seq), f'"grade":{grade}'.encode(), f'"grade":{grade - 1}'.encode()
    )
    report = await verify(after_tamper(copy, index))
    assert report.first is not None, "an edited grade verified clean"
    assert (report.first.seq, report.first.kind) == (ae.seq, "bad_hash")
    assert report.first.patient == ae.patient


@INDEX
async def test_two_patients_events_swapped_are_reported_at_the_seal_naming_their_range(
    original: Original, make_copy: Callable[[str], Copy], index: str
) -> None:
    # neighbours of different patients: every chain still links, only the order changed
    first, second = next(
        (a, b)
        for a, b in zip(original.ledger, original.ledger[1:], strict=False)
        if a.patient != b.patient and a.kind != "ledger_sealed" and b.kind != "ledger_sealed"
    )
    copy = make_copy("swap")
    tamper.swap_messages(record_of(copy, first.seq), record_of(copy, second.seq))
    report = await verify(after_tamper(copy, index))
    assert report.first is not None, "a swap verified clean"
    assert report.first.kind == "seal_order_mismatch"
    low, high = (int(n) for n in report.first.detail.split("seqs ")[1].split(" ")[0].split(".."))
    assert low <= first.seq < second.seq <= high < report.first.seq


@INDEX
async def test_a_cut_tail_is_reported_with_the_missing_seq_range(
    original: Original, make_copy: Callable[[str], Copy], index: str
) -> None:
    keep = original.ledger[len(original.ledger) * 2 // 3].seq
    copy = make_copy("cut")
    tamper.cut_after(record_of(copy, keep))
    report = await verify(after_tamper(copy, index))
    assert_missing_from(report, keep + 1, original.head)
    assert f"seqs {keep + 1}..{original.head}" in report.problems[0].detail


async def test_a_deleted_stream_is_reported_as_every_seq_missing_by_mark_and_checkpoints(
    original: Original, make_copy: Callable[[str], Copy], original_postgres: EmbeddedPostgres
) -> None:
    copy = make_copy("deleted")
    shutil.rmtree(tamper.ledger_store(copy.data_dir))
    copy.start()
    report = await verify_system(copy.settings(original_postgres.url))
    assert report.head_seq == 0 and report.first is not None and report.first.seq == 1
    sources = {source for first, _, source in report.missing if first == 1}
    assert any("high-water" in source for source in sources), report.missing
    assert any("checkpoint" in source for source in sources), report.missing  # read models
    assert max(last for _, last, _ in report.missing) == original.head


async def _rewrite_without(copy: Copy, removed: Stored) -> int:
    """An admin deletes the stream and republishes every event but `removed` and the seals,
    with their original headers (event ids, the writer's signatures)."""
    settings = copy.settings()
    nc = await connect(settings.nats_url or "", settings.creds_for("admin"))
    js = nc.jetstream()
    kept = [m async for m in read_stream(js)]
    await js.delete_stream("LEDGER")
    await ensure_streams(js)
    republished = 0
    for msg in kept:
        if msg.seq == removed.seq or msg.subject.endswith(".ledger_sealed"):
            continue
        headers = {
            k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-Expected")
        }
        await js.publish(msg.subject, msg.body, headers=headers)
        republished += 1
    await nc.close()
    return republished


async def test_an_admin_rewrite_without_a_death_fails_against_the_writers_mark(
    original: Original, make_copy: Callable[[str], Copy]
) -> None:
    copy = make_copy("rewrite").start()
    republished = await _rewrite_without(copy, original.last_death())
    report = await verify(copy)
    assert report.head_seq == republished < original.head
    assert (republished + 1, original.head) in [(a, b) for a, b, _ in report.missing]


async def test_an_admin_rewrite_without_a_death_fails_for_an_auditor_who_pinned_the_key(
    original: Original, make_copy: Callable[[str], Copy], tmp_path: Path
) -> None:
    copy = make_copy("rewrite-pinned").start()
    republished = await _rewrite_without(copy, original.last_death())
    # the auditor has nothing of the data dir but the public key pinned at the start
    auditor = Copy(tmp_path / "auditor", original.data_dir, copy.server)
    auditor.data_dir.mkdir()
    runtime = read_runtime(copy.data_dir)
    write_runtime(
        auditor.data_dir,
        {
            "nats_url": runtime["nats_url"],
            "credentials": {"auditor": runtime["credentials"]["auditor"]},
        },
    )
    pinned = shutil.copy(original.data_dir / "seal-public-key.pem", tmp_path / "pinned.pem")
    code, report = await asyncio.to_thread(
        cli_verify, auditor, "--public-key", str(pinned), "--unsealed-grace", "0"
    )
    assert code == 1
    assert report["evidence"] == []  # only the key: no mark, no checkpoint
    kinds = {p["kind"] for p in report["problems"]}
    assert kinds == {"unsealed"}, report["problems"]
    assert report["first_bad_seq"] == republished + 1  # the seal after them is missing
    assert f"seqs 1..{republished}" in report["problems"][0]["detail"]


async def test_services_refuse_to_run_on_a_ledger_that_went_backwards(
    original: Original, make_copy: Callable[[str], Copy], original_postgres: EmbeddedPostgres
) -> None:
    from services.alerter.app import create_app as create_alerter
    from services.projector.app import create_app as create_projector
    from services.writer.app import create_app as create_writer

    keep = max(original.alerted_seqs) - 1  # the alerter already alerted on a later AE
    copy = make_copy("backwards")
    tamper.cut_after(record_of(copy, keep))
    tamper.remove_index(copy.data_dir)
    copy.start()
    settings = copy.settings(original_postgres.url)
    missing = f"seqs {keep + 1}..{original.head} are missing"
    writer = await create_writer(settings)
    with pytest.raises(LedgerWentBackwards, match=missing):
        await writer.start()
    projector = await create_projector(settings)
    try:
        with pytest.raises(LedgerWentBackwards) as refused:
            await projector.start()
    finally:
        await projector.stop()
    # the projector stops before the writer's last seal: its checkpoints may end just below it
    assert any(
        f"seqs {keep + 1}..{seq} are missing" in str(refused.value)
        for seq in (original.head - 1, original.head)
    ), refused.value
    alerter = await create_alerter(settings)
    try:
        with pytest.raises(
            LedgerWentBackwards, match=f"seqs {keep + 1}\\.\\.{max(original.alerted_seqs)}"
        ):
            await alerter.start()
    finally:
        await alerter.stop()


def test_serve_writer_on_a_ledger_that_went_backwards_exits_with_a_clear_error(
    original: Original, make_copy: Callable[[str], Copy]
) -> None:
    keep = original.ledger[len(original.ledger) // 2].seq
    copy = make_copy("serve-writer")
    tamper.cut_after(record_of(copy, keep))
    tamper.remove_index(copy.data_dir)
    copy.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "serve",
            "writer",
            "--data-dir",
            str(copy.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    said = " ".join((done.stdout + done.stderr).split())
    assert "the writer refuses to run: the ledger went backwards" in said
    assert f"seqs {keep + 1}..{original.head} are missing" in said
    assert "Traceback" not in said
