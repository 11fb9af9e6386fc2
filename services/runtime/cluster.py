"""A JetStream cluster of embedded nats-servers on loopback (`trial-ledger up --cluster 3`).

Each node is an `EmbeddedNats` with its own store dir, `sync_interval: always` and the same
authorization block; they find each other through explicit routes (deploy/nats/cluster/ is the
same layout for real hosts). The fault tests kill and restart single nodes through it.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

from nats.js import JetStreamContext

from services.config.retry import retried
from services.ledger.io import ensure_streams
from services.runtime.embedded import EmbeddedNats

CLUSTER_NAME = "ledger"
# JetStream keeps at most this many copies of a stream; R3 survives the loss of one node.
MAX_REPLICAS = 3


def stream_replicas(nodes: int) -> int:
    """One copy per node, up to R3: a single server keeps R1."""
    return max(1, min(nodes, MAX_REPLICAS))


def distinct_free_ports(count: int) -> list[int]:
    """`count` different free loopback ports: held open together, so none is handed out twice."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def cluster_block(name: str, route_port: int, route_ports: list[int]) -> str:
    routes = "\n".join(f"    nats-route://127.0.0.1:{port}" for port in route_ports)
    return (
        f"cluster {{\n  name: {name}\n  listen: 127.0.0.1:{route_port}\n"
        f"  routes: [\n{routes}\n  ]\n}}"
    )


@dataclass
class EmbeddedCluster:
    """`size` nats-servers routed to each other; node numbers are 1-based like the deploy files."""

    data_dir: Path
    size: int = 3
    auth_config: str = ""
    name: str = CLUSTER_NAME
    nodes: list[EmbeddedNats] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (services.ledger.connection.connect splits them)."""
        return ",".join(node.url for node in self.nodes)

    @property
    def replicas(self) -> int:
        return stream_replicas(self.size)

    def start(self) -> EmbeddedCluster:
        if not self.nodes:
            ports = distinct_free_ports(2 * self.size)
            route_ports, client_ports = ports[: self.size], ports[self.size :]
            for number, (route_port, client_port) in enumerate(
                zip(route_ports, client_ports, strict=True), 1
            ):
                self.nodes.append(
                    EmbeddedNats(
                        self.data_dir / f"nats-{number}",
                        port=client_port,
                        auth_config=self.auth_config,
                        cluster=cluster_block(self.name, route_port, route_ports),
                        server_name=f"ledger-nats-{number}",
                    )
                )
        for node in self.nodes:
            if node.proc is None or node.proc.poll() is not None:
                node.start()
        return self

    def node(self, number: int) -> EmbeddedNats:
        return self.nodes[number - 1]

    def kill(self, number: int) -> None:
        """SIGKILL one node: no shutdown, no flush beyond what fsync already made durable."""
        self.node(number).stop(signal.SIGKILL)

    def restart(self, number: int) -> None:
        """Start a stopped node again on its old ports and store; it catches up from its peers."""
        self.node(number).start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


async def create_streams_when_ready(
    js: JetStreamContext, replicas: int, timeout: float = 60.0
) -> None:
    """Create LEDGER and ALERTS once JetStream answers.

    A fresh cluster has no meta leader for its first seconds and refuses stream requests
    (timeouts, 503s); a restarting one too. Retry until it answers, at most `timeout` seconds.
    """
    await retried(
        lambda: ensure_streams(js, replicas=replicas),
        within=timeout,
        first_wait=0.5,
        longest_wait=0.5,
    )
