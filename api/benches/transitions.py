#!/usr/bin/env python3
"""Transition throughput on PostgreSQL: the API against the database's own ceiling.

    python3 api/benches/transitions.py      (needs wrk and pgbench; see docs/benchmarks.md)

1. Builds the release `certflow`, creates a fresh PostgreSQL database and starts the API on it.
2. Seeds ENGAGEMENTS engagements in stage 1 (through the API), each with its stage 1 audit.
3. A warm-up of WARM_UP seconds (its connections opened, its statements prepared on each, as
   pgbench's own figure leaves out its connections' opening), then wrk, CLIENTS connections for SECONDS: `POST /api/v1/engagements/{id}/events` recording a
   "not ready" stage 1 outcome on a random engagement (a transition stage1 -> stage1 that locks
   the engagement, reads its facts and open deadlines, its documents and SoA, completes the audit,
   writes the history and bumps the version: every request is a full transition). An audit
   completes one event only, so each request names an unfinished stage 1 audit of its own (bulk
   copies of the seeded ones); pgbench completes an audit of its own (one more copy) again and
   again, which SQL allows.
4. pgbench, the same CLIENTS for SECONDS, running the SQL statements one such transition executes
   (captured from PostgreSQL's statement log) as a custom script, on the same database, right
   before and right after the API's run, the API stopped meanwhile (its pools and pgbench's
   clients would not fit in PostgreSQL's default 100 connections; its p99 is read from pgbench's
   per-transaction log). Two runs, on either side of the API's, on tables as they are for it: the
   ceiling had been measured once at the end, on tables grown by every run before (the hooked
   rounds below included) and on a machine whose speed drifts by a third within minutes.
5. Prints the ratio of the API's throughput to the mean of the two pgbench runs, and the
   latency percentiles of each.
6. The read path the same way: wrk `GET /api/v1/engagements/{id}` (an engagement with its allowed
   events and open deadlines) against pgbench running that request's SELECTs.
7. Prints the API's peak resident memory (VmHWM) after the transitions and after the reads, and
   the CPU the API process and PostgreSQL spent a transition (what the ratio to pgbench is made of).
8. Webhooks: first WARM_UP seconds of them, not measured (`warm_up_webhooks`: the endpoint made,
   a worker's first statements planned on tables that hold messages, the tables analyzed), then
   ROUNDS times: the transitions with one endpoint subscribed to every event (a local
   receiver answering 200) and a worker process delivering while wrk runs (started first, to
   dispatch the outbox the run before left, the endpoint still disabled), then once more with the
   endpoint disabled and no worker. Prints each hooked run's throughput as a share of the mean of
   the runs without on either side of it (the tables grow run after run, and the machine's speed
   drifts), their median, how fast the worker delivered (messages per second from the start
   of that run until the outbox and the messages are drained), and how long after its event's
   commit each message was delivered (p50, p99, the longest). The receiver is `receiver.rs`, a
   process of its own (benchlib's `Receiver`), its CPU reported a message. The share is given
   twice: by throughput, and by the share of the machine's CPU the API process had (`/proc/stat`)
   against its neighbours': the API does the same work a transition in either run, so on cores
   kept busy the second is what the first would be if this machine's speed held still (it moves
   by a fifth between one run and the next, uniformly for every process on it). The ruler is also
   put to itself: each run without an endpoint (but the first and the last) against the runs without
   on either side, by both measures, which is the noise a round's share carries with no cost at all.
9. PostgreSQL's autovacuum is on while the bench runs, as in a deployment (benchlib's
   `Autovacuum`: this machine's PostgreSQL runs without it), and every measured run (wrk or
   pgbench) begins right after a `CHECKPOINT` (`Database.settle`: a checkpoint landed in one run and
   not its neighbours at random). Each round prints how many checkpoints began during its runs
   anyway (0 expected), and how many autovacuum and autoanalyze runs ended during each (its
   one-minute cycle lands in some 15-second runs and not others: a point of the API's share).

Environment: BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test), ENGAGEMENTS
(256), CLIENTS (64), SECONDS (20), WARM_UP (3), ROUNDS (3), DATABASE_MAX_CONNECTIONS (the API's read pool, default 32),
DATABASE_WRITE_CONNECTIONS (its write pool, default 8), BENCH_POSTGRES_SSLMODE (disable; `prefer` for TLS, for the API and pgbench alike).
"""

import re
import os
import statistics
import sys
import time

