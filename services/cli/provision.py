"""`python -m services.cli.provision`: create LEDGER and ALERTS on a deployed NATS, then exit.

Run once as admin before the services (compose's `provision` service, the Kubernetes Job):
the services' own identities may only look streams up. One copy per node named in
LEDGER_NATS_URL, up to R3; an existing stream is left as it is.
"""

from __future__ import annotations

import asyncio
import sys

import structlog

from services.config.logs import configure_logging
from services.config.settings import Settings
from services.ledger.connection import connect, server_urls
from services.runtime.cluster import create_streams_when_ready, stream_replicas

log = structlog.get_logger("provision")


async def provision(settings: Settings, *, timeout: float = 120.0) -> int:
    """Exit code 0 once both streams exist with the cluster's replica count."""
    if not settings.nats_url:
        log.error("provision_failed", reason="LEDGER_NATS_URL is not set")
        return 2
    replicas = stream_replicas(len(server_urls(settings.nats_url)))
    nc = await connect(settings.nats_url, settings.creds_for("admin"), name="provision")
    try:
        await create_streams_when_ready(nc.jetstream(), replicas, timeout=timeout)
    finally:
        await nc.close()
    log.info("streams_ready", replicas=replicas)
    return 0


def main() -> None:
    configure_logging()
    sys.exit(asyncio.run(provision(Settings.from_env())))


if __name__ == "__main__":
    main()
