#!/usr/bin/env python3
"""The read path and transitions as the data grows, on SQLite and PostgreSQL, and the API's memory.

    python3 api/benches/growth.py      (needs wrk; see docs/benchmarks.md)

For each backend, one API process (release build) over one fresh database that grows by steps:
1. 256 engagements in stage 1 with their audits, made through the API (the transitions' targets,
   and the templates of the bulk rows).
2. Bulk SQL grows the database to each size of SIZES engagements, spread over ten states, each
   with one open deadline and one history entry (as many rows again in those two tables).
3. At each size, wrk with CLIENTS connections for SECONDS each:
   - `GET /api/v1/engagements/{id}` on random engagements;
   - `GET /api/v1/engagements?state=certified&limit=50` from random places in the list (keyset
     cursors taken from the whole table, so deep pages are as likely as the first);
   - `POST .../events` transitions on the 256 stage 1 engagements, each completing a stage 1 audit
     of its own (bulk copies of theirs, made before each run).
4. The database's own ceiling for the two reads, with the API stopped (it is then started again on
   the same database), over the same engagements and cursors: on PostgreSQL pgbench runs the SQL
   each read executes (the same statements, prepared, as the API runs them) with the same clients;
   on SQLite one process per core runs the same statements through Python's sqlite3 module.
5. The API's resident memory after each size, split into its own (anonymous: heap, stacks, the
   allocator's retention) and the part that maps files (its binary and, on SQLite with
   SQLITE_MMAP_SIZE, the database file through each connection's memory map), and its peak over
   the whole run (VmHWM, highest of its processes).

Environment: BACKENDS (sqlite,postgres), SIZES (10000,100000,1000000), CLIENTS (64), SECONDS (10),
SQLITE_MMAP_SIZE (the API's setting, passed through; the SQLite ceiling maps as much),
DATABASE_MAX_CONNECTIONS (the API's pool: 32 on PostgreSQL, the default 10 on SQLite),
BENCH_POSTGRES_URL.
"""

import os
import sys
import time
import uuid

from benchlib import (PGBENCH_READ_STATEMENT, Api, Database, copies, cursor_of, fresh_stage1_audits, get_script, id_literal,
                      new_id, pgbench, pgbench_figures, pool_of, release_binary, seed_stage1, series, time_ordered_id_sql,
                      transition_script, wrk, wrk_figures, CLIENTS)

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
        copies(db, "engagements", {"id": time_ordered_id_sql(db, "s.i"), "state": state, "manager_email": marker},
               f"{series(db, count)} CROSS JOIN (SELECT * FROM engagements WHERE id = {template_id}) t"),
        copies(db, "deadlines", {
            "id": new_id(db), "engagement_id": "e.id", "kind": "'corrective_action_due'", "subject_id": "NULL",
            "due_on": days_from_today(db, 30), "owner": "'corrective_action_owner'",
            "owner_email": "'owner@bench.test'", "status": "'open'", "created_at": "e.created_at",
            "closed_at": "NULL", "next_step_on": days_from_today(db, 16),
            "certification_body_id": "e.certification_body_id"}, f"engagements e {in_batch}"),
        copies(db, "engagement_history", {"id": new_id(db), "engagement_id": "e.id"},
               f"engagements e CROSS JOIN (SELECT * FROM engagement_history WHERE id = {history}) t {in_batch}"),
        "ANALYZE" if db.backend == "postgres" else "SELECT 1",
        "SELECT count(*) FROM engagements",
    ]
    return int(db.execute(";\n".join(statements) + ";\n")[0][0])


def census_and_scrape(api):
    """What /metrics costs at this size: the census the API took at its start (three grouped counts,
    retaken every 60 s, never per scrape) and a scrape's time (the mean of 20), in ms."""
    import urllib.request
    time.sleep(2)
    text = ""
    started = time.time()
    for _ in range(20):
        with urllib.request.urlopen(api.base + "/metrics") as response:
            text = response.read().decode()
    scrape_ms = (time.time() - started) / 20 * 1000
    figures = dict(line.rsplit(" ", 1) for line in text.splitlines()
                   if line.startswith("certflow_census_duration_seconds_"))
    count = float(figures.get("certflow_census_duration_seconds_count", "0"))
    census_ms = float(figures.get("certflow_census_duration_seconds_sum", "0")) / count * 1000 if count else float("nan")
    return census_ms, scrape_ms


