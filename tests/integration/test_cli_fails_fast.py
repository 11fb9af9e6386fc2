"""Every `trial-ledger` command, run as a user runs it (a subprocess), against a system that is
not running fails fast: within 5 s of the CLI being ready, on one line naming what it tried to
reach and how to start it, with the documented exit code (4). Bad option values give one
line and exit 2; an unknown trial is an error, not an empty file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.cli.errors import REFUSED, UNREACHABLE, USAGE
from services.db.migrate import make_engine, migrate
from services.runtime.embedded import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HARD_BOUND_S = 60.0  # a hanging command fails the test here, never later
PROMISED_S = 5.0


def cli(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[int, str, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=HARD_BOUND_S,
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return {**env, "LEDGER_DATA_DIR": str(data_dir), "COLUMNS": "200", **extra}


@pytest.fixture(scope="module")
def ready_s(tmp_path_factory: pytest.TempPathFactory) -> float:
    """How long the CLI takes to start and print its help on this machine (a loaded machine
    is slow to import): the 5 s promise counts from there."""
    code, out, _, took = cli(["--help"], clean_env(tmp_path_factory.mktemp("help")))
    assert code == 0, out
    return took


@pytest.fixture
def nothing_running(tmp_path: Path) -> dict[str, str]:
    """URLs of a NATS server and a PostgreSQL on loopback ports where nothing listens."""
    closed = free_port()
    return clean_env(
        tmp_path / "data",
        LEDGER_NATS_URL=f"nats://127.0.0.1:{closed}",
        LEDGER_DATABASE_URL=f"postgresql+asyncpg://postgres:secret@127.0.0.1:{closed}/ledger",
    )


COMMANDS = {
    "submit": ["submit", "{events}", "--trial", "T1", "--site", "site01"],
    "simulate": ["simulate", "--patients", "2", "--sites", "1"],
    "replay": ["replay"],
    "export": ["export", "adsl"],
    "verify": ["verify"],
    "report": ["report", "-o", "{tmp}/report.html"],
    "alerts follow": ["alerts", "follow", "--once"],
    "alerts list": ["alerts", "list"],
    "alerts ack": ["alerts", "ack", "sae-1"],
    "serve writer": ["serve", "writer"],
    "serve projector": ["serve", "projector"],
    "serve alerter": ["serve", "alerter"],
    "serve api": ["serve", "api", "--port", "0"],
    "up": ["up"],
    "demo": ["demo", "--patients", "2", "--sites", "1"],
}


def _args(name: str, tmp_path: Path) -> list[str]:
    events = tmp_path / "events.jsonl"
    events.write_text('{"type": "enrolled"}\n')
    return [a.format(events=events, tmp=tmp_path) for a in COMMANDS[name]]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_command_against_a_system_that_is_not_running_fails_fast_on_one_line(
    command: str, nothing_running: dict[str, str], tmp_path: Path, ready_s: float
) -> None:
    code, out, err, took = cli(_args(command, tmp_path), nothing_running)
    assert code == UNREACHABLE, (code, out[-2000:], err[-2000:])
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err[-3000:]
    assert "Traceback" not in out + err
    assert "127.0.0.1:" in lines[0] and "trial-ledger up" in lines[0]
    assert "secret" not in out + err  # a password in a URL is never shown
    assert took <= ready_s + PROMISED_S, f"{command} took {took:.1f}s (CLI ready in {ready_s:.1f}s)"


@pytest.mark.parametrize("command", ["verify", "export", "alerts follow", "simulate", "submit"])
def test_a_command_with_no_system_configured_says_how_to_start_it(
    command: str, tmp_path: Path, ready_s: float
) -> None:
    code, out, err, took = cli(_args(command, tmp_path), clean_env(tmp_path / "empty"))
    assert code == UNREACHABLE, (code, out[-2000:], err[-2000:])
    assert len(err.strip().splitlines()) == 1, err
    assert "no running system found" in err and "trial-ledger up" in err
    assert took <= ready_s + PROMISED_S


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "--workers", "0"],
        ["replay", "--as-of", "last tuesday"],
        ["report", "--as-of", "last tuesday"],
        ["export", "adsl", "--trial"],
        ["up", "--cluster", "0"],
        ["alerts", "ack", "sae-1", "--reported-on", "yesterday"],
        ["submit", "missing.jsonl"],
        ["verify", "--unsealed-grace", "soon"],
        ["no-such-command"],
    ],
    ids=lambda args: " ".join(args),
)
def test_a_bad_option_value_gives_one_line_and_exit_2(
    args: list[str], nothing_running: dict[str, str]
) -> None:
    code, out, err, _ = cli(args, nothing_running)
    assert code == USAGE, (code, out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in out + err and "╭" not in err


def test_exit_codes_are_documented_in_help_and_readme(tmp_path: Path) -> None:
    _, out, _, _ = cli(["--help"], clean_env(tmp_path))
    readme = (ROOT / "README.md").read_text()
    for code in ("0", "1", "2", "3", "4", "5"):
        assert f"{code} " in out.split("Exit codes", 1)[1]
    assert "Exit codes" in readme and "`4`" in readme


async def test_export_of_an_unknown_trial_is_an_error_not_an_empty_file(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    env = clean_env(tmp_path / "data", LEDGER_DATABASE_URL=database_url)
    out_file = tmp_path / "adsl.csv"
    code, out, err, _ = cli(["export", "adsl", "--trial", "NOPE", "-o", str(out_file)], env)
    assert code == REFUSED, (code, out, err)
    assert "NOPE" in out + err
    assert not out_file.exists()
    code, out, err, _ = cli(["export", "adsl", "--trial", "NOPE"], env)
    assert code == REFUSED and out == "", (
        code,
        out,
        err,
    )  # nothing on stdout that looks like a CSV
