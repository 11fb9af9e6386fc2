"""The published interface documents match the code (regenerate: `python -m services.cli.docs`)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from typing import Any

import pytest

from events import ProtocolParameters, decode
from events.examples import EXAMPLES
from projections.fold.history import Recorded
from services.alerter.decisions import alerts_due
from services.cli.docs import DOCS, SaeAlertMessage, dumps, openapi_document

pytestmark = pytest.mark.unit


def recorded(seq: int, kind: str, **data: Any) -> Recorded:
    raw = copy.deepcopy(EXAMPLES[kind])
    raw.update(event_id=str(uuid.uuid4()), recorded_at="2025-02-21T08:00:00Z")
    raw["data"] = {**raw["data"], **data}
    return Recorded(seq, decode(raw))


def test_the_committed_openapi_document_is_the_one_the_code_generates() -> None:
    committed = (DOCS / "openapi.json").read_text(encoding="utf-8")
    assert committed == dumps(openapi_document()), (
        "docs/openapi.json is stale: run python -m services.cli.docs"
    )


def test_the_openapi_document_lists_every_json_route_and_no_html_page() -> None:
    paths = json.loads((DOCS / "openapi.json").read_text(encoding="utf-8"))["paths"]
    for path in (
        "/api/trials/{trial}/endpoints/{paramcd}",
        "/api/trials/{trial}/patients/{patient}/events",
        "/api/trials/{trial}/position",
    ):
        assert path in paths
    assert not [path for path in paths if not path.startswith("/api/")]


def test_the_documented_alert_message_is_exactly_what_the_alerter_publishes() -> None:
    [alert] = alerts_due(
        [recorded(1, "enrolled"), recorded(2, "ae_reported", expected=False)], ProtocolParameters()
    )
    body = alert.message(dt.datetime(2025, 2, 21, 8, 0, 1, tzinfo=dt.UTC))
    assert set(body) == set(SaeAlertMessage.model_fields)
    assert SaeAlertMessage.model_validate(body).expedited_days == 15
