"""Jinja2 rendering shared by the pages and the self-contained report (same templates)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from projections.common.calendar import parse_instant

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def months(value: float | None) -> str:
    """Months with one decimal; None is "not reached" (NE)."""
    return "NE" if value is None else f"{value:.1f}"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def instant(value: str | None) -> str:
    """A recorded instant, readable: `2025-06-01 09:30:00.123 UTC` (ISO input, any offset)."""
    if not value:
        return "–"
    moment = parse_instant(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"


def value_text(value: Any) -> str:
    """An audit-trail value: JSON for structures, plain text otherwise, ∅ for absent."""
    if value is None:
        return "∅"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(months=months, percent=percent, value_text=value_text, instant=instant)
    env.globals["svg"] = Markup  # plots are built by our own code from escaped values
    return env


ENV = _environment()


def render(template: str, **context: Any) -> str:
    return ENV.get_template(template).render(**context)


def inline_css() -> str:
    return (STATIC / "style.css").read_text()
