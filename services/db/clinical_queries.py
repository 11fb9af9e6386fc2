"""Queries over the clinical read models, shared by the HTTP API and `trial-ledger export`.

Each function takes a connection already pointed at the active build (schema translate
map) and an optional `site`: a site's caller sees its own patients only, summaries included.
The statistics themselves are pure (`projections.endpoints.summary`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from events import ProtocolParameters
from projections.common.csv_cells import csv_text
from projections.criteria.response import CRITERIA
from projections.endpoints.adam import AdaeRow, AdamRow, AdrsRow, AdslRow, AdtteRow
from projections.endpoints.patient_endpoints import PARAMCDS
from projections.endpoints.summary import (
    RateSummary,
    ResponseOutcome,
    fit,
    response_rates,
    summarize_endpoint,
)
from projections.statistics.km import CONF_TYPES, ConfType
from services.db.clinical_tables import (
    adam_record,
    adtte,
    best_response,
    clinical_trial,
    response_timepoint,
)

DATASETS: dict[str, type[AdamRow]] = {
    "adsl": AdslRow,
    "adtte": AdtteRow,
    "adrs": AdrsRow,
    "adae": AdaeRow,
}


class NotFound(LookupError):
    """The trial, endpoint or dataset asked for does not exist (HTTP 404)."""


@dataclass(frozen=True, slots=True)
class TrialStamp:
    """The ledger position and parameters the trial's clinical read models stand at."""

    trial_id: str
    at_seq: int
    parameters_version: int
    parameters: ProtocolParameters


async def trial_stamp(conn: AsyncConnection, trial: str) -> TrialStamp:
    row = (
        await conn.execute(select(clinical_trial).where(clinical_trial.c.trial_id == trial))
    ).first()
    if row is None:
        raise NotFound(f"no clinical data for trial {trial!r}")
    return TrialStamp(
        trial,
        int(row.last_seq),
        int(row.parameters_version),
        ProtocolParameters.model_validate(row.parameters),
    )


def conf_type_of(value: str | None, stamp: TrialStamp) -> ConfType:
    """The KM transform asked for, else the protocol's `km_conf_type`."""
    if value is None:
        return stamp.parameters.km_conf_type
    if value not in CONF_TYPES:
        raise ValueError(f"conf_type must be one of {', '.join(CONF_TYPES)}")
    return cast(ConfType, value)


def _where(table: Table, trial: str, site: str | None) -> list[Any]:
    clauses = [table.c.trial_id == trial]
    if site is not None:
        clauses.append(table.c.site_id == site)
    return clauses


def plain(mapping: Any) -> dict[str, Any]:
    """A row as JSON-ready values: ISO dates, floats for numerics."""
    value = dict(mapping)
    for key, item in value.items():
        if isinstance(item, dt.date):
            value[key] = item.isoformat()
        elif isinstance(item, Decimal):
            value[key] = float(item)
    return value


async def _tte_rows(
    conn: AsyncConnection, trial: str, site: str | None, paramcd: str | None = None
) -> list[Any]:
    query = select(adtte).where(*_where(adtte, trial, site))
    if paramcd is not None:
        query = query.where(adtte.c.paramcd == paramcd)
    return list(
        (
            await conn.execute(query.order_by(adtte.c.site_id, adtte.c.patient_id, adtte.c.paramcd))
        ).all()
    )


async def endpoint_summaries(
    conn: AsyncConnection,
    trial: str,
    *,
    conf_type: str | None = None,
    site: str | None = None,
) -> dict[str, Any]:
    """One KM summary per PARAMCD and ORR/DCR per criterion (DESIGN.md `/endpoints`)."""
    stamp = await trial_stamp(conn, trial)
    kind = conf_type_of(conf_type, stamp)
    by_paramcd: dict[str, list[Any]] = defaultdict(list)
    for row in await _tte_rows(conn, trial, site):
        by_paramcd[row.paramcd].append(row)
    endpoints = [
        summarize_endpoint(
            paramcd,
            [r.aval for r in by_paramcd[paramcd]],
            [r.cnsr == 0 for r in by_paramcd[paramcd]],
            kind,
            at_seq=stamp.at_seq,
            parameters_version=stamp.parameters_version,
        ).to_dict()
        for paramcd in PARAMCDS
    ]
    best = (
        await conn.execute(select(best_response).where(*_where(best_response, trial, site)))
    ).all()
    rates: list[RateSummary] = []
    for criterion in CRITERIA:
        outcomes = [
            ResponseOutcome(r.treated, r.measurable, r.bor, r.cbor)
            for r in best
            if r.criterion == criterion
        ]
        rates.extend(
            response_rates(
                criterion,
                outcomes,
                at_seq=stamp.at_seq,
                parameters_version=stamp.parameters_version,
            )
        )
    return {
        "trial_id": trial,
        "at_seq": stamp.at_seq,
        "parameters_version": stamp.parameters_version,
        "conf_type": kind,
        "endpoints": endpoints,
        "orr": [rate.to_dict() for rate in rates if rate.measure == "ORR"],
        "dcr": [rate.to_dict() for rate in rates if rate.measure == "DCR"],
    }


