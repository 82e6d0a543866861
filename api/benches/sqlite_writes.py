#!/usr/bin/env python3
"""Transitions on the embedded SQLite default: the API against SQLite's own ceiling for the same
statements (issue 21's first step: the write path measured, not yet changed).

    python3 api/benches/sqlite_writes.py      (needs wrk; see docs/benchmarks.md)

1. Builds the release `certflow`, creates a fresh SQLite file and starts the API on it (its one
   writer connection, WAL, synchronous=NORMAL, as configured by default).
2. Seeds ENGAGEMENTS engagements in stage 1 (through the API), each with its stage 1 audit, and
   bulk copies of the audits so each transition names one of its own.
3. wrk, CLIENTS connections for SECONDS: `POST /api/v1/engagements/{id}/events` recording a "not
   ready" stage 1 outcome (the same full transition as transitions.py on PostgreSQL).
4. With the API stopped, SQLite alone runs the statements one such transition executes, in the
   API's order, in a loop for SECONDS: one writer (the API has one), the API's pragmas, through
   Python's sqlite3 module. They are the PostgreSQL statements transitions.py captured from the
   statement log, translated by hand to SQLite's dialect: no `FOR UPDATE` (the transaction is
   `BEGIN IMMEDIATE`), ids and instants bound as values (not yet captured from SQLite itself). Python's own time per
   statement is counted in the ceiling, so this is a floor of what SQLite itself can do.
5. Prints both, their ratio, the API's latency and its peak memory.

Environment: ENGAGEMENTS (256), CLIENTS (64), SECONDS (20), SQLITE_MMAP_SIZE (the API's setting,
passed through; the ceiling maps as much).
"""

import os
import sqlite3
import sys
import time
import uuid
from datetime import datetime, timezone

from benchlib import (Api, Database, fresh_stage1_audits, release_binary, seed_stage1, transition_script, wrk,
                      wrk_figures, CLIENTS)

ENGAGEMENTS = int(os.environ.get("ENGAGEMENTS", "256"))
SECONDS = int(os.environ.get("SECONDS", "20"))

# One `record_stage1_outcome` (not ready), in the API's order: the authorization read (its own
# connection, outside the write), then the write transaction.
AUTHORIZE = "SELECT id FROM engagements WHERE id = ?"
TRANSACTION = [
    ("lock", "SELECT * FROM engagements WHERE id = :e"),
    ("facts", "SELECT o.accepts_unaccredited_cb, cb.accredited, cb.accreditation_expires_on, c.decision_on, "
              "c.expires_on, c.surveillances_completed, c.last_surveillance_on, c.status, "
              "(SELECT count(id) FROM findings WHERE engagement_id = :e AND grade = 'major_nc' AND status = 'open'), "
              "(SELECT count(id) FROM findings WHERE engagement_id = :e AND grade = 'minor_nc' AND status = 'open'), "
              "(SELECT count(id) FROM findings WHERE audit_id = :a AND grade = 'major_nc'), "
              "a.kind, a.first_day, a.last_day, a.completed_at, cp.policy, d.* "
              "FROM organizations o LEFT JOIN certification_bodies cb ON cb.id IN "
              "(SELECT certification_body_id FROM proposals WHERE engagement_id = :e AND status = 'selected') "
              "LEFT JOIN certification_policies cp ON cp.certification_body_id = cb.id "
              "LEFT JOIN certificates c ON c.engagement_id = :e "
              "LEFT JOIN audits a ON a.id = :a AND a.engagement_id = :e "
              "LEFT JOIN deadlines d ON d.engagement_id = :e AND d.status = 'open' WHERE o.id = :o"),
    ("documents", "SELECT * FROM documents WHERE engagement_id = :e"),
    ("soa", "SELECT * FROM soa_entries WHERE engagement_id = :e"),
    ("audit", "UPDATE audits SET completed_at = :now, updated_at = :now, stage1_outcome = 'not_ready', "
              "gaps = '[\"no internal audit\"]' WHERE id = :a"),
    ("history", "INSERT INTO engagement_history (id, engagement_id, action, from_state, to_state, actor, reason, "
                "evidence, subject_id, occurred_at) VALUES (:h, :e, 'record_stage1_outcome', 'stage1', 'stage1', "
                "'bench@certflow.bench', NULL, '[]', :a, :now)"),
    ("version", "UPDATE engagements SET version = version + 1, updated_at = :now WHERE id = :e RETURNING *"),
]


