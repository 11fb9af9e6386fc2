"""Safety routes: AE incidence, AE episodes, SAE alerts with their status, live alert stream.

The read model holds ledger-derived rows only; an alert's status (open, acknowledged,
overdue) depends on the current time and is computed here, at the instant asked (`at`).
Site roles see their own site's patients only, in every list and every count.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from events import Attribution, ProtocolParameters
from events.envelope import TOKEN_RE
from events.subjects import alerts_wildcard
from projections.safety.clocks import SaeClock
from projections.safety.episodes import missing_assessments
from projections.statistics.incidence import Count, GradeCounts, IncidenceTables, incidence_tables
from services.api.auth import CurrentPrincipal, Principal
from services.api.reading import jsonable, reading
from services.db.safety_tables import (
    ae_episode,
    clock_from_row,
    episode_from_row,
    patient_from_rows,
    sae_clock,
    safety_parameters,
    safety_patient,
)
from services.db.tables import checkpoints

router = APIRouter(prefix="/api/trials/{trial}", tags=["safety"])
HISTORY_FIELDS = (
    "alert_id",
    "kind",
    "follows",
    "reasons",
    "trigger_seq",
    "awareness_at",
    "expedited_days",
    "report_due",
    "status",
    "data_quality",
)
AlertStatus = Literal["open", "acknowledged", "overdue"]


def _sites(table: Any, principal: Principal, site: str | None) -> Any:
    if not principal.reads_all_sites:
        return table.c.site_id == (principal.site_id or "")
    return table.c.site_id == site if site else true()


def count_json(count: Count) -> dict[str, Any]:
    return {
        "patients": count.patients,
        "n": count.n,
        "percent": count.percent,
        "ci": list(count.ci) if count.ci else None,
        "seqs": list(count.seqs),
        "patient_ids": [f"{site}/{patient}" for _, site, patient in count.patient_keys],
    }


def grades_json(counts: GradeCounts) -> dict[str, Any]:
    return {
        "any_grade": count_json(counts.any_grade),
        "by_worst_grade": {str(grade): count_json(counts.grade(grade)) for grade in range(1, 6)},
        "grade_3_or_more": count_json(counts.grade_3_or_more),
    }


def incidence_json(tables: IncidenceTables) -> dict[str, Any]:
    return {
        "n_treated": tables.n_treated,
        "overall": grades_json(tables.overall),
        "by_soc": [
            {
                "soc": row.soc,
                **grades_json(row.counts),
                "terms": [{"term": term.term, **grades_json(term.counts)} for term in row.terms],
            }
            for row in tables.by_soc
        ],
        "serious": count_json(tables.serious),
        "susar": count_json(tables.susar),
        "related": {agent: count_json(count) for agent, count in tables.related.items()},
        "leading_to_dose_modification": count_json(tables.leading_to_dose_modification),
        "leading_to_discontinuation": count_json(tables.leading_to_discontinuation),
        "deaths": count_json(tables.deaths),
    }


def alert_status(clock: SaeClock, at: dt.datetime) -> AlertStatus:
    """Overdue: no acknowledgement by the day after awareness, or a SUSAR's expedited report
    not submitted by its due date (DOMAIN.md); else acknowledged or open."""
    return clock.status(at)


def alert_json(row: Any, at: dt.datetime) -> dict[str, Any]:
    clock = clock_from_row(row)
    return {
        **jsonable(row),
        "status": alert_status(clock, at),
        "acknowledged": clock.acknowledged,
        "acknowledgement_overdue": clock.acknowledgement_overdue(at),
        "report_overdue": clock.report_overdue(at),
        "clock_unknown": clock.clock_unknown,
    }


async def _position(conn: AsyncConnection, trial: str) -> dict[str, Any]:
    at_seq = (
        await conn.execute(
            select(checkpoints.c.last_seq).where(checkpoints.c.projection == "safety")
        )
    ).scalar()
    version = (
        await conn.execute(
            select(func.max(safety_parameters.c.version)).where(
                safety_parameters.c.trial_id == trial
            )
        )
    ).scalar()
    return {"at_seq": at_seq, "parameters_version": version}


@router.get("/safety/incidence")
async def incidence(
    trial: str, request: Request, principal: CurrentPrincipal, site: str | None = None
) -> dict[str, Any]:
    """AE incidence over the treated population (TEAEs; N (%) of patients, worst grade per
    patient, exact 95 % CIs on headline rates), each row with the ledger seqs behind it."""
    async with reading(request) as conn:
        patients = (
            await conn.execute(
                select(safety_patient).where(
                    safety_patient.c.trial_id == trial, _sites(safety_patient, principal, site)
                )
            )
        ).all()
        episodes = (
            await conn.execute(
                select(ae_episode).where(
                    ae_episode.c.trial_id == trial, _sites(ae_episode, principal, site)
                )
            )
        ).all()
        position = await _position(conn, trial)
        parameters = await _parameters_in_force(conn, trial)
    by_patient: dict[tuple[str, str], list[Any]] = {}
    for row in episodes:
        by_patient.setdefault((row.site_id, row.patient_id), []).append(episode_from_row(row))
    safety = [
        patient_from_rows(row, by_patient.get((row.site_id, row.patient_id), []))
        for row in patients
    ]
    scope = site if principal.reads_all_sites else principal.site_id
    return {
        "trial_id": trial,
        "scope": scope or "all sites",
        **position,
        "data_cutoff": parameters.data_cutoff and parameters.data_cutoff.isoformat(),
        **incidence_json(incidence_tables(safety, parameters)),
    }


async def _parameters_in_force(conn: AsyncConnection, trial: str) -> ProtocolParameters:
    # The highest version recorded (DOMAIN.md defaults before any): its data cut-off and
    # TEAE window shape the tables.
    found = (
        await conn.execute(
            select(safety_parameters.c.parameters)
            .where(safety_parameters.c.trial_id == trial)
            .order_by(safety_parameters.c.version.desc(), safety_parameters.c.seq)
            .limit(1)
        )
    ).scalar()
    return ProtocolParameters() if found is None else ProtocolParameters.model_validate(found)


@router.get("/safety/aes")
async def adverse_events(
    trial: str,
    request: Request,
    principal: CurrentPrincipal,
    site: str | None = None,
    patient: str | None = None,
    serious: bool | None = None,
    teae: bool | None = None,
) -> list[dict[str, Any]]:
    """Every AE episode: grade history, seriousness, attribution per agent, SUSAR, TEAE flag,
    outcome, linked dose modifications/discontinuations and the seqs behind it."""
    query = select(ae_episode).where(
        ae_episode.c.trial_id == trial, _sites(ae_episode, principal, site)
    )
    if patient:
        query = query.where(ae_episode.c.patient_id == patient)
    if serious is not None:
        query = query.where(ae_episode.c.serious == serious)
    if teae is not None:
        query = query.where(ae_episode.c.treatment_emergent == teae)
    async with reading(request) as conn:
        rows = (await conn.execute(query.order_by(ae_episode.c.seq))).all()
        history = await _alert_history(conn, trial, [row.ae_event_id for row in rows])
    return [
        {
            **jsonable(row),
            "not_yet_assessed": list(
                missing_assessments(Attribution.model_validate(row.attribution), row.expected)
            ),
            "alert_history": history.get(row.ae_event_id, []),
        }
        for row in rows
    ]


async def _alert_history(
    conn: AsyncConnection, trial: str, ae_event_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Each case's alerts in the order raised: the initial report, then each follow-up."""
    if not ae_event_ids:
        return {}
    rows = await conn.execute(
        select(sae_clock)
        .where(sae_clock.c.trial_id == trial, sae_clock.c.ae_event_id.in_(ae_event_ids))
        .order_by(sae_clock.c.trigger_seq)
    )
    found: dict[str, list[dict[str, Any]]] = {}
    now = dt.datetime.now(dt.UTC)
    for row in rows:
        alert = alert_json(row, now)
        found.setdefault(row.ae_event_id, []).append({key: alert[key] for key in HISTORY_FIELDS})
    return found