from benchlib import (PGBENCH_READ_STATEMENT, WARM_UP, Api, Autovacuum, Database, Receiver, cpu_seconds, stat_of, start_worker, stop, wait_until_drained, children_cpu_seconds, warm_up, copies, fresh_stage1_audits, id_literal, new_id, get_script, pgbench, pgbench_figures, pool_of, release_binary, seed_stage1,
                      transition_script, wrk, wrk_figures, CLIENTS)

ENGAGEMENTS = int(os.environ.get("ENGAGEMENTS", "256"))
SECONDS = int(os.environ.get("SECONDS", "20"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))

# The statements of one `record_stage1_outcome` (not ready) transition, in the order the API runs
# them (sqlx's statement log of a real request, `DATABASE_LOG_STATEMENTS=true`; captured again in
# session 18: the facts find the organization through the engagement, the engagement's new row is
# written whole without `RETURNING`), with the API's parameters as variables: the
# authorization (the engagement as the caller sees it: all, for the admin token the benchmark
# uses; since session 25 on the writer's connection, before its `BEGIN`), then the write
# transaction. The
# transition closes the engagement's stage 1 validity deadline, which none of these has open (no
# stage 1 found them ready): the API runs no statement for a change that closes nothing, and
# neither does this script.
# Since session 21 the write's last four statements (the audit completed, the history entry, the
# new version, the outbox event) go to PostgreSQL as one, the first three as data-modifying common
# table expressions of the last (`engine::store::together`): so they do here.
PGBENCH_SCRIPT = f"""
\\set n random(1, {ENGAGEMENTS})
SELECT engagement_id AS e, audit_id AS a, organization_id AS o, certification_body_id AS c FROM bench_ids WHERE n = :n \\gset
SELECT certification_body_id FROM engagements WHERE id = :e LIMIT 1;
BEGIN;
SELECT * FROM engagements WHERE id = :e FOR UPDATE;
SELECT o.accepts_unaccredited_cb, cb.accredited, cb.accreditation_expires_on, c.decision_on, c.expires_on, c.surveillances_completed, c.last_surveillance_on, c.status, (SELECT count(id) FROM findings WHERE engagement_id = :e AND grade = 'major_nc' AND status = 'open'), (SELECT count(id) FROM findings WHERE engagement_id = :e AND grade = 'minor_nc' AND status = 'open'), (SELECT count(id) FROM findings WHERE audit_id = :a AND grade = 'major_nc'), a.kind, a.first_day, a.last_day, a.completed_at, cp.policy, d.* FROM organizations o LEFT JOIN certification_bodies cb ON cb.id IN (SELECT certification_body_id FROM proposals WHERE engagement_id = :e AND status = 'selected') LEFT JOIN certification_policies cp ON cp.certification_body_id = cb.id LEFT JOIN certificates c ON c.engagement_id = :e LEFT JOIN audits a ON a.id = :a AND a.engagement_id = :e LEFT JOIN deadlines d ON d.engagement_id = :e AND d.status = 'open' WHERE o.id IN (SELECT organization_id FROM engagements WHERE id = :e);
SELECT * FROM documents WHERE engagement_id = :e;
SELECT * FROM soa_entries WHERE engagement_id = :e;
WITH "cf_deferred_1" AS (UPDATE audits SET completed_at = now(), updated_at = now(), stage1_outcome = 'not_ready', gaps = '["no internal audit"]' WHERE id = :a), "cf_deferred_2" AS (INSERT INTO engagement_history (id, engagement_id, action, from_state, to_state, actor, reason, evidence, subject_id, occurred_at) VALUES (gen_random_uuid(), :e, 'record_stage1_outcome', 'stage1', 'stage1', 'pgbench@certflow.bench', NULL, '[]', :a, now())), "cf_deferred_3" AS (UPDATE engagements SET state = 'stage1', engagement_letter_signed_on = engagement_letter_signed_on, stage1_ready_on = stage1_ready_on, stage2_last_day = stage2_last_day, suspended_on = suspended_on, expired_on = expired_on, suspension_cause = suspension_cause, scope = scope, version = version + 1, updated_at = now() WHERE id = :e), "cf_deferred_4" AS (INSERT INTO webhook_events (id, engagement_id, organization_id, certification_body_id, sequence, event_type, data, occurred_at) SELECT gen_random_uuid(), :e, :o, :c, COALESCE(MAX(sequence), 0) + 1, 'engagement.transitioned', '{{"transition": {{"from": "stage1", "to": "stage1", "event": "record_stage1_outcome", "actor": "bench@certflow.bench", "reason": null, "engagement": {{"id": "00000000-0000-0000-0000-000000000000", "state": "stage1", "version": 1, "scope": "everything", "suspended_on": null, "suspension_cause": null}}}}}}', now() FROM webhook_events WHERE engagement_id = :e RETURNING id) INSERT INTO webhook_outbox (event_id) SELECT id FROM "cf_deferred_4";
COMMIT;
"""

