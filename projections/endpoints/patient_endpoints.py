"""One patient's clinical endpoints from its recorded history: responses, ADTTE, ADaM rows.

The glue between the response engine (`projections.criteria.response`), the time-to-event rules
(`projections.endpoints.tte`) and the ADaM rows (`projections.endpoints.adam`), DOMAIN.md "Tumour response per
timepoint", "Best overall response and ORR", "Time-to-event endpoints" and "Exports". Which
timepoints feed which endpoint:

| PARAMCD   | event                                          | timepoints          |
|-----------|------------------------------------------------|---------------------|
| OS        | death                                          | —                   |
| PFS       | overall PD or death                            | mRECIST             |
| PFSRECIST | overall PD or death                            | RECIST 1.1          |
| PFSIH     | intrahepatic PD or death                       | mRECIST             |
| PFSEH     | extrahepatic PD or death                       | mRECIST             |
| PFSPVTT   | PVTT PD or death (baseline PVTT patients only) | PVTT                |
| DOR       | from the first confirmed CR/PR to PD or death  | mRECIST             |

Every result names the ledger position (`at_seq`) and the protocol-parameter version it used
(DESIGN.md rule 6). The trial's parameters are the highest version recorded so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from events import SPONSOR_SITE, AeReportedData, ProtocolParameters, ProtocolParametersSet
from projections.criteria.best_response import BestResponse, confirmed_responses
from projections.criteria.recist import CR, NE, PD, PR
from projections.criteria.response import (
    CRITERIA,
    MRECIST,
    PVTT,
    RECIST,
    PatientResponses,
    TimepointResponse,
    assess_patient,
)
from projections.endpoints.adam import (
    AdaeRow,
    AdrsRow,
    AdslRow,
    AdtteRow,
    Criterion,
    ResponseParamcd,
    adae_row,
    adrs_row,
    adsl_row,
    adtte_row,
)
from projections.endpoints.cutoff import as_of_cutoff, last_exposure_on
from projections.endpoints.tte import (
    Assessment,
    PatientCourse,
    TteParamcd,
    TteRecord,
    course_from_history,
    derive_dor,
    derive_os,
    derive_pfs,
)
from projections.fold import patient
from projections.fold.history import Effective, Recorded, effective_history
from projections.safety.episodes import AeEpisode, patient_safety

PatientKey = tuple[str, str, str]
PARAMCDS: tuple[TteParamcd, ...] = ("OS", "PFS", "PFSRECIST", "PFSIH", "PFSEH", "PFSPVTT", "DOR")


@dataclass(frozen=True, slots=True)
class TrialParameters:
    """The protocol parameters in force: version 0 (the DOMAIN.md defaults) until the sponsor
    records a `protocol_parameters_set`; `seq` is the ledger entry that set them."""

    version: int
    seq: int | None
    parameters: ProtocolParameters


DEFAULT_PARAMETERS = TrialParameters(0, None, ProtocolParameters())


def newest_parameters(current: TrialParameters, recorded: Iterable[Recorded]) -> TrialParameters:
    """The highest parameter version recorded so far (DOMAIN.md: "versioned, so replay knows
    which rules applied"). A version recorded again, or a lower one recorded late, changes
    nothing: the first recording of the highest version stands, whatever the batching."""
    newest = current
    for entry in recorded:
        match entry.event:
            case ProtocolParametersSet(data=data) if data.version > newest.version:
                newest = TrialParameters(data.version, entry.seq, data.parameters)
            case _:
                pass
    return newest


@dataclass(frozen=True, slots=True)
class CriterionBest:
    """One criterion's best overall response, unconfirmed and confirmed, with its ORR
    population flag (`measurable`: measurable disease at baseline under the criterion) and
    the flags of its baseline (`projections.criteria.baseline`)."""

    criterion: str
    measurable: bool
    has_disease: bool
    baseline_sum_mm: float | None
    bor: BestResponse
    cbor: BestResponse
    best_pct_change: float | None
    baseline_flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PatientEndpoints:
    """Everything the clinical read models hold about one patient."""

    key: PatientKey
    at_seq: int
    parameters_version: int
    treated: bool
    course: PatientCourse
    timepoints: Mapping[str, tuple[TimepointResponse, ...]]
    timepoint_seqs: Mapping[int, tuple[int, ...]]
    # per criterion and timepoint seq, why it is not analysed (None: it is; ADRS ANL01FL)
    exclusions: Mapping[str, Mapping[int, str | None]]
    best: tuple[CriterionBest, ...]
    records: tuple[TteRecord, ...]
    adsl: AdslRow
    adtte: tuple[AdtteRow, ...]
    adrs: tuple[AdrsRow, ...]
    adae: tuple[AdaeRow, ...]


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """What one batch of a trial's ledger entries asks of the clinical read models."""

    parameters: TrialParameters
    parameters_changed: bool
    touched: frozenset[PatientKey]


def plan_batch(current: TrialParameters, batch: Iterable[Recorded]) -> BatchPlan:
    """Which patients to re-derive after `batch` (one trial's entries, seq order).

    Every patient with an entry in the batch; and when the batch raises the parameter
    version, every patient of the trial, so that each patient's endpoints always follow its
    whole history under the newest parameters, however the ledger was cut into batches.
    """
    entries = list(batch)
    newest = newest_parameters(current, entries)
    touched = frozenset(
        entry.event.patient_key for entry in entries if entry.event.site_id != SPONSOR_SITE
    )
    return BatchPlan(newest, newest != current, touched)


def replay_trial(batches: Iterable[Sequence[Recorded]]) -> dict[PatientKey, PatientEndpoints]:
    """The clinical read models after applying `batches` in order, as the projection does
    (`plan_batch`, then `derive_patient` per planned patient): the pure reference the
    projector's determinism is tested against."""
    parameters = DEFAULT_PARAMETERS
    histories: dict[PatientKey, list[Recorded]] = {}
    derived: dict[PatientKey, PatientEndpoints] = {}
    for batch in batches:
        plan = plan_batch(parameters, batch)
        parameters = plan.parameters
        for entry in batch:
            if entry.event.site_id != SPONSOR_SITE:
                histories.setdefault(entry.event.patient_key, []).append(entry)
        for key in sorted(set(histories) if plan.parameters_changed else plan.touched):
            result = derive_patient(histories[key], parameters)
            if result is None:
                derived.pop(key, None)
            else:
                derived[key] = result
    return derived


def derive_patient(
    recorded: Sequence[Recorded], parameters: TrialParameters
) -> PatientEndpoints | None:
    """All endpoints of one patient from its ledger entries (seq order) under `parameters`.

    None when nothing of the patient is in effect (every entry retracted). `at_seq` is the
    latest ledger entry the result depends on: the patient's last entry or the parameters'.
    """
    history = effective_history(recorded)
    params = parameters.parameters
    course = course_from_history(history.events, params)
    if course is None:
        return None
    state = patient.fold(history)
    analysed = as_of_cutoff(history.events, params.data_cutoff)
    dosing = state if len(analysed) == len(history.events) else patient.fold(analysed)
    responses = assess_patient(
        history.events, course.startdt, params, course.subsequent_therapy_on, state.enrolled_on
    )
    seqs = {entry.seq: entry.seqs for entry in history.events}
    records = time_to_event_records(course, responses, seqs, params)
    best = tuple(_criterion_best(responses, criterion) for criterion in CRITERIA)
    exclusions = {criterion: responses.exclusions(criterion) for criterion in CRITERIA}
    treated = course.startdt is not None and (
        params.data_cutoff is None or course.startdt <= params.data_cutoff
    )
    at_seq = max([*(entry.seq for entry in recorded), parameters.seq or 0])
    return PatientEndpoints(
        key=(course.trial_id, course.site_id, course.patient_id),
        at_seq=at_seq,
        parameters_version=parameters.version,
        treated=treated,
        course=course,
        timepoints=responses.timepoints,
        timepoint_seqs={
            tp.seq: seqs[tp.seq] for tps in responses.timepoints.values() for tp in tps
        },
        exclusions=exclusions,
        best=best,
        records=records,
        adsl=adsl_row(
            course,
            state.baseline,
            trtedt=last_exposure_on(dosing, state, params.data_cutoff),
            measurable_recist=responses.measurable(RECIST),
            measurable_mrecist=responses.measurable(MRECIST),
            data_cutoff=params.data_cutoff,
            baseline_flags_recist=responses.baselines[RECIST].flags,
            baseline_flags_mrecist=responses.baselines[MRECIST].flags,
        ),
        adtte=tuple(adtte_row(record) for record in records),
        adrs=_adrs_rows(course, responses, best, seqs, exclusions),
        adae=_adae_rows(course, analysed, params),
    )


def time_to_event_records(
    course: PatientCourse,
    responses: PatientResponses,
    seqs: Mapping[int, tuple[int, ...]],
    params: ProtocolParameters,
) -> tuple[TteRecord, ...]:
    """The patient's ADTTE records in PARAMCD order (module table); absent where the patient
    is outside an endpoint's population (untreated; PFSPVTT without baseline PVTT; DOR
    without a confirmed response)."""
    mrecist = responses.timepoints[MRECIST]
    recist = responses.timepoints[RECIST]
    pvtt = responses.timepoints[PVTT]
    confirmed = {
        tp.seq
        for tp in confirmed_responses(mrecist, course.startdt, params, course.subsequent_therapy_on)
    }

    def overall_pd(tp: TimepointResponse) -> bool:
        return tp.overall == PD

    def intrahepatic(tp: TimepointResponse) -> bool:
        return tp.intrahepatic_pd

    def extrahepatic(tp: TimepointResponse) -> bool:
        return tp.extrahepatic_pd

    candidates = (
        derive_os(course, params),
        derive_pfs(course, assessments(mrecist, seqs, overall_pd, redated=True), params, "PFS"),
        derive_pfs(
            course, assessments(recist, seqs, overall_pd, redated=True), params, "PFSRECIST"
        ),
        derive_pfs(course, assessments(mrecist, seqs, intrahepatic), params, "PFSIH"),
        derive_pfs(course, assessments(mrecist, seqs, extrahepatic), params, "PFSEH"),
        derive_pfs(
            course,
            assessments(pvtt, seqs, overall_pd, redated=True),
            params,
            "PFSPVTT",
            eligible=responses.has_pvtt,
        ),
        derive_dor(course, assessments(mrecist, seqs, overall_pd, confirmed, redated=True), params),
    )
    return tuple(record for record in candidates if record is not None)


def assessments(
    timepoints: Sequence[TimepointResponse],
    seqs: Mapping[int, tuple[int, ...]],
    progressed: Callable[[TimepointResponse], bool],
    responded: frozenset[int] | set[int] = frozenset(),
    *,
    redated: bool = False,
) -> tuple[Assessment, ...]:
    """Timepoints as the censoring rules read them (DOMAIN.md "Time-to-event endpoints").

    `progressed` says which timepoints are the endpoint's event. With `redated` (overall PD)
    a progression is dated at its `pd_date`: an equivocal new lesion confirmed later dates PD
    at its first sighting. `pd_date` belongs to the overall call, so the intra- and
    extra-hepatic endpoints keep the scan date. A timepoint is adequate unless its overall
    response is NE; it `responded` when its seq is among `responded` (the confirmed CR/PR
    timepoints, for DOR).
    """
    return tuple(
        Assessment(
            on=(tp.pd_date or tp.occurred_on) if redated and progressed(tp) else tp.occurred_on,
            progressed=progressed(tp),
            adequate=tp.overall != NE,
            responded=tp.seq in responded and tp.overall in (CR, PR),
            seqs=seqs.get(tp.seq, (tp.seq,)),
        )
        for tp in timepoints
    )


def _criterion_best(responses: PatientResponses, criterion: str) -> CriterionBest:
    baseline = responses.baselines[criterion]
    total = baseline.target_sum_mm
    return CriterionBest(
        criterion=criterion,
        measurable=baseline.measurable,
        has_disease=baseline.has_disease,
        baseline_sum_mm=None if total is None else float(total),
        bor=responses.best_response(criterion),
        cbor=responses.confirmed_best_response(criterion),
        best_pct_change=responses.best_pct_change(criterion),
        baseline_flags=baseline.flags,
    )


def _criterion(name: str) -> Criterion:
    for known in (RECIST, MRECIST, PVTT):
        if name == known:
            return known  # type: ignore[return-value]  # the three names are the Literal's
    raise ValueError(f"unknown criterion {name!r}")


def _adrs_rows(
    course: PatientCourse,
    responses: PatientResponses,
    best: Sequence[CriterionBest],
    seqs: Mapping[int, tuple[int, ...]],
    exclusions: Mapping[str, Mapping[int, str | None]],
) -> tuple[AdrsRow, ...]:
    """ADRS (admiralonco): OVR per timepoint, then BOR and CBOR, per criterion; PVTT only
    for patients with PVTT at baseline."""
    key = (course.trial_id, course.site_id, course.patient_id)
    rows: list[AdrsRow] = []
    for item in best:
        if item.criterion == PVTT and not responses.has_pvtt:
            continue
        criterion = _criterion(item.criterion)
        for tp in responses.timepoints[item.criterion]:
            rows.append(
                adrs_row(
                    *key,
                    paramcd="OVR",
                    criterion=criterion,
                    avalc=tp.overall,
                    adt=tp.occurred_on,
                    srcseqs=seqs.get(tp.seq, (tp.seq,)),
                    not_analysed_because=exclusions[item.criterion].get(tp.seq),
                )
            )
        best_rows: tuple[tuple[ResponseParamcd, BestResponse], ...] = (
            ("BOR", item.bor),
            ("CBOR", item.cbor),
        )
        for paramcd, found in best_rows:
            rows.append(
                adrs_row(
                    *key,
                    paramcd=paramcd,
                    criterion=criterion,
                    avalc=found.response,
                    adt=found.occurred_on,
                    srcseqs=() if found.seq is None else seqs.get(found.seq, (found.seq,)),
                )
            )
    return tuple(rows)


def _adae_rows(
    course: PatientCourse, events: Sequence[Effective], params: ProtocolParameters
) -> tuple[AdaeRow, ...]:
    if not events:
        return ()
    safety = patient_safety(events, params)
    return tuple(
        adae_row(
            course.trial_id,
            course.site_id,
            course.patient_id,
            _as_reported(episode),
            onset_on=episode.onset,
            soc=episode.soc,
            treatment_emergent=episode.treatment_emergent,
            srcseqs=episode.seqs,
        )
        for episode in safety.episodes
    )


def _as_reported(episode: AeEpisode) -> AeReportedData:
    # The episode as it stands (updates applied), at its worst grade; built without
    # re-validation because the implied seriousness criteria are the episode's, not a site's.
    fields: dict[str, Any] = {
        "term": episode.term,
        "verbatim": episode.verbatim,
        "grade": episode.worst_grade,
        "serious": episode.serious,
        "seriousness": episode.seriousness,
        "attribution": episode.attribution,
        "expected": episode.expected,
        "immune_related": episode.immune_related,
        "action_taken": episode.action_taken,
        "outcome": episode.outcome,
        "resolved_on": episode.resolved_on,
    }
    return AeReportedData.model_construct(**fields)
