"""Which site's patient a URL names: a patient id is unique within its site, not the trial.

Two sites may both call a patient "P0001"; every read is keyed by (trial, site, patient).
`/patients/{patient}` names the site with `?site=`: a site's token always means its own site
(and never learns whether another site has the id); a cross-site role may leave it out while
the id is unambiguous, and is asked to choose (409, with the sites) when it is not.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.auth import Principal
from services.db.tables import patient_state

NOT_FOUND = "no such patient"


class AmbiguousPatient(LookupError):
    """The patient id exists at several sites the caller may read (HTTP 409)."""

    def __init__(self, trial: str, patient: str, sites: list[str]) -> None:
        super().__init__(
            f"patient {patient!r} of trial {trial!r} exists at {len(sites)} sites; "
            "name one with ?site="
        )
        self.sites = sites


async def patient_site(
    conn: AsyncConnection, principal: Principal, trial: str, patient: str, site: str | None
) -> str:
    """The site whose patient `patient` the caller means; 404 when the caller may read no
    such patient, `AmbiguousPatient` when it may read several."""
    query = select(patient_state.c.site_id).where(
        patient_state.c.trial_id == trial, patient_state.c.patient_id == patient
    )
    if not principal.reads_all_sites:
        query = query.where(patient_state.c.site_id == (principal.site_id or ""))
    if site is not None:
        query = query.where(patient_state.c.site_id == site)
    sites: list[str] = sorted((await conn.execute(query)).scalars())
    if not sites:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    if len(sites) > 1:
        raise AmbiguousPatient(trial, patient, sites)
    return sites[0]


def patient_key(table: Table, trial: str, site: str, patient: str) -> list[Any]:
    """The row filter of one patient: trial, site and patient id together."""
    return [table.c.trial_id == trial, table.c.site_id == site, table.c.patient_id == patient]


async def ambiguous_patient(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AmbiguousPatient)
    return JSONResponse(
        {"detail": str(exc), "sites": exc.sites}, status_code=status.HTTP_409_CONFLICT
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(AmbiguousPatient, ambiguous_patient)
