#!/usr/bin/env python3
"""The read path and transitions as the data grows, on SQLite and PostgreSQL, and the API's memory.

    python3 api/benches/growth.py      (needs wrk; see the README's Benchmark)

For each backend, one API process (release build) over one fresh database that grows by steps:
1. 256 engagements in stage 1 with their audits, made through the API (the transitions' targets,
   and the templates of the bulk rows).
2. Bulk SQL grows the database to each size of SIZES engagements, spread over ten states, each
   with one open deadline and one history entry (as many rows again in those two tables).
3. At each size, wrk with CLIENTS connections for SECONDS each:
   - `GET /api/v1/engagements/{id}` on random engagements;
   - `GET /api/v1/engagements?state=certified&limit=50` from random places in the list (keyset
     cursors taken from the whole table, so deep pages are as likely as the first);
   - `POST .../events` transitions on the 256 stage 1 engagements.
4. On PostgreSQL, the ceiling of the two reads: with the API stopped, pgbench runs the SQL each
   read executes (the same statements, prepared, as the API runs them) with the same clients,
   engagements and cursors; the API is then started again on the same database.
5. The API's resident memory after each size and its peak over the whole run (VmHWM, highest of
   its processes).

Environment: BACKENDS (sqlite,postgres), SIZES (10000,100000,1000000), CLIENTS (64), SECONDS (10),
DATABASE_MAX_CONNECTIONS (the API's pool: 32 on PostgreSQL, the default 10 on SQLite),
BENCH_POSTGRES_URL.
"""

import os
import sys
import time

from benchlib import (PGBENCH_READ_STATEMENT, Api, Database, cursor_of, get_script, pgbench, pgbench_figures, pool_of,
                      release_binary, seed_stage1, transition_script, wrk, wrk_figures, CLIENTS)

BACKENDS = os.environ.get("BACKENDS", "sqlite,postgres").split(",")
SIZES = [int(n) for n in os.environ.get("SIZES", "10000,100000,1000000").split(",")]
SECONDS = int(os.environ.get("SECONDS", "10"))
STATES = ["cb_selection", "pre_audit", "stage1", "stage2", "corrective_actions", "certification_decision",
          "certified", "surveillance", "recertification", "suspended"]
LISTED_STATE = "certified"
PAGE = 50

# The statements of one page (`GET /engagements?state=...&limit=50&cursor=...`) as the API runs
# them: the page's engagements after the cursor (one more than the page, to know if another
# follows), then the open deadlines of the page's engagements, passed as a list of ids.
PGBENCH_PAGE_STATEMENTS = f"""
SELECT * FROM engagements WHERE state = '{LISTED_STATE}' AND id > :after ORDER BY id LIMIT {PAGE + 1};
SELECT * FROM deadlines WHERE engagement_id = ANY(:ids) AND status = 'open';
"""


def columns(db, table):
    if db.backend == "postgres":
        rows = db.execute("SELECT column_name FROM information_schema.columns "
                          f"WHERE table_name = '{table}' ORDER BY ordinal_position")
    else:
        rows = db.execute(f"SELECT name FROM pragma_table_info('{table}')")
    return [row[0] for row in rows]


def id_literal(db, value):
    return f"'{value}'" if db.backend == "postgres" else "X'" + value.replace("-", "") + "'"


def new_id(db):
    return "gen_random_uuid()" if db.backend == "postgres" else "randomblob(16)"


def series(db, count):
    if db.backend == "postgres":
        return f"generate_series(1, {count}) AS s(i)"
    return f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count}) SELECT i FROM s) AS s"


def copies(db, table, overrides, source):
    """INSERT ... SELECT: a copy of the template row `t` for every row of `source`, with `overrides`."""
    names = columns(db, table)
    select = ", ".join(overrides.get(name, f"t.{name}") for name in names)
    return f"INSERT INTO {table} ({', '.join(names)}) SELECT {select} FROM {source}"


