"""HTTP routes of the clinical endpoints (DESIGN.md "HTTP"): summaries, ADTTE, responses, exports.

Routes decode, call one query of `services.db.clinical_queries`, encode. A site's token sees its
own patients only: rows are filtered by site and summaries computed over them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import Response

from services.api.auth import CurrentPrincipal, Principal
from services.api.reading import reading
from services.db import clinical_queries as queries

router = APIRouter(prefix="/api/trials/{trial}", tags=["clinical"])


def _site(principal: Principal) -> str | None:
    return None if principal.reads_all_sites else (principal.site_id or "")


@router.get("/endpoints")
async def endpoints(
    trial: str, request: Request, principal: CurrentPrincipal, conf_type: str | None = None
) -> dict[str, Any]:
    """One Kaplan–Meier summary per PARAMCD (n, events, median [CI] in days, landmarks, numbers
    at risk) and ORR / DCR per criterion, confirmed and unconfirmed, with exact CIs."""
    async with reading(request) as conn:
        try:
            return await queries.endpoint_summaries(
                conn, trial, conf_type=conf_type, site=_site(principal)
            )
        except queries.NotFound as exc:
            raise HTTPException(404, str(exc)) from exc


@router.get("/endpoints/{paramcd}")
async def endpoint(
    trial: str,
    paramcd: str,
    request: Request,
    principal: CurrentPrincipal,
    conf_type: str | None = None,
) -> dict[str, Any]:
    """One PARAMCD: ADTTE rows, the KM curve's step table and numbers at risk."""
    async with reading(request) as conn:
        try:
            return await queries.endpoint_detail(
                conn, trial, paramcd.upper(), conf_type=conf_type, site=_site(principal)
            )
        except queries.NotFound as exc:
            raise HTTPException(404, str(exc)) from exc


@router.get("/responses")
async def responses(
    trial: str, request: Request, principal: CurrentPrincipal
) -> list[dict[str, Any]]:
    """Per patient × criterion: timepoint responses (computed vs the reader's call) and BOR."""
    async with reading(request) as conn:
        return await queries.responses(conn, trial, site=_site(principal))


@router.get("/export/{dataset}.csv", response_class=Response)
async def export(
    trial: str, dataset: str, request: Request, principal: CurrentPrincipal
) -> Response:
    """ADSL, ADTTE, ADRS or ADAE as CSV (CDISC ADaM variable names)."""
    async with reading(request) as conn:
        try:
            body = await queries.export_csv(conn, trial, dataset.lower(), site=_site(principal))
        except queries.NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
    return Response(
        body,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{trial}_{dataset.lower()}.csv"'},
    )


async def patient_extra(request: Request, trial: str, site_id: str, patient: str) -> dict[str, Any]:
    """The patient view's "responses" and "endpoints" (the caller's site access is checked
    by the patient route before extras are asked for)."""
    async with reading(request) as conn:
        return {
            "responses": await queries.responses(conn, trial, site=site_id, patient=patient),
            "endpoints": await queries.patient_endpoints(conn, trial, site_id, patient),
        }


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.state.patient_extras.append(patient_extra)
