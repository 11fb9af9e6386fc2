"""`trial-ledger up --cluster 3`: three routed nats-servers on loopback, R3 streams, auth on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from events.subjects import ALERTS_STREAM, LEDGER_STREAM
from services.client.site import SiteClient
from services.ledger.connection import connect
from services.runtime.cluster import cluster_block, stream_replicas
from tests.integration.helpers import parameters

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_a_single_server_keeps_one_copy_and_a_cluster_three() -> None:
    assert [stream_replicas(n) for n in (1, 2, 3, 5)] == [1, 2, 3, 3]


def test_each_node_routes_to_every_node_of_the_cluster() -> None:
    block = cluster_block("ledger", 7002, [7001, 7002, 7003])
    assert "listen: 127.0.0.1:7002" in block
    assert [line.strip() for line in block.splitlines() if "nats-route" in line] == [
        "nats-route://127.0.0.1:7001",
        "nats-route://127.0.0.1:7002",
        "nats-route://127.0.0.1:7003",
    ]


def up_cluster(data_dir: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "up",
            "--cluster",
            "3",
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def test_up_with_a_three_node_cluster_makes_r3_streams_and_takes_submissions(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "ledger"
    up = up_cluster(data_dir)
    try:
        runtime = data_dir / "runtime.json"
        deadline = time.monotonic() + 90
        while not runtime.exists() and time.monotonic() < deadline:
            assert up.poll() is None, up.stdout.read() if up.stdout else ""
            await asyncio.sleep(0.2)
        info = json.loads(runtime.read_text())
        urls = info["nats_url"].split(",")
        assert len(urls) == 3 and all(url.startswith("nats://127.0.0.1:") for url in urls)
        for number in (1, 2, 3):
            conf = (data_dir / "nats-cluster" / f"nats-{number}" / "nats.conf").read_text()
            assert f"server_name: ledger-nats-{number}" in conf
            assert "sync_interval: always" in conf and "authorization {" in conf
        admin = await connect(info["nats_url"], info["credentials"]["admin"])
        js = admin.jetstream()
        for stream in (LEDGER_STREAM, ALERTS_STREAM):
            state = await js.stream_info(stream)
            assert state.config.num_replicas == 3
            assert state.cluster is not None and len(state.cluster.replicas or []) == 2
        await admin.close()
        sponsor = await connect(info["nats_url"], info["credentials"]["site:_sponsor"])

        trial = "CLUSTER-TRIAL"
        reply = await SiteClient(sponsor, trial, "_sponsor").submit(parameters(trial))
        await sponsor.close()
        assert reply["status"] == "accepted"
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
    assert code == 0