def days_from_today(db, days):
    return f"current_date + {days}" if db.backend == "postgres" else f"date('now', '+{days} days')"


def grow(db, template, count, batch):
    """Adds `count` engagements copied from `template`, each with an open deadline and a history entry."""
    marker = f"'bulk{batch}@bench.test'"
    state = "CASE s.i % 10 " + " ".join(f"WHEN {n} THEN '{s}'" for n, s in enumerate(STATES)) + " END"
    template_id = id_literal(db, template)
    history = id_literal(db, db.execute(
        f"SELECT id FROM engagement_history WHERE engagement_id = {template_id} LIMIT 1")[0][0])
    in_batch = f"WHERE e.manager_email = {marker}"
    statements = [
        copies(db, "engagements", {"id": new_id(db), "state": state, "manager_email": marker},
               f"{series(db, count)} CROSS JOIN (SELECT * FROM engagements WHERE id = {template_id}) t"),
        copies(db, "deadlines", {
            "id": new_id(db), "engagement_id": "e.id", "kind": "'corrective_action_due'", "subject_id": "NULL",
            "due_on": days_from_today(db, 30), "owner": "'corrective_action_owner'",
            "owner_email": "'owner@bench.test'", "status": "'open'", "created_at": "e.created_at",
            "closed_at": "NULL", "next_step_on": days_from_today(db, 16)}, f"engagements e {in_batch}"),
        copies(db, "engagement_history", {"id": new_id(db), "engagement_id": "e.id"},
               f"engagements e CROSS JOIN (SELECT * FROM engagement_history WHERE id = {history}) t {in_batch}"),
        "ANALYZE" if db.backend == "postgres" else "SELECT 1",
        "SELECT count(*) FROM engagements",
    ]
    return int(db.execute(";\n".join(statements) + ";\n")[0][0])


def read_targets(db):
    """Random engagements and random cursors into the listed state's pages."""
    ids = [row[0] for row in db.execute("SELECT id FROM engagements ORDER BY random() LIMIT 10000")]
    listed = [row[0] for row in db.execute(
        f"SELECT id FROM engagements WHERE state = '{LISTED_STATE}' ORDER BY random() LIMIT 2000")]
    return ids, listed


def measure(api, pairs, ids, listed):
    one = get_script(api.token, [f"/api/v1/engagements/{e}" for e in ids])
    pages = get_script(api.token, [f"/api/v1/engagements?state={LISTED_STATE}&limit={PAGE}"] + [
        f"/api/v1/engagements?state={LISTED_STATE}&limit={PAGE}&cursor={cursor_of(e)}" for e in listed])
    return {
        "GET /engagements/{id}": wrk_figures(wrk(api.base, one, SECONDS)),
        f"GET /engagements?state={LISTED_STATE}&limit={PAGE}": wrk_figures(wrk(api.base, pages, SECONDS)),
        "POST /engagements/{id}/events": wrk_figures(wrk(api.base, transition_script(api.token, pairs), SECONDS)),
    }


def ceilings(db, ids, listed):
    """PostgreSQL alone (pgbench) running the statements of the two reads: (reads/s, pages/s)."""
    reads = ",".join(f"({n + 1}, '{e}')" for n, e in enumerate(ids))
    cursors = ",".join(f"({n + 1}, '{e}'::uuid)" for n, e in enumerate(listed))
    db.execute(
        f"CREATE TABLE bench_reads (n int PRIMARY KEY, e uuid); INSERT INTO bench_reads VALUES {reads}; "
        "CREATE TABLE bench_pages (n int PRIMARY KEY, after uuid, ids uuid[]); "
        "INSERT INTO bench_pages SELECT c.n, c.after, (SELECT coalesce(array_agg(id), '{}') FROM (SELECT id FROM engagements "
        f"WHERE state = '{LISTED_STATE}' AND id > c.after ORDER BY id LIMIT {PAGE}) p) "
        f"FROM (VALUES {cursors}) AS c(n, after)")
    try:
        reads, _ = pgbench(db, f"\\set n random(1, {len(ids)})\nSELECT e FROM bench_reads WHERE n = :n \\gset\n"
                              f"{PGBENCH_READ_STATEMENT}\n", SECONDS)
        pages, _ = pgbench(db, f"\\set n random(1, {len(listed)})\n"
                              f"SELECT after, ids FROM bench_pages WHERE n = :n \\gset\n{PGBENCH_PAGE_STATEMENTS}", SECONDS)
        return pgbench_figures(reads)[0], pgbench_figures(pages)[0]
    finally:
        db.execute("DROP TABLE bench_reads; DROP TABLE bench_pages; SELECT 1")


