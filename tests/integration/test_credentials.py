"""Credentials as an outsider finds them: runtime.json names standard NATS nkey seed files that
any NATS client can use as they are, the real nats-server refuses a seed it was not given, the
embedded PostgreSQL wants its password, and no secret is readable by others or printed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import nats
import nkeys
import pytest
from nats.errors import Error as NatsError
from nats.errors import NoServersError

from services.runtime.system import System

pytestmark = pytest.mark.integration

SITES = ("site01", "site02")
TRIAL = "CRED-TRIAL"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("creds")


@pytest.fixture(scope="module")
async def system(data_dir: Path) -> AsyncIterator[System]:
    """Embedded servers with auth, as `trial-ledger up` starts them (no services needed)."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LEDGER_")}
    running = await System(data_dir, sites=SITES).start(with_services=False)
    try:
        yield running
    finally:
        await running.stop()
        os.environ.update(saved)


def runtime(data_dir: Path) -> dict[str, Any]:
    value = json.loads((data_dir / "runtime.json").read_text())
    assert isinstance(value, dict)
    return value


async def plain_client(data_dir: Path, role: str) -> nats.NATS:
    """A bare nats-py connection made only from what runtime.json names for `role`."""
    found = runtime(data_dir)
    return await nats.connect(
        found["nats_url"],
        nkeys_seed=found["credentials"][role],
        inbox_prefix=found["inbox_prefixes"][role],
        allow_reconnect=False,
        connect_timeout=3,
    )


async def test_every_roles_credential_is_a_standard_nkey_seed_file(
    system: System, data_dir: Path
) -> None:
    credentials = runtime(data_dir)["credentials"]
    assert set(credentials) >= {"admin", "writer", "auditor", "site:site01"}
    for path in credentials.values():
        seed = Path(path).read_bytes().strip()  # noqa: ASYNC240 - a test reading a small file
        assert seed.startswith(b"SU"), path  # an nkey user seed, as `nats --nkey` reads
        assert nkeys.from_seed(bytearray(seed)).public_key.startswith(b"U")


async def test_a_plain_nats_client_reads_the_ledger_with_the_auditors_seed_file(
    system: System, data_dir: Path
) -> None:
    nc = await plain_client(data_dir, "auditor")
    try:
        info = await nc.jetstream(timeout=5).stream_info("LEDGER")
        assert info.config.name == "LEDGER"
    finally:
        await nc.close()


async def test_a_plain_nats_client_submits_as_a_site_and_is_refused_another_sites_intake(
    system: System, data_dir: Path
) -> None:
    errors: list[str] = []
    refused = asyncio.Event()

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))
        refused.set()

    found = runtime(data_dir)
    nc = await nats.connect(
        found["nats_url"],
        nkeys_seed=found["credentials"]["site:site01"],
        inbox_prefix=found["inbox_prefixes"]["site:site01"],
        allow_reconnect=False,
        error_cb=on_error,
    )
    try:
        # Its own intake is open to it (nobody answers here: no writer runs in this module).
        await nc.publish(f"intake.{TRIAL}.site01", b"{}")
        await nc.flush()
        await nc.publish(f"intake.{TRIAL}.site02", b"{}")
        await nc.flush()
        await asyncio.wait_for(refused.wait(), 5)
        assert errors and all("site02" in e for e in errors), errors
    finally:
        await nc.close()


async def test_the_server_refuses_a_seed_it_was_never_given(
    system: System, data_dir: Path, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger.nk"
    stranger.write_bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))
    with pytest.raises((NoServersError, NatsError)):
        await nats.connect(
            runtime(data_dir)["nats_url"],
            nkeys_seed=str(stranger),
            allow_reconnect=False,
            connect_timeout=3,
            max_reconnect_attempts=0,
        )


async def test_the_server_refuses_a_client_without_credentials(
    system: System, data_dir: Path
) -> None:
    with pytest.raises((NoServersError, NatsError)):
        await nats.connect(
            runtime(data_dir)["nats_url"],
            allow_reconnect=False,
            connect_timeout=3,
            max_reconnect_attempts=0,
        )


async def test_postgresql_refuses_a_connection_without_or_with_a_wrong_password(
    system: System, data_dir: Path
) -> None:
    assert system.postgres is not None
    port = system.postgres.port
    password = system.postgres.password
    assert password and password in runtime(data_dir)["database_url"]
    for attempt in (None, "wrong-" + password):
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(
                host="127.0.0.1", port=port, user="postgres", database="ledger", password=attempt
            )
    # no Unix socket to come in by without a password: the server listens on TCP only
    assert list(system.postgres.pgdata.glob(".s.PGSQL.*")) == []
    conn = await asyncpg.connect(
        host="127.0.0.1", port=port, user="postgres", database="ledger", password=password
    )
    assert await conn.fetchval("SELECT 1") == 1
    await conn.close()
    assert stat.S_IMODE(system.postgres.password_path.stat().st_mode) == 0o600


# -- no secret open to others, none in a log (a full `trial-ledger up`) --------------------------
PRIVATE_DIR_MODES = {0o700, 0o711} if os.geteuid() == 0 else {0o700}


@pytest.fixture(scope="module")
def started_up(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`trial-ledger up` in its own process until it says it is up; then SIGTERM. Yields its
    data dir and everything it printed (stdout, stderr: logs and console)."""
    data_dir = tmp_path_factory.mktemp("up")
    output = data_dir.parent / f"{data_dir.name}.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_SITES"] = ",".join(SITES)
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--data-dir", str(data_dir)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while b"trial-ledger is up" not in output.read_bytes():
                assert proc.poll() is None, output.read_text()
                assert time.monotonic() < deadline, output.read_text()
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return data_dir, output.read_text()


def secrets_of(data_dir: Path) -> dict[str, str]:
    """Every secret value the system keeps, by where it came from."""
    found = runtime(data_dir)
    values = {f"api token {role}": token for role, token in found["api_tokens"].items()}
    for role, path in found["credentials"].items():
        values[f"seed {role}"] = Path(path).read_text().strip()
    values["postgres password"] = (data_dir / "postgres" / "password").read_text().strip()
    key = data_dir / "keys" / "writer_ed25519"
    if key.exists():
        body = [line for line in key.read_text().splitlines() if "-----" not in line]
        values["writer key"] = "".join(body)
    return values


def secret_files(data_dir: Path) -> list[Path]:
    found = runtime(data_dir)
    files = [
        data_dir / "runtime.json",
        data_dir / "api_tokens.json",
        data_dir / "postgres" / "password",
        data_dir / "nats" / "nats.conf",
        *(Path(p) for p in found["credentials"].values()),
    ]
    key = data_dir / "keys" / "writer_ed25519"
    return [*files, key] if key.exists() else files


def test_after_up_every_secret_file_is_0600_in_a_private_directory(
    started_up: tuple[Path, str],
) -> None:
    data_dir, _ = started_up
    for path in secret_files(data_dir):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(path.parent.stat().st_mode) in PRIVATE_DIR_MODES, path.parent


def test_no_token_password_or_seed_appears_in_the_output_or_logs_of_a_full_start(
    started_up: tuple[Path, str],
) -> None:
    data_dir, printed = started_up
    logs = {"up output": printed}
    for log in data_dir.rglob("*.log"):
        logs[str(log)] = log.read_text(errors="replace")
    leaks = [
        (what, where)
        for what, value in secrets_of(data_dir).items()
        for where, text in logs.items()
        if value and value in text
    ]
    assert not leaks