# The statement of one `GET /api/v1/engagements/{id}` (the tenancy-filtered engagement joined with
# its open deadlines), as the API runs it.
PGBENCH_READ = f"""
\\set n random(1, {ENGAGEMENTS})
SELECT engagement_id AS e FROM bench_ids WHERE n = :n \\gset
{PGBENCH_READ_STATEMENT}
"""


def wrk_requests(output):
    """How many requests a wrk run made."""
    for line in output.splitlines():
        if "requests in" in line:
            return int(line.split()[0])
    raise ValueError(f"no request count in {output!r}")


def machine_busy_seconds():
    """The CPU time every process and the kernel have used on this machine, in seconds (user,
    nice, system, interrupts; not idle, waiting for I/O or stolen by the hypervisor)."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in stat.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def share_of_machine(api, run):
    """`run()`'s answer, and the share of the machine's CPU the API process had meanwhile."""
    busy, api_cpu = machine_busy_seconds(), cpu_seconds(api.process.pid)
    answer = run()
    return answer, (cpu_seconds(api.process.pid) - api_cpu) / (machine_busy_seconds() - busy)


def postgres_cpu_seconds():
    """The CPU time PostgreSQL has used, in seconds: every PostgreSQL process alive now, and the
    backends that ended (the postmaster's children, counted once it has waited for them: a
    pgbench run's backends end with it)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or not is_postgres(pid):
            continue
        try:
            fields = stat_of(pid)
        except OSError:
            continue
        # Its own time, and for the postmaster (its parent is not PostgreSQL) its ended children's.
        counted = fields[11:13] if is_postgres(fields[1]) else fields[11:15]
        total += sum(int(ticks) for ticks in counted) / os.sysconf("SC_CLK_TCK")
    return total


def is_postgres(pid):
    """Whether process `pid` is a PostgreSQL process."""
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip() == "postgres"
    except OSError:
        return False


def pgbench_with_cpu(db, script):
    """`pgbench`'s answer, and the CPU a transaction of it cost PostgreSQL and pgbench itself, in µs."""
    db.settle()
    pg_before, client_before = postgres_cpu_seconds(), children_cpu_seconds()
    out = pgbench(db, script, SECONDS)
    client_seconds = children_cpu_seconds() - client_before
    count = int(re.search(r"number of transactions actually processed: (\d+)", out[0]).group(1))
    return out, ((postgres_cpu_seconds() - pg_before) / count * 1e6, client_seconds / count * 1e6)


def delivery_lag(db, since):
    """How long after its event was written each message delivered since `since` (the database's
    clock) was delivered: p50, p99 and the longest, in seconds."""
    row = db.execute("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), percentile_cont(0.99) WITHIN GROUP "
                     "(ORDER BY lag), max(lag) FROM (SELECT extract(epoch FROM m.delivered_at - e.occurred_at) AS lag "
                     "FROM webhook_messages m JOIN webhook_events e ON e.id = m.event_id "
                     f"WHERE m.status = 'delivered' AND m.delivered_at >= '{since}') AS lags")[0]
    return tuple(float(value or 0) for value in row)


def warm_up_webhooks(binary, api, db, pairs, org, receiver):
    """The endpoint made, WARM_UP seconds of transitions delivered by a worker (not measured), then
    the endpoint disabled and the webhook tables analyzed; returns the endpoint.

    Without it the first round measured a cold start: the worker's connections planned their
    statements (the foreign keys' checks among them) on message tables of a page or none, chose
    sequential scans, and kept them as the tables grew, the round through (until an `ANALYZE`:
    autovacuum makes one within a minute in a deployment); every first round of these runs fell
    below the rounds after it (64–89%). The `ANALYZE` is the one autovacuum would make by then."""
    worker = start_worker(binary, api)
    try:
        wait_until_drained(db, time.monotonic(), 120)
        endpoint = api.call("POST", "/api/v1/webhook-endpoints", {"url": receiver.url, "organization_id": org})
        warm_up(api, transition_script(api.token, fresh_stage1_audits(db, pairs, max(WARM_UP, 1))))
        wait_until_drained(db, time.monotonic(), 120)
    finally:
        stop(worker)
    api.call("PUT", f"/api/v1/webhook-endpoints/{endpoint['id']}", {"url": receiver.url, "enabled": False})
    db.execute("ANALYZE webhook_outbox, webhook_events, webhook_messages, webhook_attempts, webhook_endpoints")
    return endpoint


def main():
    binary = release_binary()
    # The bench's receiver listens on loopback.
    os.environ["WEBHOOK_ALLOW_LOOPBACK"] = "true"
    db = Database("postgres", "transitions")
    api = Api(binary, db)
    worker = receiver = None
    try:
        pairs, org, cb = seed_stage1(api, ENGAGEMENTS)
        # pgbench completes stage 1 audits of its own, a copy of each seeded one: it runs before the
        # API's first run, whose requests name the seeded audits and copies of them, unfinished.
        seeded = ",".join(id_literal(db, a) for _, a in pairs)
        db.execute(copies(db, "audits", {"id": new_id(db)}, f"(SELECT * FROM audits WHERE id IN ({seeded})) t")
                   + ";\nSELECT 1")
        pgbench_audit = dict(db.execute(f"SELECT engagement_id, id FROM audits WHERE kind = 'stage1' "
                                        f"AND id NOT IN ({seeded})"))
        rows = ",".join(f"({i + 1}, '{e}', '{pgbench_audit[e]}', '{org}', '{cb}')" for i, (e, _) in enumerate(pairs))
        db.execute("CREATE TABLE bench_ids (n int PRIMARY KEY, engagement_id uuid, audit_id uuid, "
                   f"organization_id uuid, certification_body_id uuid); INSERT INTO bench_ids VALUES {rows}")
        api.stop()
        db_before, cpu_before = pgbench_with_cpu(db, PGBENCH_SCRIPT)
        api = Api(binary, db)
        warm_up(api, transition_script(api.token, fresh_stage1_audits(db, pairs, WARM_UP)))
        targets = fresh_stage1_audits(db, pairs, SECONDS)
        checkpoints, autovacuums = db.settle(), db.autovacuums()
        pg_before, api_before = postgres_cpu_seconds(), cpu_seconds(api.process.pid)
        wrk_before = children_cpu_seconds()
        api_run, api_share = share_of_machine(api, lambda: wrk(api.base, transition_script(api.token, targets), SECONDS))
        checkpointed = [db.checkpoints() - checkpoints]
        vacuumed = [db.autovacuums() - autovacuums]
        wrk_plain = children_cpu_seconds() - wrk_before
        pg_plain, api_plain = postgres_cpu_seconds() - pg_before, cpu_seconds(api.process.pid) - api_before
        _, transitions_peak = api.memory()
        api.stop()
        db_after, cpu_after = pgbench_with_cpu(db, PGBENCH_SCRIPT)
        api = Api(binary, db)
        # Then ROUNDS times: a run with one endpoint subscribed to everything and a worker
        # delivering meanwhile, and a run without (the endpoint disabled, no worker). Each hooked
        # run is compared with the runs without on either side of it (the tables grow run after
        # run, and this machine's speed drifts within minutes).
        receiver = Receiver()
        endpoint = warm_up_webhooks(binary, api, db, pairs, org, receiver)
        runs = [api_run]
        api_shares = [api_share]
        hooked = []
        for _ in range(ROUNDS):
            worker = start_worker(binary, api)
            targets = fresh_stage1_audits(db, pairs, SECONDS)
            # The outbox of the run before (no worker then) is dispatched first, the endpoint still
            # disabled or not yet made: this run pays for its own messages only.
            wait_until_drained(db, time.monotonic(), 120)
            api.call("PUT", f"/api/v1/webhook-endpoints/{endpoint['id']}", {"url": receiver.url, "enabled": True})
            delivered_before = int(db.execute("SELECT count(*) FROM webhook_messages WHERE status = 'delivered'")[0][0])
            checkpoints, autovacuums = db.settle(), db.autovacuums()
            round_began = db.execute("SELECT now()")[0][0]
            started = time.monotonic()
            pg_before, worker_before = postgres_cpu_seconds(), cpu_seconds(worker.pid)
            receiver_cpu = cpu_seconds(receiver.process.pid)
            hooked_run, hooked_api_share = share_of_machine(
                api, lambda: wrk(api.base, transition_script(api.token, targets), SECONDS))
            hooked_checkpointed = db.checkpoints() - checkpoints
            hooked_vacuumed = db.autovacuums() - autovacuums
            wait_until_drained(db, started, SECONDS + 300)
            delivery_seconds = time.monotonic() - started
            delivered = int(db.execute("SELECT count(*) FROM webhook_messages WHERE status = 'delivered'")[0][0]) \
                - delivered_before
            worker_cpu = cpu_seconds(worker.pid) - worker_before
            lag = delivery_lag(db, round_began)
            pg_hooked = postgres_cpu_seconds() - pg_before
            receiver_cpu = cpu_seconds(receiver.process.pid) - receiver_cpu
            stop(worker)
            worker = None
            api.call("PUT", f"/api/v1/webhook-endpoints/{endpoint['id']}", {"url": receiver.url, "enabled": False})
            targets = fresh_stage1_audits(db, pairs, SECONDS)
            checkpoints, autovacuums = db.settle(), db.autovacuums()
            plain_run, api_share = share_of_machine(api, lambda: wrk(api.base, transition_script(api.token, targets), SECONDS))
            runs.append(plain_run)
            api_shares.append(api_share)
            checkpointed.append(db.checkpoints() - checkpoints)
            vacuumed.append(db.autovacuums() - autovacuums)
            hooked.append((hooked_run, delivered, delivery_seconds, worker_cpu, pg_hooked, receiver_cpu, lag,
                           hooked_checkpointed, hooked_api_share, hooked_vacuumed))
        vacuums = db.execute("SELECT relname, autovacuum_count, autoanalyze_count FROM pg_stat_user_tables "
                             "WHERE autovacuum_count + autoanalyze_count > 0 ORDER BY relname")
        db.settle()
        api_reads = wrk(api.base, get_script(api.token, [f"/api/v1/engagements/{e}" for e, _ in pairs]), SECONDS)
        _, peak = api.memory()
        # pgbench runs with the API stopped: its 64 connections and the API's pools would not fit
        # in PostgreSQL's default 100 together, and idle API connections would only share the cores.
        api.stop()
        db.settle()
        db_reads = pgbench(db, PGBENCH_READ, SECONDS)
    finally:
        stop(worker)
        if receiver is not None:
            receiver.stop()
        api.stop()
        db.drop()

    print(*runs, *(h[0] for h in hooked), db_before[0], db_after[0], api_reads, db_reads[0], sep="\n", file=sys.stderr)
    print(f"\n| {CLIENTS} clients, {SECONDS} s, {ENGAGEMENTS} engagements | per second | latency | API / pgbench |")
    print("|---|---|---|---|")
    writers = os.environ.get("DATABASE_WRITE_CONNECTIONS", "8")
    for what, api_out, ceilings in [("transition (POST .../events)", api_run,
                                     [("right before", db_before), ("right after", db_after)]),
                                    ("read (GET /engagements/{id})", api_reads, [("after", db_reads)])]:
        api_rps, latency, non_2xx, errors = wrk_figures(api_out)
        figures = [(when, *pgbench_figures(out), p99) for when, (out, p99) in ceilings]
        ceiling = statistics.mean(tps for _, tps, _, _ in figures)
        print(f"| API {what}, pools {pool_of('postgres')} + {writers} | {api_rps:.0f} | p50 {latency['50']}, p90 {latency['90']}, "
              f"p99 {latency['99']}; non-2xx: {non_2xx}; socket errors: {errors or 'none'} | {api_rps / ceiling:.0%} |")
        for when, db_tps, db_latency, db_p99 in figures:
            print(f"| pgbench, the same statements, {when} | {db_tps:.0f} | average {db_latency}, p99 {db_p99:.2f}ms | |")
    shares, cpu_shares = [], []
    for index, (hooked_run, delivered, delivery_seconds, worker_cpu, pg_hooked, receiver_cpu, lag,
                hooked_checkpointed, hooked_api_share, hooked_vacuumed) in enumerate(hooked):
        before_rps, after_rps = wrk_figures(runs[index])[0], wrk_figures(runs[index + 1])[0]
        plain_rps = (before_rps + after_rps) / 2
        print(f"| API transition again, the endpoint disabled (run {index + 2} without) | {after_rps:.0f} | | |")
        hooked_rps, latency, non_2xx, errors = wrk_figures(hooked_run)
        shares.append(hooked_rps / plain_rps)
        plain_api_share = (api_shares[index] + api_shares[index + 1]) / 2
        cpu_shares.append(hooked_api_share / plain_api_share)
        print(f"| API transition, one endpoint subscribed to every event, a worker delivering (round {index + 1}) | "
              f"{hooked_rps:.0f} | p50 {latency['50']}, p90 {latency['90']}, p99 {latency['99']}; non-2xx: {non_2xx}; "
              f"socket errors: {errors or 'none'} | {hooked_rps / plain_rps:.0%} of the runs without one before and "
              f"after ({plain_rps:.0f}) |")
        hooked_count = wrk_requests(hooked_run)
        print(f"  round {index + 1}: {delivered} messages delivered in {delivery_seconds:.1f} s from the start of that run "
              f"until drained: {delivered / delivery_seconds:.0f} per second; the worker process used {worker_cpu:.1f} s "
              f"of CPU ({worker_cpu / delivered * 1e6:.0f} µs a message), the receiver {receiver_cpu:.1f} s "
              f"({receiver_cpu / delivered * 1e6:.0f} µs); "
              f"PostgreSQL {pg_hooked / hooked_count * 1e6:.0f} µs a transition with its message made, delivered and "
              f"logged (the worker's statements included); from an event's commit to its delivery: p50 {lag[0]:.2f} s, "
              f"p99 {lag[1]:.2f} s, at most {lag[2]:.2f} s; checkpoints begun during it: {hooked_checkpointed}, "
              f"during the runs without before and after: {checkpointed[index]}, {checkpointed[index + 1]}; autovacuum "
              f"and autoanalyze runs ended during it: {hooked_vacuumed}, during the runs without before and after: "
              f"{vacuumed[index]}, {vacuumed[index + 1]}; the API "
              f"had {hooked_api_share:.1%} of the machine's CPU, against {plain_api_share:.1%} without "
              f"({api_shares[index]:.1%} before, {api_shares[index + 1]:.1%} after) "
              f"({cpu_shares[-1]:.0%})")
    print(f"\nShare with one endpoint, each round against its neighbours: "
          f"{', '.join(f'{share:.0%}' for share in shares)}; median {statistics.median(shares):.0%}")
    print(f"The same, as the API's share of the machine's CPU against its neighbours' (what the throughput's share "
          f"would be if this machine's speed held still): {', '.join(f'{share:.0%}' for share in cpu_shares)}; "
          f"median {statistics.median(cpu_shares):.0%}")
    # The ruler on itself: each run without an endpoint but the first and last against the runs
    # without on either side, as a round is against its neighbours. What it gives a build that
    # costs nothing is the noise a round's share carries.
    plain_rates = [wrk_figures(run)[0] for run in runs]
    ruler = [plain_rates[k] / ((plain_rates[k - 1] + plain_rates[k + 1]) / 2) for k in range(1, len(runs) - 1)]
    cpu_ruler = [api_shares[k] / ((api_shares[k - 1] + api_shares[k + 1]) / 2) for k in range(1, len(runs) - 1)]
    if ruler:
        print(f"The ruler on a run without an endpoint against the runs without on either side (a round's noise): "
              f"by throughput {', '.join(f'{r:.0%}' for r in ruler)}; by the API's CPU "
              f"{', '.join(f'{r:.0%}' for r in cpu_ruler)}")
    print("Autovacuum and autoanalyze runs by then (table: vacuums, analyzes): "
          + (", ".join(f"{name}: {v}, {a}" for name, v, a in vacuums) or "none"))
    plain_count = wrk_requests(api_run)
    print(f"The API's CPU: {api_plain / plain_count * 1e6:.0f} µs a transition (without an endpoint)")
    print(f"PostgreSQL's CPU: {pg_plain / plain_count * 1e6:.0f} µs a transition without an endpoint")
    print(f"wrk's CPU: {wrk_plain / plain_count * 1e6:.0f} µs a transition")
    for when, (pg, client) in [("right before", cpu_before), ("right after", cpu_after)]:
        print(f"pgbench {when}: PostgreSQL's CPU {pg:.0f} µs a transaction, pgbench's own {client:.0f} µs")
    print(f"\nAPI peak RSS (VmHWM): {transitions_peak:.0f} MB after the transitions, {peak:.0f} MB after the reads")


if __name__ == "__main__":
    with Autovacuum():
        main()
