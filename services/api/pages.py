"""HTML pages served by the API (server-rendered, no CDN): overview, endpoints, safety, patients.

Each page reads through the JSON API in process (`services.api.page_data`) with the caller's
own token, so a site token sees its own patients on the pages too, and `?as_of=` shows any page
as the ledger stood at that instant. `?token=` once sets the `ledger_token` cookie.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import func, select

from services.api import errors, page_data
from services.api.asof import parse_as_of
from services.api.auth import CurrentPrincipal, principal_for
from services.api.reading import reading
from services.api.render import STATIC, render
from services.db.clinical_tables import clinical_trial
from services.db.tables import checkpoints, event_index

COOKIE = "ledger_token"
api_router = APIRouter(prefix="/api/trials/{trial}", tags=["ledger"])
pages = APIRouter(include_in_schema=False)


@api_router.get("/position")
async def position(trial: str, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """Where the read models stand: the trial's last ledger entry (seq, hash, recorded_at),
    the core projection's checkpoint and the protocol parameter version in force."""
    async with reading(request) as conn:
        last = (
            await conn.execute(
                select(event_index.c.seq, event_index.c.hash, event_index.c.recorded_at)
                .where(event_index.c.trial_id == trial)
                .order_by(event_index.c.seq.desc())
                .limit(1)
            )
        ).first()
        checkpoint = (
            await conn.execute(
                select(checkpoints.c.last_seq).where(checkpoints.c.projection == "core")
            )
        ).scalar()
        version = (
            await conn.execute(
                select(func.max(clinical_trial.c.parameters_version)).where(
                    clinical_trial.c.trial_id == trial
                )
            )
        ).scalar()
    if last is None:
        raise HTTPException(404, f"no ledger entries for trial {trial!r}")
    return {
        "trial_id": trial,
        "ledger_seq": last.seq,
        "ledger_hash": last.hash,
        "recorded_at": last.recorded_at.isoformat(),
        "checkpoint_seq": checkpoint,
        "parameters_version": version,
        "as_of": request.query_params.get("as_of"),
    }


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
    return request.query_params.get("token") or bearer or request.cookies.get(COOKIE)


def _as_of(request: Request) -> str | None:
    raw = request.query_params.get("as_of", "").strip()
    if not raw:
        return None
    return parse_as_of(raw).isoformat().replace("+00:00", "Z")


def _href(request: Request, as_of: str | None) -> Callable[..., str]:
    """Links that keep the as-of instant, so navigating a past view stays in the past."""

    def href(path: str, **params: Any) -> str:
        query = {k: v for k, v in params.items() if v is not None}
        if as_of and "as_of" not in params:
            query["as_of"] = as_of
        return f"{request.scope.get('root_path', '')}{path}" + (
            f"?{urlencode(query)}" if query else ""
        )

    return href


Gather = Callable[[page_data.Api], Awaitable[dict[str, Any]]]


async def _page(
    request: Request, template: str, trial: str | None, gather: Gather, **extra: Any
) -> Response:
    token = _presented(request)
    tokens: dict[str, str] = request.app.state.tokens
    if tokens and principal_for(tokens, token) is None:
        return HTMLResponse(
            render("login.html", reason="a valid token is required", path=request.url.path),
            status_code=401,
        )
    if "token" in request.query_params:
        # keep the token out of the address bar and history: cookie it, then drop it from the URL
        query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
        response: Response = RedirectResponse(
            request.url.path + (f"?{query}" if query else ""), status_code=303
        )
        response.set_cookie(COOKIE, token or "", httponly=True, samesite="strict")
        return response
    try:
        as_of = _as_of(request)
    except HTTPException as exc:
        return error_page(request, trial, None, str(exc.detail), exc.status_code)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://pages", headers=headers, timeout=120
    ) as client:
        api = page_data.Api(client, as_of)
        try:
            stamp = await page_data.stamp(api, trial) if trial else None
            body = await gather(api)
        except page_data.PageNotFound as exc:
            return error_page(request, trial, as_of, str(exc), 404)
        except page_data.SiteNeeded as exc:
            return _choose_site(request, trial, as_of, exc)
        except page_data.Refused as exc:
            return error_page(request, trial, as_of, str(exc), exc.status_code)
        except page_data.Unauthorized as exc:
            return HTMLResponse(
                render("login.html", reason=str(exc), path=request.url.path), status_code=401
            )
    context = {
        "trial": trial,
        "as_of": as_of,
        "stamp": stamp,
        "href": _href(request, as_of),
        "live": as_of is None,
        "report": False,
        "path": request.url.path,
        **extra,
    }
    context.update(body)
    return HTMLResponse(render(template, **context))


