"""The same workload through the `eventsourcing` library on PostgreSQL (a peer users might pick).

Each event is one acknowledged, durable write in both systems: here one `save()` = one
PostgreSQL transaction committed with fsync=on, synchronous_commit=on; in the ledger one
JetStream append with `sync_interval: always`. Same number of patients, events per patient
and concurrent writers as the ledger's batch-intake figure.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class Patient(Aggregate):
    @event("Enrolled")
    def __init__(self, patient_id: str, bclc_stage: str) -> None:
        self.patient_id = patient_id
        self.bclc_stage = bclc_stage
        self.infusions = 0

    @event("InfusionGiven")
    def infusion_given(self, agent: str, cycle: int, occurred_on: str) -> None:
        self.infusions += 1


class Trial(Application[UUID]):
    pass


def run_peer(database_url: str, *, patients: int, per_patient: int, workers: int) -> dict[str, Any]:
    url = urlparse(database_url.replace("postgresql+asyncpg", "postgresql"))
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.path.lstrip("/"),
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_PASSWORD": url.password or "",
        "POSTGRES_POOL_SIZE": str(workers),
        "POSTGRES_SCHEMA": "peer_eventsourcing",
        "CREATE_TABLE": "y",
        "AGGREGATE_CACHE_MAXSIZE": str(patients + 1),
    }
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        import psycopg

        with psycopg.connect(
            f"host={env['POSTGRES_HOST']} port={env['POSTGRES_PORT']} "
            f"user={env['POSTGRES_USER']} dbname={env['POSTGRES_DBNAME']}",
            autocommit=True,
        ) as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS peer_eventsourcing")
        app = Trial()
        ids = []
        for n in range(patients):
            patient = Patient(f"P{n:05d}", "C")
            app.save(patient)
            ids.append(patient.id)

        def one_patient_event(job: tuple[UUID, int]) -> None:
            patient_id, n = job
            patient = app.repository.get(patient_id)
            patient.infusion_given("haic" if n % 2 else "pd1", 1 + n % 8, "2025-02-05")
            app.save(patient)

        # the same interleaving as the ledger's bench: round k touches every patient once
        jobs = [(pid, k) for k in range(per_patient) for pid in ids]
        began = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            for start in range(0, len(jobs), len(ids)):
                list(pool.map(one_patient_event, jobs[start : start + len(ids)]))
        seconds = time.perf_counter() - began
        app.close()
        return {
            "peer_per_s": len(jobs) / seconds,
            "events": len(jobs),
            "patients": patients,
            "threads": workers,
            "library": "eventsourcing 9.5 (eventsourcing.postgres, psycopg 3)",
            "durability": "PostgreSQL fsync=on, synchronous_commit=on; one transaction per event",
        }
    finally:
        os.environ.clear()
        os.environ.update(saved)
