#!/usr/bin/env python3
"""Transitions on the embedded SQLite default: the API against SQLite's own ceiling for the same
statements (issue 21).

    python3 api/benches/sqlite_writes.py      (needs wrk; see docs/benchmarks.md)

1. Builds the release `certflow`, creates a fresh SQLite file and starts the API on it (its one
   writer connection, WAL, synchronous=NORMAL, as configured by default).
2. Seeds ENGAGEMENTS engagements in stage 1 (through the API), each with its stage 1 audit, and
   bulk copies of the audits so each transition names one of its own.
3. wrk, CLIENTS connections for SECONDS: `POST /api/v1/engagements/{id}/events` recording a "not
   ready" stage 1 outcome (the same full transition as transitions.py on PostgreSQL), four times,
   each on a fresh API process: each write committed alone (`SQLITE_GROUP_COMMIT=1`), then
   writes that end while others wait committed together (the default), alternated.
4. With the API stopped, SQLite alone runs the statements one such transition executes, in the
   API's order, in a loop for SECONDS: one writer (the API has one), the API's pragmas, through
   Python's sqlite3 module. The statements are the API's own on SQLite, captured from its statement
   log (`DATABASE_LOG_STATEMENTS=true`), with the values it binds (new rows' ids made as the API
   makes them: UUIDv7, time first). Python's own time per
   statement is counted in the ceiling, so this is a floor of what SQLite itself can do.
5. Then the same for a finding's creation: wrk POSTing findings on random engagements' audits
   through the API (the setting off, then on), and SQLite alone running the statements one creation
   executes (captured the same way) with the values the API bound.
6. Prints each, their ratio, the API's latency and its peak memory.

Environment: ENGAGEMENTS (256), CLIENTS (64), SECONDS (20), WARM_UP (3: seconds of the same
requests before each API run is measured), SQLITE_MMAP_SIZE (the API's setting,
passed through; the ceiling maps as much).
"""

import os
import random
import sqlite3
import sys
import time
import uuid
from datetime import datetime, timezone

from peer import post_finding_script
from benchlib import (Api, Database, warm_up, fresh_stage1_audits, release_binary, seed_stage1, transition_script, wrk,
                      wrk_figures, CLIENTS)

ENGAGEMENTS = int(os.environ.get("ENGAGEMENTS", "256"))
SECONDS = int(os.environ.get("SECONDS", "20"))

