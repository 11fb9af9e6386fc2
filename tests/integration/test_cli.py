"""The command line as users run it: `up`, `submit`, `replay`, `schema`, stopping on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.helpers import event, parameters

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, data_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def test_up_submit_replay_and_a_clean_stop_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "ledger"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    up = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up", "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        runtime = data_dir / "runtime.json"
        deadline = time.monotonic() + 90
        while not runtime.exists() and time.monotonic() < deadline:
            assert up.poll() is None, up.stdout.read() if up.stdout else ""
            time.sleep(0.2)
        info = json.loads(runtime.read_text())
        assert {"nats_url", "database_url", "api_url", "credentials", "api_tokens"} <= set(info)
        trial = "CLI-TRIAL"
        sponsor = tmp_path / "sponsor.jsonl"
        sponsor.write_text(json.dumps(parameters(trial)) + "\n")
        done = cli(
            "submit", str(sponsor), "--trial", trial, "--site", "_sponsor", data_dir=data_dir
        )
        assert done.returncode == 0, done.stdout + done.stderr
        events = [
            event("enrolled", trial),
            event("infusion_given", trial),
            event("infusion_given", trial, site_id="site02"),
        ]
        site = tmp_path / "site01.jsonl"
        site.write_text("\n".join(json.dumps(e) for e in events) + "\nnot json\n")
        done = cli("submit", str(site), "--trial", trial, "--site", "site01", data_dir=data_dir)
        assert done.returncode == 1  # one event rejected, one line not JSON
        assert "line 1: accepted" in done.stdout and "line 2: accepted" in done.stdout
        assert "line 3: rejected" in done.stdout
        assert "line 4: rejected: not valid JSON" in done.stdout
        assert "4 lines: 2 accepted, 0 duplicate, 2 rejected" in done.stdout
        replayed = cli("replay", "--json", "--compare", data_dir=data_dir)
        report = json.loads(replayed.stdout)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        verified = cli("verify", "--json", data_dir=data_dir)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        ledger = json.loads(verified.stdout)
        # the writer's seals (every 10 s while events arrive) come on top of the 3 events
        assert ledger["events"] - ledger["seals"] == 3
        assert 3 <= report["events"] <= ledger["events"]
        assert report["digests"] == report["live_digests"] or all(
            not rows for rows in report["differences"].values()
        )
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
    assert code == 0


def test_schema_writes_every_type(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "schema",
            "--out",
            str(tmp_path / "schema"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "schema").glob("*.schema.json"))) == 16
