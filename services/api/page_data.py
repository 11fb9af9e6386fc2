"""What each page shows, gathered from the JSON API itself (in process) and shaped for templates.

The pages and the report read through the same routes an API client would, with the same
`?as_of=`, so a number on a page is the number the API serves: a page never recomputes a
statistic. Only presentation happens here (grouping, ordering, the plots' inputs).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, get_args

import httpx

from projections.common.calendar import parse_instant
from projections.criteria.response import CRITERIA, RECIST
from projections.endpoints.patient_endpoints import PARAMCDS
from projections.fold.patient import Status
from services.api.asof import AsOfPending
from services.api.plots import enrollment_svg, km_svg
from services.api.plots_patients import (
    Bar,
    Lane,
    Marker,
    Moment,
    swimmer_svg,
    timeline_svg,
    waterfall_svg,
)

STATUS_ORDER: tuple[str, ...] = get_args(Status)  # the patient-state statuses, in course order
RESPONSE_MARKERS = frozenset({"CR", "PR", "PD"})


class PageNotFound(LookupError):
    """The trial or patient asked for is not in the read models (HTTP 404)."""


class Unauthorized(PermissionError):
    """The API refused the caller's token (HTTP 401)."""


class SiteNeeded(LookupError):
    """The patient id exists at several sites the caller may read (HTTP 409): choose one."""

    def __init__(self, message: str, sites: list[str]) -> None:
        super().__init__(message)
        self.sites = sites


class Refused(ValueError):
    """The API refused the request as asked (another 4xx, e.g. a malformed parameter)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Api:
    """The JSON API seen from inside: every GET carries the caller's token and `as_of`."""

    client: httpx.AsyncClient
    as_of: str | None = None

    async def get(self, path: str, **params: Any) -> Any:
        query = {key: value for key, value in params.items() if value is not None}
        if self.as_of:
            query["as_of"] = self.as_of
        response = await self.client.get(path, params=query)
        if self.as_of and response.status_code in (202, 503) and "status" in response.json():
            # the as-of view is being built (or could not be): the page says so and refreshes
            raise AsOfPending(
                response.status_code,
                response.json(),
                int(response.headers.get("retry-after", "1") or 1),
            )
        if response.status_code == 401:
            raise Unauthorized(response.json().get("detail", "unauthorized"))
        if response.status_code == 404:
            raise PageNotFound(response.json().get("detail", "not found"))
        if response.status_code == 409:
            body = response.json()
            raise SiteNeeded(str(body.get("detail", "")), list(body.get("sites", [])))
        if 400 <= response.status_code < 500:
            raise Refused(response.status_code, str(response.json().get("detail", "refused")))
        response.raise_for_status()
        return response.json()

    async def get_or(self, default: Any, path: str, **params: Any) -> Any:
        """A route that may not exist yet (a projection still catching up, a module absent)."""
        try:
            return await self.get(path, **params)
        except PageNotFound:
            return default


def _date(value: str | None) -> dt.date | None:
    return None if not value else dt.date.fromisoformat(value[:10])


def _instant_before(recorded_at: str) -> str:
    """The as-of instant that shows the ledger just before an entry (as-of includes entries
    recorded at or before the instant, so one millisecond earlier leaves this one out)."""
    moment = parse_instant(recorded_at) - dt.timedelta(milliseconds=1)
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _day(value: str, start: dt.date) -> int:
    """Study day offset of an ISO date from the start of treatment (day 0)."""
    return (dt.date.fromisoformat(value[:10]) - start).days


async def stamp(api: Api, trial: str) -> dict[str, Any]:
    """Ledger seq and head hash the read models stand at, and the parameter version."""
    return dict(await api.get(f"/api/trials/{trial}/position"))


async def overview(api: Api, trial: str) -> dict[str, Any]:
    """Enrollment over time by site, patient status per site, projection lag (live views)."""
    patients = await api.get(f"/api/trials/{trial}/patients")
    by_site: dict[str, Counter[str]] = defaultdict(Counter)
    for row in patients:
        by_site[row["site_id"]][row["status"] or "-"] += 1
    statuses = [s for s in STATUS_ORDER if any(c[s] for c in by_site.values())]
    enrolled = [(r["site_id"], d) for r in patients if (d := _date(r["enrolled_on"])) is not None]
    lag = None if api.as_of else await api.get_or(None, f"/api/trials/{trial}/projections")
    return {
        "patients": len(patients),
        "statuses": statuses,
        "sites": sorted(by_site.items()),
        "totals": {s: sum(c[s] for c in by_site.values()) for s in statuses},
        "enrollment_svg": enrollment_svg(enrolled),
        "first_enrolled": min((d for _, d in enrolled), default=None),
        "last_enrolled": max((d for _, d in enrolled), default=None),
        "projections": lag,
    }