def _instant(at: dt.datetime) -> dt.datetime:
    """`at` in UTC (an instant without offset is UTC); 400 when it cannot be one."""
    try:
        return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except OverflowError as exc:  # year 1 or 9999 shifted out of range by its offset
        raise HTTPException(400, "at is not an instant that can be expressed in UTC") from exc


@router.get("/safety/alerts")
async def alerts(
    trial: str,
    request: Request,
    principal: CurrentPrincipal,
    site: str | None = None,
    status: AlertStatus | None = None,
    at: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Every SAE alert with its deadlines, late-entry flag and status at `at` (default now)."""
    moment = _instant(at) if at else dt.datetime.now(dt.UTC)
    async with reading(request) as conn:
        rows = (
            await conn.execute(
                select(sae_clock)
                .where(
                    sae_clock.c.trial_id == trial,
                    _sites(sae_clock, principal, site),
                )
                .order_by(sae_clock.c.trigger_seq)
            )
        ).all()
    found = [alert_json(row, moment) for row in rows]
    return [alert for alert in found if status is None or alert["status"] == status]


@router.get("/safety/alerts/stream")
async def alert_stream(
    trial: str, request: Request, principal: CurrentPrincipal
) -> StreamingResponse:
    """Server-sent events: each new SAE alert of the trial as it is raised (event `sae_alert`)."""
    if not TOKEN_RE.fullmatch(trial):
        raise HTTPException(400, f"not a trial id: {trial!r}")
    nc = request.app.state.nc
    if nc is None:
        raise HTTPException(503, "no NATS connection configured")
    own = principal.site_id if TOKEN_RE.fullmatch(principal.site_id or "") else None
    site = None if principal.reads_all_sites else own or "-"  # "-": no site, no alerts
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)

    async def received(msg: Any) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(msg.data)

    sub = await nc.subscribe(alerts_wildcard(trial, site), cb=received)

    async def events() -> AsyncIterator[str]:
        try:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    data = await asyncio.wait_for(queue.get(), 15)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: sae_alert\ndata: {data.decode()}\n\n"
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


async def patient_safety_extra(
    request: Request, trial: str, site_id: str, patient: str
) -> dict[str, Any]:
    """The patient page's AEs and SAE alerts (access already checked by the caller)."""
    now = dt.datetime.now(dt.UTC)
    async with reading(request) as conn:
        aes = (
            await conn.execute(
                select(ae_episode)
                .where(
                    ae_episode.c.trial_id == trial,
                    ae_episode.c.site_id == site_id,
                    ae_episode.c.patient_id == patient,
                )
                .order_by(ae_episode.c.seq)
            )
        ).all()
        clocks = (
            await conn.execute(
                select(sae_clock)
                .where(
                    sae_clock.c.trial_id == trial,
                    sae_clock.c.site_id == site_id,
                    sae_clock.c.patient_id == patient,
                )
                .order_by(sae_clock.c.trigger_seq)
            )
        ).all()
    return {
        "adverse_events": [jsonable(row) for row in aes],
        "sae_alerts": [alert_json(row, now) for row in clocks],
    }


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.state.patient_extras.append(patient_safety_extra)