def main():
    binary = release_binary()
    rows = []
    for backend in BACKENDS:
        db = Database(backend, "growth")
        api = Api(binary, db)
        peak = 0
        try:
            pairs, _, _ = seed_stage1(api, 256)
            total = 256
            for batch, size in enumerate(SIZES):
                started = time.time()
                total = grow(db, pairs[0][0], size - total, batch)
                print(f"{backend}: {total} engagements (+{time.time() - started:.0f} s of bulk SQL)", file=sys.stderr)
                ids, listed = read_targets(db)
                figures = measure(api, pairs, ids, listed)
                rss, process_peak = api.memory()
                peak = max(peak, process_peak)
                ceiling = None
                if backend == "postgres":
                    # pgbench's clients and the API's pools would not fit in PostgreSQL's 100
                    # connections together, and idle API connections would only share the cores.
                    api.stop()
                    ceiling = ceilings(db, ids, listed)
                    api = Api(binary, db)
                rows.append((backend, total, figures, rss, ceiling))
                print(backend, total, figures, f"RSS {rss:.0f} MB", f"ceilings {ceiling}", file=sys.stderr)
            peak = max(peak, api.memory()[1])
            rows.append((backend, None, None, peak, None))
        finally:
            api.stop()
            db.drop()

    print(f"\n{CLIENTS} clients, {SECONDS} s per figure; requests/s (p50 / p99)\n")
    operations = list(rows[0][2])
    print("| database (API pool) | engagements | " + " | ".join(operations) + " | API RSS after |")
    print("|---|---|" + "---|" * len(operations) + "---|")
    for backend, total, figures, rss, _ in rows:
        if figures is None:
            print(f"| {backend} ({pool_of(backend)}) | peak over the run | " + " | " * len(operations) + f"{rss:.0f} MB |")
            continue
        cells = []
        for operation in operations:
            rps, latency, non_2xx, errors = figures[operation]
            cell = f"{rps:,.0f} ({latency['50']} / {latency['99']})"
            if non_2xx or errors:
                cell += f" non-2xx {non_2xx}, errors {errors}"
            cells.append(cell)
        print(f"| {backend} ({pool_of(backend)}) | {total:,} | " + " | ".join(cells) + f" | {rss:.0f} MB |")

    measured = [(total, figures, ceiling) for _, total, figures, _, ceiling in rows if ceiling]
    if measured:
        print("\nThe reads against PostgreSQL's own ceiling (pgbench, the same statements, same clients):\n")
        print("| engagements | GET /engagements/{id}: API | pgbench | API / pgbench "
              f"| page of {PAGE}: API | pgbench | API / pgbench |")
        print("|---|---|---|---|---|---|---|")
        for total, figures, (reads, pages) in measured:
            one, page = figures["GET /engagements/{id}"][0], figures[operations[1]][0]
            print(f"| {total:,} | {one:,.0f} | {reads:,.0f} | {one / reads:.0%} "
                  f"| {page:,.0f} | {pages:,.0f} | {page / pages:.0%} |")


if __name__ == "__main__":
    main()