async def endpoint_detail(
    conn: AsyncConnection,
    trial: str,
    paramcd: str,
    *,
    conf_type: str | None = None,
    site: str | None = None,
) -> dict[str, Any]:
    """One PARAMCD: its ADTTE rows, the KM step table (the curve) and its summary."""
    if paramcd not in PARAMCDS:
        raise NotFound(f"no endpoint {paramcd!r}; known: {', '.join(PARAMCDS)}")
    stamp = await trial_stamp(conn, trial)
    kind = conf_type_of(conf_type, stamp)
    rows = await _tte_rows(conn, trial, site, paramcd)
    times, events = [r.aval for r in rows], [r.cnsr == 0 for r in rows]
    result = fit(times, events, kind)
    summary = summarize_endpoint(
        paramcd,
        times,
        events,
        kind,
        at_seq=stamp.at_seq,
        parameters_version=stamp.parameters_version,
    )
    return {
        "paramcd": paramcd,
        "at_seq": stamp.at_seq,
        "parameters_version": stamp.parameters_version,
        "conf_type": kind,
        "summary": summary.to_dict(),
        "rows": [plain(r._mapping) for r in rows],
        "curve": [] if result is None else result.to_dict()["rows"],
        "at_risk": summary.to_dict()["at_risk"],
    }


async def responses(
    conn: AsyncConnection,
    trial: str,
    *,
    site: str | None = None,
    patient: str | None = None,
) -> list[dict[str, Any]]:
    """Per patient × criterion: the best responses and every timepoint (with the reader's
    call and the disagreement flag)."""
    best_query = select(best_response).where(*_where(best_response, trial, site))
    tp_query = select(response_timepoint).where(*_where(response_timepoint, trial, site))
    if patient is not None:
        best_query = best_query.where(best_response.c.patient_id == patient)
        tp_query = tp_query.where(response_timepoint.c.patient_id == patient)
    best = (
        await conn.execute(
            best_query.order_by(
                best_response.c.site_id, best_response.c.patient_id, best_response.c.criterion
            )
        )
    ).all()
    timepoints: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in (
        await conn.execute(
            tp_query.order_by(response_timepoint.c.occurred_on, response_timepoint.c.seq)
        )
    ).all():
        item = plain(row._mapping)
        key = (item.pop("site_id"), item.pop("patient_id"), item.pop("criterion"))
        item.pop("trial_id")
        timepoints[key].append(item)
    order = {criterion: index for index, criterion in enumerate(CRITERIA)}
    result = []
    for row in sorted(best, key=lambda r: (r.site_id, r.patient_id, order.get(r.criterion, 9))):
        item = plain(row._mapping)
        item["timepoints"] = timepoints.get((row.site_id, row.patient_id, row.criterion), [])
        result.append(item)
    return result


async def patient_endpoints(
    conn: AsyncConnection, trial: str, site: str, patient: str
) -> list[dict[str, Any]]:
    """One patient's ADTTE records."""
    rows = await conn.execute(
        select(adtte)
        .where(
            adtte.c.trial_id == trial,
            adtte.c.site_id == site,
            adtte.c.patient_id == patient,
        )
        .order_by(adtte.c.paramcd)
    )
    order = {paramcd: index for index, paramcd in enumerate(PARAMCDS)}
    return sorted((plain(r._mapping) for r in rows), key=lambda r: order.get(r["paramcd"], 99))


async def export_csv(
    conn: AsyncConnection, trial: str, dataset: str, *, site: str | None = None
) -> str:
    """An ADaM dataset as CSV (`projections.endpoints.adam` columns and cell rendering; RFC 4180),
    safe to open in a spreadsheet (`projections.common.csv_cells`)."""
    row_type = DATASETS.get(dataset)
    if row_type is None:
        raise NotFound(f"no dataset {dataset!r}; known: {', '.join(DATASETS)}")
    rows = await conn.execute(
        select(adam_record.c.cells)
        .where(*_where(adam_record, trial, site), adam_record.c.dataset == dataset)
        .order_by(adam_record.c.site_id, adam_record.c.patient_id, adam_record.c.line)
    )
    return csv_text(row_type.columns(), (cells for (cells,) in rows))
