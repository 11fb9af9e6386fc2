"""Starting the system: from a checkout in a deep directory it starts; when it cannot start,
nothing it already started is left running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.cli.errors import START_FAILED
from services.runtime.embedded import PG_HBA
from services.runtime.system import System
from tests.integration.test_cli_fails_fast import ROOT, clean_env, cli

pytestmark = pytest.mark.integration

UNIX_SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the final NUL


def processes_of(data_dir: Path) -> list[str]:
    """Command lines of live processes that name the data dir (nats-server's config,
    PostgreSQL's pgdata)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if str(data_dir) in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline}")
    return found


def wait_until_none_left(data_dir: Path, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_of(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


async def test_the_system_starts_from_a_data_dir_deeper_than_a_unix_socket_path(
    tmp_path: Path,
) -> None:
    deep = tmp_path
    while len(str(deep / "postgres" / "pgdata" / ".s.PGSQL.65535")) <= UNIX_SOCKET_PATH_MAX + 20:
        deep = deep / "a-checkout-in-a-deep-directory"
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LEDGER_")}
    system = System(deep / "data", sites=("site01",))
    try:
        await system.start(with_services=False)
        assert system.postgres is not None and system.postgres.proc is not None
        assert system.postgres.proc.poll() is None
    finally:
        await system.stop()
        os.environ.update(saved)
    assert wait_until_none_left(deep) == []


def test_a_start_that_fails_at_postgresql_leaves_no_server_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pgdata = data_dir / "postgres" / "pgdata"
    pgdata.mkdir(parents=True)
    # A corrupt data directory: PostgreSQL itself is launched and refuses it.
    (pgdata / "PG_VERSION").write_text("not a version\n")
    (pgdata / "pg_hba.conf").write_text(PG_HBA)
    (data_dir / "postgres" / "password").write_text("secret\n")
    code, out, err = cli(["up", "--data-dir", str(data_dir)], clean_env(data_dir))
    assert code == START_FAILED, (code, out[-2000:], err[-2000:])
    said = [line for line in err.splitlines() if line.startswith("trial-ledger:")]
    assert len(said) == 1 and "PostgreSQL" in said[0], err  # beside `up`'s JSON log lines
    assert "Traceback" not in out + err
    assert wait_until_none_left(data_dir) == []


OWNER = """
import sys, time, warnings
from pathlib import Path
from services.runtime.embedded import EmbeddedNats, EmbeddedPostgres
base = Path(sys.argv[1])
nats = EmbeddedNats(base / "nats").start()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    postgres = EmbeddedPostgres(base / "postgres").start()
print(nats.proc.pid, postgres.proc.pid, flush=True)
time.sleep(600)
"""


def test_embedded_servers_die_with_the_process_that_started_them(tmp_path: Path) -> None:
    """An owner killed outright (an interrupted test run, `kill -9` of `up`) runs no cleanup
    of its own: its servers must still not outlive it."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        assert owner.stdout is not None
        started = owner.stdout.readline().split()
        assert len(started) == 2, "the owner did not start its servers"
        assert len(processes_of(tmp_path)) >= 2
    finally:
        owner.kill()
        owner.wait()
    assert wait_until_none_left(tmp_path) == []