def preparing_page(
    request: Request, status_code: int, body: dict[str, Any], headers: dict[str, str]
) -> HTMLResponse:
    """A past view not ready yet: its build's progress, on a page that reloads itself (or,
    when the build failed or too many are under way, why, and when it will try again)."""
    as_of = body.get("as_of")
    progress = body.get("progress") or {}
    return HTMLResponse(
        render(
            "preparing.html",
            status=body.get("status"),
            done=progress.get("done"),
            total=progress.get("total"),
            error=body.get("error") or body.get("detail"),
            refresh=headers.get("Retry-After", "2"),
            as_of=as_of,
            trial=request.path_params.get("trial"),
            href=_href(request, as_of),
            path=request.url.path,
        ),
        status_code=status_code,
        headers=headers,
    )


def error_page(
    request: Request, trial: str | None, as_of: str | None, message: str, status_code: int
) -> HTMLResponse:
    """The pages' answer to a request they cannot serve: a page, never JSON or a traceback."""
    return errors.error_page(
        request, status_code, message, trial=trial, as_of=as_of, href=_href(request, as_of)
    )


def _choose_site(
    request: Request, trial: str | None, as_of: str | None, exc: page_data.SiteNeeded
) -> HTMLResponse:
    """Several sites use this patient id: a link to each site's patient (HTTP 409)."""
    href = _href(request, as_of)
    return HTMLResponse(
        render(
            "choose_site.html",
            message=str(exc),
            links=[(site, href(request.url.path, site=site)) for site in exc.sites],
            trial=trial,
            as_of=as_of,
            href=href,
            path=request.url.path,
        ),
        status_code=409,
    )


@pages.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    """The overview of the trial when the ledger holds one; else the list of trials."""

    async def gather(api: page_data.Api) -> dict[str, Any]:
        trials = await api.get("/api/trials")
        if len(trials) != 1:
            return {"trials": trials, "single": False}
        trial = trials[0]["trial_id"]
        return {
            "trials": trials,
            "single": True,
            "trial": trial,
            "active": "overview",
            "stamp": await page_data.stamp(api, trial),
            **await page_data.overview(api, trial),
        }

    return await _page(request, "trials.html", None, gather)


@pages.get("/trials/{trial}", response_class=HTMLResponse)
async def overview(trial: str, request: Request) -> Response:
    return await _page(
        request,
        "overview.html",
        trial,
        lambda api: page_data.overview(api, trial),
        active="overview",
    )


@pages.get("/trials/{trial}/endpoints", response_class=HTMLResponse)
async def endpoints(trial: str, request: Request) -> Response:
    return await _page(
        request,
        "endpoints.html",
        trial,
        lambda api: page_data.endpoints(api, trial),
        active="endpoints",
    )


@pages.get("/trials/{trial}/safety", response_class=HTMLResponse)
async def safety(trial: str, request: Request) -> Response:
    return await _page(
        request, "safety.html", trial, lambda api: page_data.safety(api, trial), active="safety"
    )


@pages.get("/trials/{trial}/patients", response_class=HTMLResponse)
async def patients(trial: str, request: Request) -> Response:
    return await _page(
        request,
        "patients.html",
        trial,
        lambda api: page_data.patient_list(api, trial),
        active="patients",
    )


@pages.get("/trials/{trial}/patients/{patient}", response_class=HTMLResponse)
async def patient(trial: str, patient: str, request: Request, site: str | None = None) -> Response:
    """One patient; `site` names the patient's site when several sites use the id."""
    return await _page(
        request,
        "patient.html",
        trial,
        lambda api: page_data.patient(api, trial, patient, site),
        active="patients",
        patient_id=patient,
        site_param=site,
    )


def install(app: FastAPI) -> None:
    app.include_router(api_router)
    app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