# One `record_stage1_outcome` (not ready) as the API runs it on SQLite, captured from its statement
# log (`DATABASE_LOG_STATEMENTS=true RUST_LOG=sqlx::query=info`, one request): the authorization
# read on the read pool, then, between `BEGIN IMMEDIATE` and `COMMIT` on the writer, the rest (the
# API sends them in two texts: BEGIN, lock, facts, documents, SoA; audit, history, version,
# outbox, queue, COMMIT).
CAPTURED = {
    "authorize": 'SELECT "engagements"."certification_body_id" FROM "engagements" WHERE "engagements"."id" = ? LIMIT ?',
    "lock": 'SELECT "engagements"."id", "engagements"."organization_id", "engagements"."certification_body_id", "engagements"."standard", "engagements"."state", "engagements"."manager_email", "engagements"."engagement_letter_signed_on", "engagements"."stage1_ready_on", "engagements"."stage2_last_day", "engagements"."suspended_on", "engagements"."expired_on", "engagements"."suspension_cause", "engagements"."scope", "engagements"."version", "engagements"."created_at", "engagements"."updated_at" FROM "engagements" WHERE "engagements"."id" = ? LIMIT ?',
    "facts": 'SELECT "organizations"."accepts_unaccredited_cb" AS "accepts_unaccredited_cb", "certification_bodies"."accredited" AS "cb_accredited", "certification_bodies"."accreditation_expires_on" AS "cb_accreditation_expires_on", "certificates"."decision_on" AS "certificate_decision_on", "certificates"."expires_on" AS "certificate_expires_on", "certificates"."surveillances_completed" AS "certificate_surveillances_completed", "certificates"."last_surveillance_on" AS "certificate_last_surveillance_on", "certificates"."status" AS "certificate_status", (SELECT COUNT("findings"."id") FROM "findings" WHERE "findings"."engagement_id" = ? AND "findings"."grade" = ? AND "findings"."status" = ?) AS "majors_open", (SELECT COUNT("findings"."id") FROM "findings" WHERE "findings"."engagement_id" = ? AND "findings"."grade" = ? AND "findings"."status" = ?) AS "minors_open", (SELECT COUNT("findings"."id") FROM "findings" WHERE "findings"."audit_id" = ? AND "findings"."grade" = ?) AS "audit_major_ncs", "audits"."kind" AS "audit_kind", "audits"."first_day" AS "audit_first_day", "audits"."last_day" AS "audit_last_day", "audits"."completed_at" AS "audit_completed_at", "certification_policies"."policy" AS "certification_policy", "deadlines"."id" AS "deadline_id", "deadlines"."engagement_id" AS "deadline_engagement_id", "deadlines"."kind" AS "deadline_kind", "deadlines"."subject_id" AS "deadline_subject_id", "deadlines"."due_on" AS "deadline_due_on", "deadlines"."owner" AS "deadline_owner", "deadlines"."owner_email" AS "deadline_owner_email", "deadlines"."status" AS "deadline_status", "deadlines"."created_at" AS "deadline_created_at", "deadlines"."closed_at" AS "deadline_closed_at", "deadlines"."next_step_on" AS "deadline_next_step_on", "deadlines"."certification_body_id" AS "deadline_certification_body_id" FROM "organizations" LEFT JOIN "certification_bodies" ON "certification_bodies"."id" IN (SELECT "certification_body_id" FROM "proposals" WHERE "proposals"."engagement_id" = ? AND "proposals"."status" = ?) LEFT JOIN "certification_policies" ON "certification_policies"."certification_body_id" = "certification_bodies"."id" LEFT JOIN "certificates" ON "certificates"."engagement_id" = ? LEFT JOIN "audits" ON "audits"."id" = ? AND "audits"."engagement_id" = ? LEFT JOIN "deadlines" ON "deadlines"."engagement_id" = ? AND "deadlines"."status" = ? WHERE "organizations"."id" IN (SELECT "organization_id" FROM "engagements" WHERE "engagements"."id" = ?)',
    "documents": 'SELECT "documents"."id", "documents"."engagement_id", "documents"."kind", "documents"."reference", "documents"."registered_at" FROM "documents" WHERE "documents"."engagement_id" = ?',
    "soa": 'SELECT "soa_entries"."engagement_id", "soa_entries"."control", "soa_entries"."applicable", "soa_entries"."justification" FROM "soa_entries" WHERE "soa_entries"."engagement_id" = ?',
    "audit": 'UPDATE "audits" SET "completed_at" = ?, "updated_at" = ?, "stage1_outcome" = ?, "gaps" = ? WHERE "audits"."id" = ?',
    "history": 'INSERT INTO "engagement_history" ("id", "engagement_id", "action", "from_state", "to_state", "actor", "reason", "evidence", "subject_id", "occurred_at") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    "outbox": 'INSERT INTO "webhook_events" ("id", "engagement_id", "organization_id", "certification_body_id", "sequence", "event_type", "data", "occurred_at") SELECT ?, ?, ?, ?, COALESCE(MAX(sequence), 0) + 1, ?, ?, ? FROM "webhook_events" WHERE "webhook_events"."engagement_id" = ?',
    "queue": 'INSERT INTO "webhook_outbox" ("event_id") VALUES (?)',
    "version": 'UPDATE "engagements" SET "state" = ?, "engagement_letter_signed_on" = ?, "stage1_ready_on" = ?, "stage2_last_day" = ?, "suspended_on" = ?, "expired_on" = ?, "suspension_cause" = ?, "scope" = ?, "version" = ?, "updated_at" = ? WHERE "engagements"."id" = ?',
}

# One `POST /engagements/{id}/audits/{audit}/findings` as the API runs it on SQLite (captured the
# same way): the authorization read, then between `BEGIN IMMEDIATE` and `COMMIT` the engagement
# locked, the audit read, the finding inserted, its history entry and its event (the API sends
# them in two texts: BEGIN, lock, audit; finding, history, event, COMMIT).
FINDING = {
    "audit": 'SELECT "audits"."id", "audits"."engagement_id", "audits"."kind", "audits"."first_day", "audits"."last_day", "audits"."lead_auditor", "audits"."audit_team", "audits"."stage1_outcome", "audits"."gaps", "audits"."completed_at", "audits"."created_at", "audits"."updated_at", "audits"."certification_body_id" FROM "audits" WHERE "audits"."id" = ? LIMIT ?',
    "finding": 'INSERT INTO "findings" ("id", "engagement_id", "audit_id", "grade", "reference", "description", "status", "created_by", "created_at", "closed_at", "follow_up_audit_id", "follow_up_outcome", "follow_up_note") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
}