def read_targets(db):
    """Random engagements and random cursors into the listed state's pages."""
    ids = [row[0] for row in db.execute("SELECT id FROM engagements ORDER BY random() LIMIT 10000")]
    listed = [row[0] for row in db.execute(
        f"SELECT id FROM engagements WHERE state = '{LISTED_STATE}' ORDER BY random() LIMIT 2000")]
    return ids, listed


def measure(db, api, pairs, ids, listed):
    one = get_script(api.token, [f"/api/v1/engagements/{e}" for e in ids])
    pages = get_script(api.token, [f"/api/v1/engagements?state={LISTED_STATE}&limit={PAGE}"] + [
        f"/api/v1/engagements?state={LISTED_STATE}&limit={PAGE}&cursor={cursor_of(e)}" for e in listed])
    return {
        "GET /engagements/{id}": wrk_figures(wrk(api.base, one, SECONDS)),
        f"GET /engagements?state={LISTED_STATE}&limit={PAGE}": wrk_figures(wrk(api.base, pages, SECONDS)),
        "POST /engagements/{id}/events": wrk_figures(wrk(
            api.base, transition_script(api.token, fresh_stage1_audits(db, pairs, SECONDS)), SECONDS)),
    }


def create_read_targets(db, ids, listed):
    """The tables pgbench draws its targets from: `bench_reads` (n, e: an engagement) and
    `bench_pages` (n, after: a cursor, ids: the engagements of the page after it)."""
    reads = ",".join(f"({n + 1}, '{e}')" for n, e in enumerate(ids))
    cursors = ",".join(f"({n + 1}, '{e}'::uuid)" for n, e in enumerate(listed))
    db.execute(
        f"CREATE TABLE bench_reads (n int PRIMARY KEY, e uuid); INSERT INTO bench_reads VALUES {reads}; "
        "CREATE TABLE bench_pages (n int PRIMARY KEY, after uuid, ids uuid[]); "
        "INSERT INTO bench_pages SELECT c.n, c.after, (SELECT coalesce(array_agg(id), '{}') FROM (SELECT id FROM engagements "
        f"WHERE state = '{LISTED_STATE}' AND id > c.after ORDER BY id LIMIT {PAGE}) p) "
        f"FROM (VALUES {cursors}) AS c(n, after); ANALYZE bench_reads; ANALYZE bench_pages; SELECT 1")


def ceilings(db, ids, listed):
    """PostgreSQL alone (pgbench) running the statements of the two reads: (reads/s, pages/s)."""
    create_read_targets(db, ids, listed)
    try:
        reads, _ = pgbench(db, f"\\set n random(1, {len(ids)})\nSELECT e FROM bench_reads WHERE n = :n \\gset\n"
                              f"{PGBENCH_READ_STATEMENT}\n", SECONDS)
        pages, _ = pgbench(db, f"\\set n random(1, {len(listed)})\n"
                              f"SELECT after, ids FROM bench_pages WHERE n = :n \\gset\n{PGBENCH_PAGE_STATEMENTS}", SECONDS)
        return pgbench_figures(reads)[0], pgbench_figures(pages)[0]
    finally:
        db.execute("DROP TABLE bench_reads; DROP TABLE bench_pages; SELECT 1")


def sqlite_worker(path, seconds, ids, listed, pages, counter):
    """One process of the SQLite ceiling: the statements of one of the two reads, as fast as it can."""
    import random
    import sqlite3
    connection = sqlite3.connect(path, check_same_thread=False)
    # The API's memory map, so both read the file the same way.
    connection.execute(f"PRAGMA mmap_size = {int(os.environ.get('SQLITE_MMAP_SIZE', '0'))}")
    as_blob = [uuid.UUID(e).bytes for e in (listed if pages else ids)]
    done, deadline = 0, time.time() + seconds
    while time.time() < deadline:
        target = random.choice(as_blob)
        if pages:
            page = connection.execute("SELECT * FROM engagements WHERE state = ? AND id > ? ORDER BY id LIMIT ?",
                                      (LISTED_STATE, target, PAGE + 1)).fetchall()
            ids_of_page = [row[0] for row in page[:PAGE]]
            connection.execute(f"SELECT * FROM deadlines WHERE engagement_id IN ({','.join('?' * len(ids_of_page))}) "
                               "AND status = ?", (*ids_of_page, "open")).fetchall()
        else:
            connection.execute(PGBENCH_READ_STATEMENT.replace(":e", "?"), (target,)).fetchall()
        done += 1
    counter.put(done)


