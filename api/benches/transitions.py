#!/usr/bin/env python3
"""Transition throughput on PostgreSQL: the API against the database's own ceiling.

    python3 api/benches/transitions.py      (needs wrk and pgbench; see docs/benchmarks.md)

1. Builds the release `certflow`, creates a fresh PostgreSQL database and starts the API on it.
2. Seeds ENGAGEMENTS engagements in stage 1 (through the API), each with its stage 1 audit.
3. wrk, CLIENTS connections for SECONDS: `POST /api/v1/engagements/{id}/events` recording a
   "not ready" stage 1 outcome on a random engagement (a transition stage1 -> stage1 that locks
   the engagement, reads its facts and open deadlines, its documents and SoA, completes the audit,
   writes the history and bumps the version: every request is a full transition). An audit
   completes one event only, so each request names an unfinished stage 1 audit of its own (bulk
   copies of the seeded ones); pgbench completes the same audit again, which SQL allows.
4. pgbench, the same CLIENTS for SECONDS, running the SQL statements one such transition executes
   (captured from PostgreSQL's statement log) as a custom script, on the same database, once the
   API has stopped (its p99 is read from pgbench's per-transaction log).
5. Prints the ratio of the two throughputs and the API's latency percentiles.
6. The read path the same way: wrk `GET /api/v1/engagements/{id}` (an engagement with its allowed
   events and open deadlines) against pgbench running that request's SELECTs.
7. Prints the API's peak resident memory (VmHWM) after the transitions and after the reads.

Environment: BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test), ENGAGEMENTS
(256), CLIENTS (64), SECONDS (20), DATABASE_MAX_CONNECTIONS (the API's read pool, default 32),
DATABASE_WRITE_CONNECTIONS (its write pool, default 8), BENCH_POSTGRES_SSLMODE (disable; `prefer` for TLS, for the API and pgbench alike).
"""

import os
import sys

from benchlib import (PGBENCH_READ_STATEMENT, Api, Database, fresh_stage1_audits, get_script, pgbench, pgbench_figures, pool_of, release_binary, seed_stage1,
                      transition_script, wrk, wrk_figures, CLIENTS)

ENGAGEMENTS = int(os.environ.get("ENGAGEMENTS", "256"))
SECONDS = int(os.environ.get("SECONDS", "20"))

# The statements of one `record_stage1_outcome` (not ready) transition, in the order the API runs
# them (PostgreSQL statement log of a real request), with the API's parameters as variables: the
# authorization on the read pool (the engagement as the caller sees it: all, for the admin token
# the benchmark uses), then the write transaction. The
# transition closes the engagement's stage 1 validity deadline, which none of these has open (no
# stage 1 found them ready): the API runs no statement for a change that closes nothing, and
# neither does this script.
PGBENCH_SCRIPT = f"""
\\set n random(1, {ENGAGEMENTS})
SELECT engagement_id AS e, audit_id AS a, organization_id AS o, certification_body_id AS c FROM bench_ids WHERE n = :n \\gset
SELECT id FROM engagements WHERE id = :e;
BEGIN;
SELECT * FROM engagements WHERE id = :e FOR UPDATE;
SELECT o.accepts_unaccredited_cb, cb.accredited, cb.accreditation_expires_on, c.decision_on, c.expires_on, c.surveillances_completed, c.last_surveillance_on, c.status, (SELECT count(id) FROM findings WHERE engagement_id = :e AND grade = 'major_nc' AND status = 'open'), (SELECT count(id) FROM findings WHERE engagement_id = :e AND grade = 'minor_nc' AND status = 'open'), (SELECT count(id) FROM findings WHERE audit_id = :a AND grade = 'major_nc'), a.kind, a.first_day, a.last_day, a.completed_at, cp.policy, d.* FROM organizations o LEFT JOIN certification_bodies cb ON cb.id IN (SELECT certification_body_id FROM proposals WHERE engagement_id = :e AND status = 'selected') LEFT JOIN certification_policies cp ON cp.certification_body_id = cb.id LEFT JOIN certificates c ON c.engagement_id = :e LEFT JOIN audits a ON a.id = :a AND a.engagement_id = :e LEFT JOIN deadlines d ON d.engagement_id = :e AND d.status = 'open' WHERE o.id = :o;
SELECT * FROM documents WHERE engagement_id = :e;
SELECT * FROM soa_entries WHERE engagement_id = :e;
UPDATE audits SET completed_at = now(), updated_at = now(), stage1_outcome = 'not_ready', gaps = '["no internal audit"]' WHERE id = :a;
INSERT INTO engagement_history (id, engagement_id, action, from_state, to_state, actor, reason, evidence, subject_id, occurred_at) VALUES (gen_random_uuid(), :e, 'record_stage1_outcome', 'stage1', 'stage1', 'pgbench@certflow.bench', NULL, '[]', :a, now());
UPDATE engagements SET version = version + 1, updated_at = now() WHERE id = :e RETURNING *;
COMMIT;
"""