def sqlite_ceiling(path, targets, organization, seconds):
    """SQLite alone running one transition's statements per target, one writer, for `seconds`:
    (transitions/s, p99 ms)."""
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    mmap = int(os.environ.get("SQLITE_MMAP_SIZE", "0"))
    for connection in (reader, writer):
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON", "busy_timeout = 10000",
                       f"mmap_size = {mmap}"):
            connection.execute(f"PRAGMA {pragma}")
    org = uuid.UUID(organization).bytes
    latencies = []
    done, started_at = 0, time.time()
    deadline = started_at + seconds
    for engagement, audit in targets:
        if time.time() >= deadline:
            break
        started = time.perf_counter()
        e, a = uuid.UUID(engagement).bytes, uuid.UUID(audit).bytes
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
        reader.execute(AUTHORIZE, (e,)).fetchall()
        writer.execute("BEGIN IMMEDIATE")
        values = {"e": e, "a": a, "o": org, "now": now, "h": uuid.uuid4().bytes}
        for name, statement in TRANSACTION:
            cursor = writer.execute(statement, values)
            rows = cursor.fetchall()
            # Each statement does its work: the engagement, its facts and its new version are
            # read, the audit is completed once.
            if name in ("lock", "facts", "version"):
                assert rows, f"{name} found nothing for {engagement}"
            if name == "audit":
                assert cursor.rowcount == 1, f"the audit {audit} was not completed"
        writer.execute("COMMIT")
        latencies.append((time.perf_counter() - started) * 1000)
        done += 1
    elapsed = time.time() - started_at
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    return done / elapsed, p99


def main():
    binary = release_binary()
    db = Database("sqlite", "writes")
    api = Api(binary, db)
    try:
        pairs, org, _ = seed_stage1(api, ENGAGEMENTS)
        targets = fresh_stage1_audits(db, pairs, SECONDS)
        api_rps, api_latency, non_2xx, errors = wrk_figures(wrk(api.base, transition_script(api.token, targets),
                                                                SECONDS))
        _, peak = api.memory()
        api.stop()
        # The ceiling completes audits of its own (an audit completes one event only).
        ceiling_targets = fresh_stage1_audits(db, pairs, SECONDS)
        ceiling, ceiling_p99 = sqlite_ceiling(db.path, ceiling_targets, org, SECONDS)
        print(f"\nSQLite, {ENGAGEMENTS} engagements, {SECONDS} s; the API with {CLIENTS} clients, SQLite alone "
              "with one writer (the API has one)\n")
        print("| transition `record_stage1_outcome` | per second | latency | API / SQLite alone |")
        print("|---|---|---|---|")
        print(f"| API (`POST .../events`) | {api_rps:,.0f} | p50 {api_latency['50']}, p99 {api_latency['99']}; "
              f"non-2xx {non_2xx}; socket errors {errors or 'none'} | {api_rps / ceiling:.0%} |")
        print(f"| SQLite alone, the same statements (Python's sqlite3, one writer) | {ceiling:,.0f} | "
              f"p99 {ceiling_p99:.2f} ms (one at a time) | |")
        print(f"\nAPI peak RSS (VmHWM): {peak:.0f} MB")
    finally:
        if api.process.poll() is None:
            api.stop()
        db.drop()


if __name__ == "__main__":
    sys.exit(main())