def sqlite_ceilings(db, ids, listed):
    """SQLite alone running the statements of the two reads (reads/s, pages/s): one process per
    core, each with its own connection, through Python's sqlite3 module. Python builds an object
    for every value it reads, as the API does, but its interpreter is slower than the API's
    code: this is a floor of what SQLite itself can serve here, not its exact ceiling."""
    import multiprocessing
    figures = []
    for pages in (False, True):
        counter = multiprocessing.Queue()
        workers = [multiprocessing.Process(target=sqlite_worker, args=(db.path, SECONDS, ids, listed, pages, counter))
                   for _ in range(os.cpu_count())]
        for worker in workers:
            worker.start()
        total = sum(counter.get() for _ in workers)
        for worker in workers:
            worker.join()
        figures.append(total / SECONDS)
    return tuple(figures)


def main():
    binary = release_binary()
    rows = []
    censuses = []
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
                figures = measure(db, api, pairs, ids, listed)
                rss, process_peak = api.memory()
                rss_file, rss_own = api.file_backed(), api.own()
                peak = max(peak, process_peak)
                # The database alone, with the API stopped: on PostgreSQL pgbench's clients and the
                # API's pools would not fit in its 100 connections together, and an idle API would
                # only share the cores.
                api.stop()
                ceiling = ceilings(db, ids, listed) if backend == "postgres" else sqlite_ceilings(db, ids, listed)
                api = Api(binary, db)
                census_ms, scrape_ms = census_and_scrape(api)
                print(f"{backend} {total}: census {census_ms:.1f} ms, scrape {scrape_ms:.2f} ms", file=sys.stderr)
                censuses.append((backend, total, census_ms, scrape_ms))
                rows.append((backend, total, figures, (rss, rss_file, rss_own), ceiling))
                print(backend, total, figures, f"RSS {rss:.0f} MB ({rss_file:.0f} MB file-backed, {rss_own:.0f} MB own)",
                      f"ceilings {ceiling}", file=sys.stderr)
            peak = max(peak, api.memory()[1])
            rows.append((backend, None, None, (peak, None, None), None))
        finally:
            api.stop()
            db.drop()

    print(f"\n{CLIENTS} clients, {SECONDS} s per figure; requests/s (p50 / p99)\n")
    operations = list(rows[0][2])
    print("| database (API pool) | engagements | " + " | ".join(operations)
          + " | API RSS after | of it the API's own (anonymous) | of it mapped files |")
    print("|---|---|" + "---|" * len(operations) + "---|---|---|")
    for backend, total, figures, (rss, rss_file, rss_own), _ in rows:
        if figures is None:
            print(f"| {backend} ({pool_of(backend)}) | peak over the run | " + " | " * len(operations) + f"{rss:.0f} MB | | |")
            continue
        cells = []
        for operation in operations:
            rps, latency, non_2xx, errors = figures[operation]
            cell = f"{rps:,.0f} ({latency['50']} / {latency['99']})"
            if non_2xx or errors:
                cell += f" non-2xx {non_2xx}, errors {errors}"
            cells.append(cell)
        print(f"| {backend} ({pool_of(backend)}) | {total:,} | " + " | ".join(cells)
              + f" | {rss:.0f} MB | {rss_own:.0f} MB | {rss_file:.0f} MB |")

    print("\n/metrics at each size: the census the API takes at its start and every 60 s, and a scrape "
          "(mean of 20):\n")
    print("| database | engagements | census (3 grouped counts) | scrape |")
    print("|---|---|---|---|")
    for backend, total, census_ms, scrape_ms in censuses:
        print(f"| {backend} | {total:,} | {census_ms:.1f} ms | {scrape_ms:.2f} ms |")

    measured = [(backend, total, figures, ceiling) for backend, total, figures, _, ceiling in rows if ceiling]
    if measured:
        print("\nThe reads against the database's own ceiling (the same statements; PostgreSQL: pgbench with the "
              "same clients; SQLite: one Python process per core):\n")
        print("| database | engagements | GET /engagements/{id}: API | database alone | API / database "
              f"| page of {PAGE}: API | database alone | API / database |")
        print("|---|---|---|---|---|---|---|---|")
        for backend, total, figures, (reads, pages) in measured:
            one, page = figures["GET /engagements/{id}"][0], figures[operations[1]][0]
            print(f"| {backend} | {total:,} | {one:,.0f} | {reads:,.0f} | {one / reads:.0%} "
                  f"| {page:,.0f} | {pages:,.0f} | {page / pages:.0%} |")


if __name__ == "__main__":
    main()
