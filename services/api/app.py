"""Composition root of the HTTP API: `create_app(settings)`; routes decode, query, encode."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select, true

from services.api import clinical_routes, pages, safety_routes
from services.api.asof import AsOfBuilds, AsOfPending
from services.api.auth import CurrentPrincipal
from services.api.errors import checked_parameters, error_page, is_page
from services.api.errors import install as install_errors
from services.api.patient_site import NOT_FOUND, patient_key, patient_site
from services.api.patient_site import install as install_patient_site
from services.api.reading import Builds, jsonable, reading
from services.config.settings import Settings
from services.db.migrate import make_engine
from services.db.projection_health import parked_events, projection_status
from services.db.read_models import check_read_models
from services.db.tables import audit_trail, event_index, patient_state
from services.ledger.connection import connect
from services.ledger.io import ledger_head

# Modules that add their routes (and patient-page extras) with `install(app)`, in this order.
# Imported by name: a route module that fails to import stops the start.
ROUTE_MODULES = (clinical_routes, safety_routes, pages)


def create_app(settings: Settings, *, tokens: dict[str, str] | None = None) -> FastAPI:
    """The API reading `settings.database_url`, callers checked against `tokens` (else the
    settings' api_tokens). Fail closed: with no tokens there is no one to check callers
    against, so it refuses to start (SettingsError) rather than let everyone in."""
    if tokens is not None:
        settings = settings.model_copy(update={"api_tokens": tokens})
    settings.require("api", "api_tokens")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.require("api")
        assert settings.database_url  # for the type checker: require() checked it
        engine = make_engine(settings.database_url)
        try:
            # the API only reads: tables are made by `python -m services.db.migrate` beforehand
            await check_read_models(engine)
        except BaseException:
            await engine.dispose()
            raise
        app.state.engine = engine
        app.state.builds = Builds(engine)
        app.state.nc = (
            await connect(settings.nats_url, settings.creds_for("api"), name="api")
            if settings.nats_url
            else None
        )
        # as-of views are built by processes of their own, with the API's ledger identity
        app.state.asof = AsOfBuilds(
            {
                "LEDGER_NATS_URL": settings.nats_url,
                "LEDGER_DATABASE_URL": settings.database_url,
                "LEDGER_REBUILD_CREDS": settings.creds_for("api") or "",
            }
            if settings.nats_url
            else None
        )
        yield
        await app.state.asof.close()
        if app.state.nc is not None:
            await app.state.nc.close()
        await engine.dispose()

    app = FastAPI(
        title="trial-ledger",
        version="0.1.0",
        lifespan=lifespan,
        description="Read models of the trial ledger: patients, audit trail, endpoints, safety.",
        dependencies=[Depends(checked_parameters)],
    )
    app.state.tokens = dict(settings.api_tokens)  # never empty, checked above

    @app.get("/api/trials")
    async def trials(request: Request, principal: CurrentPrincipal) -> list[dict[str, Any]]:
        """Every trial with protocol parameters in the ledger, with its patient counts."""
        async with reading(request) as conn:
            params = (
                await conn.execute(
                    select(
                        event_index.c.trial_id, func.max(event_index.c.seq).label("parameters_seq")
                    )
                    .where(event_index.c.type == "protocol_parameters_set")
                    .group_by(event_index.c.trial_id)
                )
            ).all()
            counts: dict[str, int] = dict(
                (
                    await conn.execute(
                        select(patient_state.c.trial_id, func.count())
                        .where(_visible(principal))
                        .group_by(patient_state.c.trial_id)
                    )
                ).all()
            )
        return [
            {"trial_id": t, "parameters_seq": s, "patients": counts.get(t, 0)} for t, s in params
        ]

    @app.get("/api/trials/{trial}/patients")
    async def patients(
        trial: str,
        request: Request,
        principal: CurrentPrincipal,
        site: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        """Current state of every patient the caller may see."""
        query = select(patient_state).where(patient_state.c.trial_id == trial, _visible(principal))
        if site:
            query = query.where(patient_state.c.site_id == site)
        if status:
            query = query.where(patient_state.c.status == status)
        async with reading(request) as conn:
            rows = (
                await conn.execute(
                    query.order_by(patient_state.c.site_id, patient_state.c.patient_id)
                )
            ).all()
        return [jsonable(r) for r in rows]

    @app.get("/api/trials/{trial}/patients/{patient}")
    async def patient(
        trial: str,
        patient: str,
        request: Request,
        principal: CurrentPrincipal,
        site: str | None = None,
    ) -> dict[str, Any]:
        """One patient's state (responses and endpoints are added by their projections).
        `site` names the patient's site when several sites use the same patient id."""
        async with reading(request) as conn:
            site_id = await patient_site(conn, principal, trial, patient, site)
            row = (
                await conn.execute(
                    select(patient_state).where(
                        *patient_key(patient_state, trial, site_id, patient)
                    )
                )
            ).first()
        if row is None:  # gone between the two reads (a rebuild switched builds)
            raise HTTPException(404, NOT_FOUND)
        body: dict[str, Any] = {"state": jsonable(row)}
        for extra in request.app.state.patient_extras:
            body.update(await extra(request, trial, site_id, patient))
        return body

    @app.get("/api/trials/{trial}/patients/{patient}/events")
    async def patient_events(
        trial: str,
        patient: str,
        request: Request,
        principal: CurrentPrincipal,
        site: str | None = None,
    ) -> list[dict[str, Any]]:
        """The audit trail: every ledger entry of the patient, corrections as old → new.
        `site` names the patient's site when several sites use the same patient id."""
        async with reading(request) as conn:
            site_id = await patient_site(conn, principal, trial, patient, site)
            rows = (
                await conn.execute(
                    select(audit_trail)
                    .where(*patient_key(audit_trail, trial, site_id, patient))
                    .order_by(audit_trail.c.seq)
                )
            ).all()
            bodies = dict(
                (
                    await conn.execute(
                        select(event_index.c.seq, event_index.c.body).where(
                            *patient_key(event_index, trial, site_id, patient)
                        )
                    )
                ).all()
            )
        return [{**jsonable(r), "event": bodies.get(r.seq)} for r in rows]

    @app.get("/api/trials/{trial}/projections")
    async def projections(
        trial: str, request: Request, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        """Each projection's checkpoint seq against the ledger head (lag 0 = caught up)."""
        schema = await request.app.state.builds.current()
        nc = request.app.state.nc
        if nc is None:
            raise HTTPException(503, "no NATS connection configured")
        status = await projection_status(request.app.state.engine, nc.jetstream(), schema)
        return {
            "build": schema,
            "ledger_head": await ledger_head(nc.jetstream()),
            "projections": status,
            # events set aside (issue 14 item 6): a site sees only its own
            "parked_events": await parked_events(
                request.app.state.engine,
                schema,
                trial,
                None if principal.reads_all_sites else principal.site_id or "",
            ),
        }

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> Response:
        if is_page(request):
            return error_page(request, 400, str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(AsOfPending)
    async def as_of_pending(request: Request, exc: AsOfPending) -> Response:
        headers = {"Retry-After": str(exc.retry_after)}
        if is_page(request):
            return pages.preparing_page(request, exc.status_code, exc.body, headers)
        return JSONResponse(exc.body, status_code=exc.status_code, headers=headers)

    install_errors(app)
    install_patient_site(app)
    app.state.patient_extras = []
    for module in ROUTE_MODULES:
        module.install(app)
    return app


def _visible(principal: Any) -> Any:
    """Row filter: every site for cross-site roles, else only the caller's own site."""
    if principal.reads_all_sites:
        return true()
    return patient_state.c.site_id == (principal.site_id or "")
