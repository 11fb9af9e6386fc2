"""The clinical projection: responses per timepoint, best responses, ADTTE and ADaM rows.

Each touched patient is re-derived from its whole recorded history with
`projections.endpoints.patient_endpoints.derive_patient` (corrections apply backwards in time); when a batch
raises the trial's protocol-parameter version, every patient of the trial is re-derived
(`projections.endpoints.patient_endpoints.plan_batch`), so the rows never depend on how the ledger was cut
into batches and a replay gives the same tables.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import case, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from events import SPONSOR_SITE, TRIAL_PATIENT, ProtocolParameters
from projections.criteria.baseline import describe
from projections.endpoints.adam import AdamRow, render_cell
from projections.endpoints.patient_endpoints import (
    DEFAULT_PARAMETERS,
    PatientEndpoints,
    PatientKey,
    TrialParameters,
    derive_patient,
    newest_parameters,
    plan_batch,
)
from services.db.clinical_tables import (
    PATIENT_TABLES,
    adam_record,
    adtte,
    best_response,
    clinical_patient,
    clinical_trial,
    response_timepoint,
)
from services.ledger.histories import Decoded, PatientHistories
from services.projector.patient_view import copy_rows, delete_patients


class ClinicalProjection:
    """Clinical endpoints per patient, re-derived on every batch that touches the patient."""

    name = "clinical"

    async def apply(
        self, conn: AsyncConnection, batch: list[Decoded], histories: PatientHistories
    ) -> None:
        by_trial: dict[str, list[Decoded]] = defaultdict(list)
        for item in batch:
            by_trial[item.recorded.event.trial_id].append(item)
        for trial_id in sorted(by_trial):
            await self._apply_trial(conn, trial_id, by_trial[trial_id], histories)

    async def _apply_trial(
        self,
        conn: AsyncConnection,
        trial_id: str,
        items: list[Decoded],
        histories: PatientHistories,
    ) -> None:
        stored = await load_parameters(conn, trial_id)
        # the parameters in force before this batch, from this projection's own view of the
        # trial's history (every partition has it), never from a table another partition writes
        in_batch = {item.seq for item in items}
        trial_key = (trial_id, SPONSOR_SITE, TRIAL_PATIENT)
        await histories.ensure(trial_key, await _checkpoint(conn, histories.position or self.name))
        earlier = [r for r in histories.get(trial_key) if r.seq not in in_batch]
        current = newest_parameters(DEFAULT_PARAMETERS, earlier)
        plan = plan_batch(current, [item.recorded for item in items])
        # Batch patients first: loading others below may evict them from the bounded cache.
        derived: dict[PatientKey, PatientEndpoints | None] = {
            key: derive_patient(list(histories.get(key)), plan.parameters)
            for key in sorted(plan.touched)
            if histories.owns(key)
        }
        if plan.parameters_changed:
            checkpoint = await _checkpoint(conn, histories.position or self.name)
            for key in await _known_patients(conn, trial_id):
                if key in derived or not histories.owns(key):
                    continue
                await histories.ensure(key, checkpoint)
                derived[key] = derive_patient(list(histories.get(key)), plan.parameters)
        await _replace_patients(conn, derived)
        last_seq = max([stored[1], *(item.seq for item in items)])
        await _store_parameters(conn, trial_id, plan.parameters, last_seq)


async def load_parameters(conn: AsyncConnection, trial_id: str) -> tuple[TrialParameters, int]:
    """The trial's parameters in force and the last ledger seq of the trial applied so far."""
    row = (
        await conn.execute(select(clinical_trial).where(clinical_trial.c.trial_id == trial_id))
    ).first()
    if row is None:
        return DEFAULT_PARAMETERS, 0
    parameters = ProtocolParameters.model_validate(row.parameters)
    return TrialParameters(row.parameters_version, row.parameters_seq, parameters), int(
        row.last_seq
    )


async def _store_parameters(
    conn: AsyncConnection, trial_id: str, parameters: TrialParameters, last_seq: int
) -> None:
    row = {
        "trial_id": trial_id,
        "parameters_version": parameters.version,
        "parameters_seq": parameters.seq,
        "parameters": parameters.parameters.model_dump(mode="json"),
        "last_seq": last_seq,
    }
    statement = pg_insert(clinical_trial).values(**row)
    newer = statement.excluded.parameters_version > clinical_trial.c.parameters_version
    # several partitions write this row: keep the newest parameters and the highest seq
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["trial_id"],
            set_={
                "parameters_version": func.greatest(
                    clinical_trial.c.parameters_version, statement.excluded.parameters_version
                ),
                "parameters_seq": case(
                    (newer, statement.excluded.parameters_seq),
                    else_=clinical_trial.c.parameters_seq,
                ),
                "parameters": case(
                    (newer, statement.excluded.parameters), else_=clinical_trial.c.parameters
                ),
                "last_seq": func.greatest(clinical_trial.c.last_seq, statement.excluded.last_seq),
            },
        )
    )