def uuid7():
    """A new UUID as the API makes its rows' ids (version 7: the time in milliseconds first), so
    SQLite alone inserts history entries, events and findings where the API does: after the last
    ones, not at random places in their tables and indexes."""
    now_ms = time.time_ns() // 1_000_000
    rand_a, rand_b = int.from_bytes(os.urandom(2), "big") & 0xFFF, int.from_bytes(os.urandom(8), "big") >> 2
    return uuid.UUID(int=(now_ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b).bytes


def reader_and_writer(path):
    """Two connections to the file at `path` with the API's pragmas: one to read, one to write (the
    API has one writer)."""
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    mmap = int(os.environ.get("SQLITE_MMAP_SIZE", "0"))
    for connection in (reader, writer):
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON", "busy_timeout = 10000",
                       f"mmap_size = {mmap}"):
            connection.execute(f"PRAGMA {pragma}")
    return reader, writer


def payload_of(reader, event_type):
    """The data of an event of `event_type` as the API wrote it (its size is what counts)."""
    return reader.execute('SELECT "data" FROM "webhook_events" WHERE "event_type" = ? LIMIT 1',
                          (event_type,)).fetchone()[0]


def finding_ceiling(path, pairs, organization, seconds):
    """SQLite alone running a finding creation's statements on random engagements of `pairs`, one
    writer, for `seconds`, with the values the API bound to the findings it wrote: findings/s."""
    reader, writer = reader_and_writer(path)
    org = uuid.UUID(organization).bytes
    # What the API wrote for one of its findings: the finding's values, its history entry, its event.
    grade, reference, description, status, created_by = reader.execute(
        'SELECT grade, reference, description, status, created_by FROM findings ORDER BY created_at DESC LIMIT 1'
    ).fetchone()
    action, from_state, to_state, actor, evidence = reader.execute(
        'SELECT action, from_state, to_state, actor, evidence FROM engagement_history '
        'WHERE subject_id IN (SELECT id FROM findings) ORDER BY occurred_at DESC LIMIT 1').fetchone()
    event_data = payload_of(reader, "finding.recorded")
    done, started_at = 0, time.time()
    while time.time() < started_at + seconds:
        engagement, audit = random.choice(pairs)
        e, a = uuid.UUID(engagement).bytes, uuid.UUID(audit).bytes
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
        finding = uuid7()
        reader.execute(CAPTURED["authorize"], (e, 1)).fetchall()
        writer.execute("BEGIN IMMEDIATE")
        row = writer.execute(CAPTURED["lock"], (e, 1)).fetchall()[0]
        assert writer.execute(FINDING["audit"], (a, 1)).fetchall(), f"no audit {audit}"
        cursor = writer.execute(FINDING["finding"], (finding, e, a, grade, reference, description, status, created_by,
                                                     now, None, None, None, None))
        assert cursor.rowcount == 1, "no finding written"
        writer.execute(CAPTURED["history"], (uuid7(), e, action, from_state, to_state, actor, None,
                                             evidence, finding, now))
        event = uuid7()
        cursor = writer.execute(CAPTURED["outbox"], (event, e, org, row[2], "finding.recorded", event_data, now, e))
        assert cursor.rowcount == 1, "no event written"
        writer.execute(CAPTURED["queue"], (event,))
        writer.execute("COMMIT")
        done += 1
    return done / (time.time() - started_at)


def parameters(name, e, a, o, now, engagement_row, event_data=None, event=None):
    """The values the API binds to statement `name`, in order (`event_data`: the payload of an event
    the API wrote; `event`: the id of the transition's event)."""
    if name in ("authorize", "lock"):
        return (e, 1)
    if name == "facts":
        return (e, "major_nc", "open", e, "minor_nc", "open", a, "major_nc", e, "selected", e, a, e, e, "open", e)
    if name in ("documents", "soa"):
        return (e,)
    if name == "audit":
        return (now, now, "not_ready", '["no internal audit"]', a)
    if name == "history":
        return (uuid7(), e, "record_stage1_outcome", "stage1", "stage1", "bench@certflow.bench", None, "[]",
                a, now)
    if name == "outbox":
        return (event, e, o, engagement_row[2], "engagement.transitioned", event_data, now, e)
    if name == "queue":
        return (event,)
    # The engagement's columns as read under the lock, its version one up.
    row = engagement_row
    return (row[4], row[6], row[7], row[8], row[9], row[10], row[11], row[12], row[13] + 1, now, e)


