#!/usr/bin/env python3
"""PostgreSQL's own ceiling for a page of the engagement list, statement by statement.

    python3 api/benches/page_ceiling.py      (needs pgbench; about 3 minutes)

Over one fresh PostgreSQL database of SIZE engagements (100,000: the read-path target's size),
grown as growth.py grows it (each engagement with one open deadline), pgbench runs with the API
stopped and the same 64 clients, for SECONDS each, from the cheapest statement PostgreSQL can
answer to what a page of 50 engagements needs:
- `SELECT 1`: the round trip alone;
- one engagement with its open deadlines (what `GET /engagements/{id}` reads);
- the ids of a page (51 ids from the `(state, id)` keyset, nothing else);
- the engagement rows of a page, without their deadlines;
- the rows with their open deadlines, joined in one statement;
- the same in the API's two statements (the page, then the deadlines of its ids);
- the page's JSON built by PostgreSQL itself (`json_agg`), so that a client would only pass it on.
Every page starts at a random cursor into the listed state. If the statements a page needs are
below 10,000/s here with the API stopped, no client of this database serves 10,000 pages/s on
this machine: the API, the load tool and PostgreSQL share its two cores.

Environment: SIZE (100000), SECONDS (10), CLIENTS (64), BENCH_POSTGRES_URL.
"""

import os

import growth
from benchlib import CLIENTS, Api, Database, pgbench, pgbench_figures, release_binary, seed_stage1

SIZE = int(os.environ.get("SIZE", "100000"))
SECONDS = int(os.environ.get("SECONDS", "10"))
STATE = growth.LISTED_STATE
PAGE = growth.PAGE


def variants(reads, pages):
    """(label, pgbench script) from the cheapest statement to what a page needs."""
    engagement = f"\\set n random(1, {reads})\n"
    cursor = f"\\set n random(1, {pages})\n"
    after = "(SELECT after FROM bench_pages WHERE n = :n)"
    page = f"SELECT * FROM engagements WHERE state = '{STATE}' AND id > {after} ORDER BY id LIMIT {PAGE + 1}"
    return [
        ("`SELECT 1` (the round trip alone)", "SELECT 1;"),
        ("one engagement with its open deadlines (`GET /engagements/{id}`)",
         engagement + "SELECT * FROM engagements e LEFT JOIN deadlines d ON d.engagement_id = e.id "
         "AND d.status = 'open' WHERE e.id = (SELECT e FROM bench_reads WHERE n = :n);"),
        ("a page: its 51 ids only",
         cursor + f"SELECT id FROM engagements WHERE state = '{STATE}' AND id > {after} ORDER BY id LIMIT {PAGE + 1};"),
        ("a page: its engagement rows, without deadlines", cursor + page + ";"),
        ("a page: rows and open deadlines, one statement (join)",
         cursor + f"SELECT * FROM ({page}) e LEFT JOIN deadlines d ON d.engagement_id = e.id AND d.status = 'open';"),
        ("a page: rows and open deadlines, the API's two statements",
         cursor + "SELECT after, ids FROM bench_pages WHERE n = :n \\gset\n" + growth.PGBENCH_PAGE_STATEMENTS),
        ("a page: its JSON built by PostgreSQL (`json_agg`)",
         cursor + "SELECT json_agg(json_build_object('engagement', e, 'open_deadlines', (SELECT json_agg(d) "
         "FROM deadlines d WHERE d.engagement_id = e.id AND d.status = 'open'))) " + f"FROM ({page}) e;"),
    ]


def main():
    binary = release_binary()
    db = Database("postgres", "page_ceiling")
    api = Api(binary, db)
    try:
        pairs, _, _ = seed_stage1(api, 256)
        growth.grow(db, pairs[0][0], SIZE - 256, 0)
        api.stop()
        ids, listed = growth.read_targets(db)
        growth.create_read_targets(db, ids, listed)
        print(f"\nPostgreSQL alone, {SIZE:,} engagements, {CLIENTS} pgbench clients, {SECONDS} s each\n")
        print("| statements | per second | latency average | p99 |")
        print("|---|---|---|---|")
        for label, script in variants(len(ids), len(listed)):
            out, p99 = pgbench(db, script + "\n", SECONDS)
            tps, average = pgbench_figures(out)
            print(f"| {label} | {tps:,.0f} | {average} | {p99:.1f} ms |", flush=True)
    finally:
        db.drop()


if __name__ == "__main__":
    main()
