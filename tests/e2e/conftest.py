"""End-to-end fixtures: the whole system in process, a simulated trial, headless Chromium.

The system (its uvicorn server, writer, projector) and the browser live in an event loop of
this package's own (`loop_scope="package"`), torn down when the package's tests end: never in
the session loop the unit and integration tests share, where a long-lived server would keep
running beside them.

Chromium is Debian's (`apt-get install chromium`, installed here when missing), driven by
Playwright's Python package through `executable_path` — Playwright never downloads a browser.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from rich.console import Console

from services.config.logs import configure_logging

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TRIAL = "HAIC-PD1-LEN"


def install_chromium() -> str | None:
    """Debian's chromium, installed with apt when missing; the reason it cannot be, else None."""
    if Path(CHROMIUM).exists():
        return None
    if shutil.which("apt-get") is None:
        return "chromium is not installed and apt-get is not available"
    if os.geteuid() != 0:
        return (
            "chromium is not installed and installing it needs root (apt-get install -y chromium)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return (
        None
        if Path(CHROMIUM).exists()
        else "apt-get installed chromium but /usr/bin/chromium is missing"
    )


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def browser() -> AsyncIterator[Any]:
    playwright_api = pytest.importorskip(
        "playwright.async_api",
        reason="the e2e tests need the `playwright` package (pip install -e '.[dev]')",
    )
    problem = install_chromium()
    if problem is not None:
        pytest.skip(f"no headless Chromium for the e2e tests: {problem}")
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """Writer, projector, alerter and API on embedded servers, with a small simulated trial."""
    from services.cli.demo import simulate_into
    from services.runtime.system import System

    configure_logging("WARNING")
    running = await System(tmp_path_factory.mktemp("e2e-system")).start()
    try:
        report = await simulate_into(
            running.settings, sites=3, patients=24, seed=11, console=Console(file=io.StringIO())
        )
        assert report.accepted > 0
        await running.services["projector"].wait_caught_up(120)
        if "alerter" in running.services:
            await running.services["alerter"].wait_caught_up(60)
        yield running
    finally:
        await running.stop()


@pytest.fixture(scope="package")
def admin_token(system: Any) -> str:
    return str(system.runtime["api_tokens"]["admin"])


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def api(system: Any, admin_token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=system.runtime["api_url"],
        timeout=120,
        headers={"Authorization": f"Bearer {admin_token}"},
    ) as client:
        yield client


@dataclass
class Tab:
    """A browser page with every console error and uncaught page error it produced."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def listen(self) -> Tab:
        self.page.on(
            "console",
            lambda message: (
                self.errors.append(f"console: {message.text}") if message.type == "error" else None
            ),
        )
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        return self


@pytest_asyncio.fixture(loop_scope="package")
async def tab(browser: Any, system: Any, admin_token: str) -> AsyncIterator[Tab]:
    """A signed-in page (the token given once as ?token=, then the cookie)."""
    context = await browser.new_context(
        viewport={"width": 1280, "height": 900}, base_url=system.runtime["api_url"]
    )
    opened = Tab(await context.new_page()).listen()
    await opened.page.goto(f"/?token={admin_token}")
    yield opened
    with contextlib.suppress(Exception):
        await context.close()


@pytest.fixture(scope="session")
def trial() -> str:
    return TRIAL