def sqlite_ceiling(path, targets, organization, seconds):
    """SQLite alone running one transition's statements per target, one writer, for `seconds`:
    (transitions/s, p99 ms)."""
    reader, writer = reader_and_writer(path)
    org = uuid.UUID(organization).bytes
    event_data = payload_of(reader, "engagement.transitioned")
    latencies = []
    done, started_at = 0, time.time()
    deadline = started_at + seconds
    for engagement, audit in targets:
        if time.time() >= deadline:
            break
        started = time.perf_counter()
        e, a = uuid.UUID(engagement).bytes, uuid.UUID(audit).bytes
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
        reader.execute(CAPTURED["authorize"], parameters("authorize", e, a, org, now, None)).fetchall()
        writer.execute("BEGIN IMMEDIATE")
        engagement_row, event = None, uuid7()
        for name in ("lock", "facts", "documents", "soa", "audit", "history", "version", "outbox", "queue"):
            cursor = writer.execute(CAPTURED[name], parameters(name, e, a, org, now, engagement_row, event_data, event))
            rows = cursor.fetchall()
            # Each statement does its work: the engagement, its facts and its new version are
            # read, the audit is completed once.
            if name in ("lock", "facts"):
                assert rows, f"{name} found nothing for {engagement}"
            if name == "lock":
                engagement_row = rows[0]
            if name in ("audit", "version", "outbox", "queue"):
                assert cursor.rowcount == 1, f"{name}: no row written for {audit}"
        writer.execute("COMMIT")
        latencies.append((time.perf_counter() - started) * 1000)
        done += 1
    elapsed = time.time() - started_at
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    return done / elapsed, p99


def audits_for_a_run(db, pairs):
    """Unfinished stage 1 audits for one run of SECONDS (at most 5,000 a second): each run adds
    copies, so the list of every unfinished one grows run by run."""
    return fresh_stage1_audits(db, pairs, SECONDS)[:SECONDS * 5000]


# The setting each run alternates: writes that end while others wait for the writer committed
# together (the default), or each write committed alone (`SQLITE_GROUP_COMMIT=1`).
COMPARED = "SQLITE_GROUP_COMMIT"


def api_run(binary, db, script, batched):
    """One wrk run of `script` on a fresh API process, its commits grouped when `batched` (the
    default) or each alone (COMPARED=1): (per second, latency, non-2xx, socket errors, peak RSS MB)."""
    api = Api(binary, db, extra_env={} if batched else {COMPARED: "1"})
    try:
        warm_up(api, script(api.token))
        figures = wrk_figures(wrk(api.base, script(api.token), SECONDS))
        return (*figures, api.memory()[1])
    finally:
        api.stop()


def label(batched):
    return "default settings" if batched else f"`{COMPARED}=1`"


def main():
    binary = release_binary()
    db = Database("sqlite", "writes")
    api = Api(binary, db)
    try:
        pairs, org, _ = seed_stage1(api, ENGAGEMENTS)
        api.stop()
        # The compared setting off and on (the default), alternated.
        runs = [(batched, api_run(binary, db, lambda token: transition_script(token, audits_for_a_run(db, pairs)),
                                  batched)) for batched in (False, True, False, True)]
        # The ceiling completes audits of its own (an audit completes one event only).
        ceiling_targets = audits_for_a_run(db, pairs)
        ceiling, ceiling_p99 = sqlite_ceiling(db.path, ceiling_targets, org, SECONDS)
        # A finding's creation: the API (the setting off, then on), then SQLite alone.
        findings = [(batched, api_run(binary, db, lambda token: post_finding_script(token, pairs), batched))
                    for batched in (False, True)]
        findings_ceiling = finding_ceiling(db.path, pairs, org, SECONDS)
        print(f"\nSQLite, {ENGAGEMENTS} engagements, {SECONDS} s; the API with {CLIENTS} clients, SQLite alone "
              "with one writer (the API has one)\n")
        print("| transition `record_stage1_outcome` | per second | latency | API / SQLite alone | peak RSS |")
        print("|---|---|---|---|---|")
        for batched, (rps, latency, non_2xx, errors, peak) in runs:
            print(f"| API (`POST .../events`), {label(batched)} | {rps:,.0f} | p50 {latency['50']}, p99 {latency['99']}; "
                  f"non-2xx {non_2xx}; socket errors {errors or 'none'} | {rps / ceiling:.0%} | {peak:.0f} MB |")
        print(f"| SQLite alone, the same statements (Python's sqlite3, one writer) | {ceiling:,.0f} | "
              f"p99 {ceiling_p99:.2f} ms (one at a time) | | |")
        print("\n| a finding recorded (`POST .../audits/{audit}/findings`) | per second | latency | API / SQLite alone "
              "| peak RSS |")
        print("|---|---|---|---|---|")
        for batched, (rps, latency, non_2xx, errors, peak) in findings:
            print(f"| API, {label(batched)} | {rps:,.0f} | p50 {latency['50']}, p99 {latency['99']}; non-2xx {non_2xx}; "
                  f"socket errors {errors or 'none'} | {rps / findings_ceiling:.0%} | {peak:.0f} MB |")
        print(f"| SQLite alone, the same statements (Python's sqlite3, one writer) | {findings_ceiling:,.0f} | | | |")
    finally:
        if api.process.poll() is None:
            api.stop()
        db.drop()


if __name__ == "__main__":
    sys.exit(main())
