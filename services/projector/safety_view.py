"""The safety projection: AE episodes, SAE clocks and each patient's treatment dates.

Each touched patient is re-derived from its whole effective history with
`projections.safety.episodes.patient_safety`, and its SAE alert history (initial alerts and
follow-ups, as the alerter raised them) with `projections.safety.sae_alerts.alert_log`
(corrections reach back in time). The protocol parameters used are the trial's version in force at the
patient's last ledger entry, so the rows depend on the ledger alone, never on how the
entries were batched: live and replayed builds agree byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from events import SPONSOR_SITE, ProtocolParameters, ProtocolParametersSet
from projections.fold.history import effective_history
from projections.safety.clocks import acknowledgements, with_acknowledgements
from projections.safety.episodes import patient_safety
from projections.safety.sae_alerts import alert_log
from services.db.safety_tables import (
    ae_episode,
    clock_row,
    episode_row,
    patient_row,
    safety_parameters,
    safety_patient,
)
from services.db.safety_tables import sae_clock as sae_clock_table
from services.ledger.histories import Decoded, PatientHistories, PatientKey
from services.projector.patient_view import copy_rows, delete_patients

Versions = list[tuple[int, int, ProtocolParameters]]


def parameters_at(versions: Versions, seq: int) -> tuple[int | None, ProtocolParameters]:
    """The parameters recorded last at or before `seq` (defaults before any: version None)."""
    chosen: tuple[int | None, ProtocolParameters] = (None, ProtocolParameters())
    for at_seq, version, parameters in versions:
        if at_seq <= seq:
            chosen = (version, parameters)
    return chosen


class SafetyProjection:
    """Tables `safety_parameters`, `safety_patient`, `ae_episode`, `sae_clock`."""

    name = "safety"

    async def apply(
        self, conn: AsyncConnection, batch: list[Decoded], histories: PatientHistories
    ) -> None:
        parameter_rows = [
            {
                "trial_id": item.recorded.event.trial_id,
                "seq": item.seq,
                "version": item.recorded.event.data.version,
                "parameters": json.loads(item.recorded.event.data.parameters.model_dump_json()),
            }
            for item in batch
            if isinstance(item.recorded.event, ProtocolParametersSet)
        ]
        if parameter_rows:
            await conn.execute(
                pg_insert(safety_parameters).values(parameter_rows).on_conflict_do_nothing()
            )
        touched = sorted({item.key for item in batch if item.key[1] != SPONSOR_SITE})
        if not touched:
            return
        versions = await self._versions(conn, {key[0] for key in touched})
        await self._clear(conn, touched)
        patients: list[dict[str, Any]] = []
        episodes: list[dict[str, Any]] = []
        clocks: list[dict[str, Any]] = []
        for key in touched:
            derived = self._derive(key, histories, versions.get(key[0], []))
            if derived is not None:
                patients.append(derived[0])
                episodes.extend(derived[1])
                clocks.extend(derived[2])
        for table, rows in (
            (safety_patient, patients),
            (ae_episode, episodes),
            (sae_clock_table, clocks),
        ):
            if rows:
                await copy_rows(conn, table, rows)

    @staticmethod
    async def _versions(conn: AsyncConnection, trials: Iterable[str]) -> dict[str, Versions]:
        rows = await conn.execute(
            select(safety_parameters)
            .where(safety_parameters.c.trial_id.in_(sorted(trials)))
            .order_by(safety_parameters.c.trial_id, safety_parameters.c.seq)
        )
        found: dict[str, Versions] = {}
        for row in rows:
            found.setdefault(row.trial_id, []).append(
                (row.seq, row.version, ProtocolParameters.model_validate(row.parameters))
            )
        return found

    @staticmethod
    async def _clear(conn: AsyncConnection, keys: list[PatientKey]) -> None:
        await delete_patients(conn, (safety_patient, ae_episode, sae_clock_table), keys)

    @staticmethod
    def _derive(
        key: PatientKey, histories: PatientHistories, versions: Versions
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]] | None:
        recorded = histories.get(key)
        events = effective_history(recorded).events
        if not events:
            return None  # everything retracted: nothing to report
        last_seq = max(entry.seq for entry in recorded)
        version, parameters = parameters_at(versions, last_seq)
        safety = patient_safety(events, parameters)
        acknowledged = acknowledgements(events)
        raised = alert_log(recorded, lambda seq: parameters_at(versions, seq)[1])
        return (
            patient_row(safety, last_seq, version),
            [episode_row(key, episode, version) for episode in safety.episodes],
            [
                clock_row(key, alert, with_acknowledgements(alert.clock, acknowledged))
                for alert in raised
            ],
        )