# The statement of one `GET /api/v1/engagements/{id}` (the tenancy-filtered engagement joined with
# its open deadlines), as the API runs it.
PGBENCH_READ = f"""
\\set n random(1, {ENGAGEMENTS})
SELECT engagement_id AS e FROM bench_ids WHERE n = :n \\gset
{PGBENCH_READ_STATEMENT}
"""


def main():
    binary = release_binary()
    db = Database("postgres", "transitions")
    api = Api(binary, db)
    try:
        pairs, org, cb = seed_stage1(api, ENGAGEMENTS)
        rows = ",".join(f"({i + 1}, '{e}', '{a}', '{org}', '{cb}')" for i, (e, a) in enumerate(pairs))
        db.execute("CREATE TABLE bench_ids (n int PRIMARY KEY, engagement_id uuid, audit_id uuid, "
                   f"organization_id uuid, certification_body_id uuid); INSERT INTO bench_ids VALUES {rows}")
        targets = fresh_stage1_audits(db, pairs, SECONDS)
        api_run = wrk(api.base, transition_script(api.token, targets), SECONDS)
        _, transitions_peak = api.memory()
        api_reads = wrk(api.base, get_script(api.token, [f"/api/v1/engagements/{e}" for e, _ in pairs]), SECONDS)
        _, peak = api.memory()
        # pgbench runs with the API stopped: its 64 connections and the API's pools would not fit
        # in PostgreSQL's default 100 together, and idle API connections would only share the cores.
        api.stop()
        db_run = pgbench(db, PGBENCH_SCRIPT, SECONDS)
        db_reads = pgbench(db, PGBENCH_READ, SECONDS)
    finally:
        api.stop()
        db.drop()

    print(api_run, db_run[0], api_reads, db_reads[0], sep="\n", file=sys.stderr)
    print(f"\n| {CLIENTS} clients, {SECONDS} s, {ENGAGEMENTS} engagements | per second | latency | API / pgbench |")
    print("|---|---|---|---|")
    writers = os.environ.get("DATABASE_WRITE_CONNECTIONS", "8")
    for what, api_out, (db_out, db_p99) in [("transition (POST .../events)", api_run, db_run),
                                            ("read (GET /engagements/{id})", api_reads, db_reads)]:
        api_rps, latency, non_2xx, errors = wrk_figures(api_out)
        db_tps, db_latency = pgbench_figures(db_out)
        print(f"| API {what}, pools {pool_of('postgres')} + {writers} | {api_rps:.0f} | p50 {latency['50']}, p90 {latency['90']}, "
              f"p99 {latency['99']}; non-2xx: {non_2xx}; socket errors: {errors or 'none'} | {api_rps / db_tps:.0%} |")
        print(f"| pgbench, the same statements | {db_tps:.0f} | average {db_latency}, p99 {db_p99:.2f}ms | |")
    print(f"\nAPI peak RSS (VmHWM): {transitions_peak:.0f} MB after the transitions, {peak:.0f} MB after the reads")


if __name__ == "__main__":
    main()
