"""structlog, configured once per process: JSON when not on a terminal (STYLE.md rule 9)."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any

import structlog

from events.subjects import parse_ledger_subject

# Longest identifier bound to log lines (a submission's own ids are not yet validated).
MAX_FIELD = 200

_configured = False


def configure_logging(level: str = "INFO") -> None:
    global _configured
    if _configured:
        return
    _configured = True
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def message_context(
    *,
    seq: int | None = None,
    subject: str | None = None,
    event: Any = None,
    trial_id: str | None = None,
    site_id: str | None = None,
) -> contextlib.AbstractContextManager[Any]:
    """Bind the message a handler is working on to every log line it writes (STYLE.md rule 9):
    its `seq`; `trial_id`, `site_id`, `patient_id` as given, else from a ledger `subject`,
    else from the `event` (a JSON object), with its `event_id`. What is absent or not a short
    string is left out: a hostile submission gets no say over the log's fields."""
    found: dict[str, Any] = {}
    if seq is not None:
        found["seq"] = seq
    if trial_id is not None:
        found["trial_id"] = trial_id
    if site_id is not None:
        found["site_id"] = site_id
    if subject is not None:
        with contextlib.suppress(ValueError):
            parsed = parse_ledger_subject(subject)
            found.setdefault("trial_id", parsed.trial_id)
            found.setdefault("site_id", parsed.site_id)
            found.setdefault("patient_id", parsed.patient_id)
    if isinstance(event, dict):
        for name in ("event_id", "trial_id", "site_id", "patient_id"):
            value = event.get(name)
            if isinstance(value, str) and len(value) <= MAX_FIELD:
                found.setdefault(name, value)
    return structlog.contextvars.bound_contextvars(**found)
