"""The system is composed by name: every read model, route module, service and demo section is
declared, and one that cannot be imported stops the start instead of silently going missing."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import services
import services.api
import services.projector

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _modules(package: ModuleType) -> list[ModuleType]:
    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    ]


def test_every_projection_class_is_declared() -> None:
    from services.projector.app import PROJECTIONS

    found = {
        obj
        for module in _modules(services.projector)
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if obj.__module__ == module.__name__
        and isinstance(getattr(obj, "name", None), str)
        and inspect.iscoroutinefunction(getattr(obj, "apply", None))
    }
    assert found == set(PROJECTIONS)


def test_every_route_module_is_included_by_name() -> None:
    from services.api.app import ROUTE_MODULES

    # patient_site and errors are installed by the factory itself (behaviour, not routes)
    installers = {
        module
        for module in _modules(services.api)
        if callable(getattr(module, "install", None))
        and module.__name__ not in {"services.api.errors", "services.api.patient_site"}
    }
    assert installers == set(ROUTE_MODULES)


def test_every_demo_section_is_declared() -> None:
    import services.cli
    from services.cli.demo import summary_sections

    sections = {
        m.__name__ for m in _modules(services.cli) if callable(getattr(m, "print_summary", None))
    }
    assert sections == {m.__name__ for m in summary_sections()}


def test_up_starts_every_service() -> None:
    from services.runtime.system import SERVICES, service_factories

    assert set(SERVICES) == {"writer", "projector", "alerter", "api"}
    assert set(service_factories()) | {"api"} == set(SERVICES)


# Each composition step, run in a fresh interpreter where one part of the system is missing.
BROKEN_STARTS = {
    "a read model": (
        "services.projector.safety_view",
        "from services.projector.app import all_projections; all_projections()",
    ),
    "an API route module": (
        "services.api.safety_routes",
        "from services.api.app import create_app; from services.config.settings import Settings;"
        " create_app(Settings(database_url='postgresql+asyncpg://x/y'), tokens={'admin': 't'})",
    ),
    "the alerter": (
        "services.alerter.app",
        # up's start of the services, on a bare System: it must fail on the import, before
        # it needs any server
        "import asyncio; from services.runtime.system import System;"
        " asyncio.run(System._start_services(System.__new__(System), None))",
    ),
    # the demo itself, stopped before it starts any server
    "a demo section": (
        "services.cli.demo_safety",
        "import asyncio; from pathlib import Path; from rich.console import Console;"
        " from services.cli.demo import run_demo; asyncio.run(run_demo(Path('/nonexistent'),"
        " sites=1, patients=1, seed=1, console=Console()))",
    ),
}


@pytest.mark.parametrize("part", sorted(BROKEN_STARTS))
def test_a_part_that_cannot_be_imported_stops_the_start(part: str) -> None:
    missing, start = BROKEN_STARTS[part]
    # sys.modules[name] = None makes every import of that module raise ImportError
    code = f"import sys; sys.modules[{missing!r}] = None\n{start}\nprint('started')"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0, f"started without {missing}: {done.stdout}"
    assert "started" not in done.stdout
    assert "ImportError" in done.stderr or "ModuleNotFoundError" in done.stderr