async def endpoints(api: Api, trial: str) -> dict[str, Any]:
    """KM per PARAMCD (curve, band, numbers at risk), medians, ORR/DCR, waterfall, swimmer."""
    summary = await api.get(f"/api/trials/{trial}/endpoints")
    curves = []
    for item in summary["endpoints"]:
        detail = await api.get(f"/api/trials/{trial}/endpoints/{item['paramcd']}")
        curves.append(
            {
                "paramcd": item["paramcd"],
                "summary": item,
                "at_risk": detail["at_risk"],
                "curve": detail["curve"],
                "svg": km_svg(item["paramcd"], detail["curve"], item["median_days"]),
            }
        )
    responses = await api.get(f"/api/trials/{trial}/responses")
    patients = await api.get(f"/api/trials/{trial}/patients")
    serious = await api.get_or([], f"/api/trials/{trial}/safety/aes", serious="true")
    waterfalls = [
        {"criterion": criterion, "svg": waterfall_svg(criterion, _bars(responses, criterion))}
        for criterion in CRITERIA
    ]
    return {
        "summary": summary,
        "curves": curves,
        "waterfalls": waterfalls,
        "swimmer_svg": swimmer_svg(_lanes(patients, responses, serious)),
        "paramcds": PARAMCDS,
    }


def _bars(responses: list[dict[str, Any]], criterion: str) -> list[Bar]:
    return [
        Bar(f"{r['site_id']}/{r['patient_id']}", float(r["best_pct_change"]), r["bor"])
        for r in responses
        if r["criterion"] == criterion and r["measurable"] and r["best_pct_change"] is not None
    ]


def _lanes(
    patients: list[dict[str, Any]], responses: list[dict[str, Any]], serious: list[dict[str, Any]]
) -> list[Lane]:
    """Swimmer lanes of treated patients: exposure to the last dose, follow-up to the last
    contact; RECIST 1.1 responses (first CR/PR, first PD), SAE onsets and death as markers."""
    recist = {
        (r["site_id"], r["patient_id"]): r["timepoints"]
        for r in responses
        if r["criterion"] == RECIST
    }
    saes: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for ae in serious:
        saes[(ae["site_id"], ae["patient_id"])].append(ae)
    lanes = []
    for p in patients:
        start = _date(p["startdt"])
        if start is None:
            continue
        key = (p["site_id"], p["patient_id"])
        last_dose = _date(p["last_dose_on"]) or start
        seen = [
            d
            for d in (_date(p[f]) for f in ("death_on", "last_known_alive_on", "last_scan_on"))
            if d
        ]
        followed = max([(d - start).days for d in seen] + [(last_dose - start).days])
        markers: list[Marker] = []
        shown: set[str] = set()
        for point in recist.get(key, []):
            overall = point["overall"]
            if overall in RESPONSE_MARKERS and overall not in shown:
                shown.add(overall)
                markers.append(
                    Marker(_day(point["occurred_on"], start), overall, f"{overall} (RECIST 1.1)")
                )
        markers.extend(
            Marker(_day(ae["onset"], start), "SAE", f"SAE: {ae['term']} grade {ae['worst_grade']}")
            for ae in saes.get(key, [])
        )
        if (death := _date(p["death_on"])) is not None:
            markers.append(Marker((death - start).days, "death", "death"))
        lanes.append(
            Lane(
                f"{p['site_id']}/{p['patient_id']}",
                (last_dose - start).days,
                followed,
                p["status"] == "on_treatment",
                tuple(markers),
            )
        )
    return lanes


async def safety(api: Api, trial: str) -> dict[str, Any]:
    """Incidence by SOC / term × worst grade and the SAE alerts with their deadlines; statuses
    are judged at the as-of instant when one is given (else now)."""
    incidence = await api.get_or(None, f"/api/trials/{trial}/safety/incidence")
    alerts = await api.get_or([], f"/api/trials/{trial}/safety/alerts", at=api.as_of)
    counts = Counter(alert["status"] for alert in alerts)
    return {
        "incidence": incidence,
        "alerts": list(reversed(alerts)),
        "alert_counts": counts,
        "grades": [str(g) for g in range(1, 6)],
    }


async def patient_list(api: Api, trial: str) -> dict[str, Any]:
    return {"patients": await api.get(f"/api/trials/{trial}/patients")}


async def patient(api: Api, trial: str, patient_id: str, site: str | None) -> dict[str, Any]:
    """State, responses per scan (computed sums), endpoints, AEs, and the audit trail of the
    patient `patient_id` of `site` (which may be left out while only one site uses the id)."""
    detail = await api.get(f"/api/trials/{trial}/patients/{patient_id}", site=site)
    site = detail["state"]["site_id"]
    trail = await api.get(f"/api/trials/{trial}/patients/{patient_id}/events", site=site)
    moments = [
        Moment(dt.date.fromisoformat(row["occurred_on"]), row["seq"], row["type"], row["status"])
        for row in trail
    ]
    for row in trail:
        recorded = row.get("recorded_at")
        row["just_before"] = None if not recorded else _instant_before(recorded)
    return {
        **detail,
        "trail": trail,
        "timeline_svg": timeline_svg(moments),
        "corrections": [row for row in trail if row["changes"]],
    }
