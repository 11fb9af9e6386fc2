"""`python -m services.alerter`: run the alerter against the servers the environment names
(LEDGER_NATS_URL, or the running system's runtime.json), until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from services.alerter.app import create_app
from services.config.logs import configure_logging
from services.config.settings import Settings


async def main() -> None:
    configure_logging()
    alerter = await create_app(Settings.from_env())
    await alerter.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await alerter.stop()


if __name__ == "__main__":
    asyncio.run(main())