async def _checkpoint(conn: AsyncConnection, projection: str) -> int:
    # Inside the Applier's transaction the checkpoint row still holds the previous batch's end.
    value = (
        await conn.execute(
            text("SELECT last_seq FROM projection_checkpoint WHERE projection = :p"),
            {"p": projection},
        )
    ).scalar()
    return int(value or 0)


async def _known_patients(conn: AsyncConnection, trial_id: str) -> list[PatientKey]:
    rows = await conn.execute(
        select(
            clinical_patient.c.trial_id, clinical_patient.c.site_id, clinical_patient.c.patient_id
        )
        .where(clinical_patient.c.trial_id == trial_id)
        .order_by(clinical_patient.c.site_id, clinical_patient.c.patient_id)
    )
    return [(t, s, p) for t, s, p in rows]


async def _replace_patients(
    conn: AsyncConnection, derived: dict[PatientKey, PatientEndpoints | None]
) -> None:
    if not derived:
        return
    keys = sorted(derived)
    await delete_patients(conn, PATIENT_TABLES, keys)
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key in keys:
        result = derived[key]
        if result is not None:
            for table_name, table_rows in patient_rows(result).items():
                rows[table_name].extend(table_rows)
    for table in PATIENT_TABLES:
        if rows[table.name]:
            await copy_rows(conn, table, rows[table.name])


def patient_rows(result: PatientEndpoints) -> dict[str, list[dict[str, Any]]]:
    """One patient's rows for every clinical table, keyed by table name."""
    trial_id, site_id, patient_id = result.key
    ids = {"trial_id": trial_id, "site_id": site_id, "patient_id": patient_id}
    stamp = {"parameters_version": result.parameters_version, "at_seq": result.at_seq}
    course = result.course
    pvtt = next(best for best in result.best if best.criterion == "PVTT")
    patient = {
        **ids,
        "startdt": course.startdt,
        "treated": result.treated,
        "baseline_on": course.baseline_assessment_on,
        "has_pvtt": pvtt.measurable,
        "subsequent_therapy_on": course.subsequent_therapy_on,
        **stamp,
    }
    timepoints = [
        {
            **ids,
            "criterion": criterion,
            "seq": tp.seq,
            "occurred_on": tp.occurred_on,
            "target_response": tp.target_response,
            "non_target_response": tp.non_target_response,
            "new_lesion": tp.new_lesion,
            "overall": tp.overall,
            "target_sum_mm": tp.target_sum_mm,
            "pct_change_from_baseline": tp.pct_change_from_baseline,
            "pct_change_from_nadir": tp.pct_change_from_nadir,
            "pd_date": tp.pd_date,
            "intrahepatic_pd": tp.intrahepatic_pd,
            "extrahepatic_pd": tp.extrahepatic_pd,
            "reader_call": tp.reader_call,
            "disagrees": tp.disagrees,
            "flags": list(tp.flags),
            "analysed": result.exclusions[criterion].get(tp.seq) is None,
            "not_analysed_because": result.exclusions[criterion].get(tp.seq),
            "srcseqs": list(result.timepoint_seqs.get(tp.seq, (tp.seq,))),
            **stamp,
        }
        for criterion, tps in result.timepoints.items()
        for tp in tps
    ]
    best = [
        {
            **ids,
            "criterion": item.criterion,
            "treated": result.treated,
            "measurable": item.measurable,
            "has_disease": item.has_disease,
            "baseline_sum_mm": item.baseline_sum_mm,
            "bor": item.bor.response,
            "bor_on": item.bor.occurred_on,
            "bor_seq": item.bor.seq,
            "cbor": item.cbor.response,
            "cbor_on": item.cbor.occurred_on,
            "cbor_seq": item.cbor.seq,
            "best_pct_change": item.best_pct_change,
            "baseline_flags": list(item.baseline_flags),
            "baseline_notes": [describe(flag) for flag in item.baseline_flags],
            **stamp,
        }
        for item in result.best
    ]
    records = [
        {
            **ids,
            "paramcd": record.paramcd,
            "param": record.param,
            "startdt": record.startdt,
            "adt": record.adt,
            "aval": record.aval,
            "cnsr": int(record.cnsr),
            "evntdesc": record.evntdesc,
            "cnsdtdsc": record.cnsdtdsc,
            "srcseqs": list(record.srcseqs),
            **stamp,
        }
        for record in result.records
    ]
    datasets: list[tuple[str, tuple[AdamRow, ...]]] = [
        ("adsl", (result.adsl,)),
        ("adtte", result.adtte),
        ("adrs", result.adrs),
        ("adae", result.adae),
    ]
    adam = [
        {
            **ids,
            "dataset": dataset,
            "line": line,
            "cells": [render_cell(cell) for cell in row.cells()],
        }
        for dataset, dataset_rows in datasets
        for line, row in enumerate(dataset_rows)
    ]
    return {
        clinical_patient.name: [patient],
        response_timepoint.name: timepoints,
        best_response.name: best,
        adtte.name: records,
        adam_record.name: adam,
    }
