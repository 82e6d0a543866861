#!/usr/bin/env python3
"""The console's pages at size: a certification body's portfolio and an engagement page.

    python3 api/benches/console_pages.py      (needs wrk; see docs/benchmarks.md)

For each backend, one API process (release build) over a fresh database of SIZE engagements
(default 1,000,000), of which PORTFOLIO (default 10,000) are one certification body's and the rest
another's. Each engagement has one open deadline, of a kind and due date drawn at random (a
corrective action plan or action, a major's 6-month limit, a surveillance, a certificate's expiry,
a suspension's limit; from 60 days ago to 120 days ahead), and one history entry; one of the body's
engagements has HISTORY (default 200) history entries. A coordinator of the body, signed in (a
session row, as the emailed link opens one), then asks with wrk at CLIENTS (default 16)
connections for SECONDS each:
- `GET /` (the portfolio: six sections of deadlines and audits, failed emails, engagements by state
  and the first page of them), as the API keeps it between visits (`PORTFOLIO_KEEP_SECONDS`), and
  read afresh on every visit (a second API over the same database with `PORTFOLIO_KEEP_SECONDS=0`:
  what the first visit after a change costs);
- `GET /engagements/{id}` (the engagement with HISTORY timeline entries).
It prints requests/s, p50/p99 and each page's size, and the plans of the portfolio's statements
over the deadlines (EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on SQLite).

Environment: BACKENDS (postgres,sqlite), SIZE, PORTFOLIO, HISTORY, CLIENTS (16), SECONDS (10),
BENCH_POSTGRES_URL.
"""

import hashlib
import os
import sys
import time
import urllib.request

os.environ.setdefault("CLIENTS", "16")

from benchlib import (Api, Database, copies, id_literal, new_id, release_binary, seed_stage1, series, wrk,  # noqa: E402
                      wrk_figures, CLIENTS)
from growth import grow  # noqa: E402

BACKENDS = os.environ.get("BACKENDS", "postgres,sqlite").split(",")
SIZE = int(os.environ.get("SIZE", "1000000"))
PORTFOLIO = int(os.environ.get("PORTFOLIO", "10000"))
HISTORY = int(os.environ.get("HISTORY", "200"))
SECONDS = int(os.environ.get("SECONDS", "10"))
SESSION = "bench-console-session-token"
KINDS = ["corrective_action_plan_due", "corrective_action_due", "major_nc_limit", "surveillance_due",
         "certificate_expiry", "suspension_limit"]


def random_below(db, n):
    return f"floor(random() * {n})::int" if db.backend == "postgres" else f"(abs(random()) % {n})"


def today_plus(db, days_sql):
    return f"current_date + {days_sql}" if db.backend == "postgres" else f"date('now', ({days_sql}) || ' days')"


def shape(db, body, other_body, engagement):
    """The body's PORTFOLIO engagements (the seeded one among them), the rest another body's; the
    deadlines spread over kinds and days."""
    kind = "CASE " + random_below(db, len(KINDS)) + " " + " ".join(
        f"WHEN {n} THEN '{k}'" for n, k in enumerate(KINDS)) + " END"
    body_id, other_id = id_literal(db, body), id_literal(db, other_body)
    db.execute(
        f"UPDATE engagements SET certification_body_id = {other_id};\n"
        f"UPDATE engagements SET certification_body_id = {body_id} WHERE id IN (SELECT id FROM engagements "
        f"WHERE id <> {id_literal(db, engagement)} ORDER BY id LIMIT {PORTFOLIO - 1}) OR id = {id_literal(db, engagement)};\n"
        f"UPDATE deadlines SET kind = {kind}, due_on = {today_plus(db, random_below(db, 180) + ' - 60')}, "
        "certification_body_id = (SELECT certification_body_id FROM engagements WHERE engagements.id = "
        "deadlines.engagement_id);\n"
        + "".join(f"UPDATE {table} SET certification_body_id = (SELECT certification_body_id FROM engagements "
                  f"WHERE engagements.id = {table}.engagement_id);\n" for table in ("audits", "notifications"))
        + ("VACUUM ANALYZE;\n" if db.backend == "postgres" else "ANALYZE;\n")
        + f"SELECT count(*) FROM engagements WHERE certification_body_id = {body_id};\n")
    return int(db.execute(f"SELECT count(*) FROM engagements WHERE certification_body_id = {body_id}")[0][0])


def long_history(db, engagement):
    e = id_literal(db, engagement)
    db.execute(copies(db, "engagement_history", {"id": new_id(db)},
                      f"{series(db, HISTORY - 1)} CROSS JOIN (SELECT * FROM engagement_history "
                      f"WHERE engagement_id = {e} LIMIT 1) t") + ";\nSELECT 1")
    return int(db.execute(f"SELECT count(*) FROM engagement_history WHERE engagement_id = {e}")[0][0])


def sign_in(db, api, body):
    """A coordinator of `body` in the directory, and a session of theirs (as a redeemed link opens)."""
    person = api.call("POST", "/api/v1/people", {"email": "ana@bench.test", "name": "Ana Coordinator",
                                                 "role": "coordinator", "certification_body_id": body})["id"]
    token_hash = hashlib.sha256(SESSION.encode()).hexdigest()
    later = ("created_at + interval '1 year'" if db.backend == "postgres"
             else "replace(created_at, substr(created_at, 1, 4), '2099')")
    db.execute(f"INSERT INTO sessions (id, token_hash, person_id, created_at, expires_at) SELECT {new_id(db)}, "
               f"'{token_hash}', id, created_at, {later} FROM people WHERE id = {id_literal(db, person)};\nSELECT 1")


def cookie_script(path):
    return (f'local path = "{path}"\n'
            "request = function()\n"
            f'  return wrk.format("GET", path, {{["Cookie"]="certflow_session={SESSION}"}})\n'
            "end\n")


def page_size(api, path):
    request = urllib.request.Request(api.base + path, headers={"Cookie": f"certflow_session={SESSION}"})
    with urllib.request.urlopen(request) as response:
        body = response.read()
        assert response.status == 200, response.status
    return len(body)


def plans(db, body):
    """The plans of the portfolio's statements that read many rows, as the API runs them: every
    section's count (one grouped query), a section's first rows (one kind, in the index's order),
    and the engagements by state and organization."""
    b = id_literal(db, body)
    seen = f"certification_body_id = {b}"
    kinds = ", ".join(f"'{k}'" for k in KINDS + ["corrective_action_verification", "restore_after_expiry_limit"])
    statements = [
        f"SELECT kind, count(CASE WHEN due_on < {today_plus(db, '0')} THEN 1 END), "
        f"count(CASE WHEN due_on <= {today_plus(db, '90')} THEN 1 END), count(*) FROM deadlines "
        f"WHERE status = 'open' AND {seen} AND kind IN ({kinds}) GROUP BY kind",
        f"SELECT * FROM deadlines WHERE status = 'open' AND {seen} AND kind = 'surveillance_due' "
        f"AND due_on <= {today_plus(db, '90')} ORDER BY due_on, id LIMIT 26",
        f"SELECT state, organization_id, count(*) FROM engagements WHERE certification_body_id = {b} "
        "GROUP BY state, organization_id",
    ]
    explain = "EXPLAIN (COSTS OFF) " if db.backend == "postgres" else "EXPLAIN QUERY PLAN "
    return [(sql, "\n".join(" | ".join(str(c) for c in row) for row in db.execute(explain + sql)))
            for sql in statements]


def main():
    binary = release_binary()
    rows = []
    for backend in BACKENDS:
        db = Database(backend, "console")
        api = Api(binary, db)
        try:
            pairs, _, body = seed_stage1(api, 16)
            other = api.call("POST", "/api/v1/certification-bodies", {
                "name": "Another CB", "accredited": True, "accreditation_body": "UKAS",
                "coordinator_email": "coordinator@other.test"})["id"]
            started = time.time()
            total = grow(db, pairs[0][0], SIZE - 16, 0)
            portfolio = shape(db, body, other, pairs[0][0])
            history = long_history(db, pairs[0][0])
            print(f"{backend}: {total} engagements, {portfolio} of the body's, {history} history entries "
                  f"({time.time() - started:.0f} s of bulk SQL)", file=sys.stderr)
            sign_in(db, api, body)
            pages = {"GET / (portfolio)": "/", f"GET /engagements/{{id}} ({history} history entries)":
                     f"/engagements/{pairs[0][0]}"}
            for name, path in pages.items():
                size = page_size(api, path)
                figures = wrk_figures(wrk(api.base, cookie_script(path), SECONDS))
                rows.append((backend, total, portfolio, name, figures, size))
                print(backend, name, figures, f"{size} bytes", file=sys.stderr)
            # The same portfolio read afresh on every visit (as the first visit after a change is),
            # by a second API over the same database that keeps no view.
            os.environ["PORTFOLIO_KEEP_SECONDS"] = "0"
            try:
                fresh = Api(binary, db)
            finally:
                del os.environ["PORTFOLIO_KEEP_SECONDS"]
            try:
                name = "GET / (portfolio), read on every visit"
                size = page_size(fresh, "/")
                figures = wrk_figures(wrk(fresh.base, cookie_script("/"), SECONDS))
                rows.append((backend, total, portfolio, name, figures, size))
                print(backend, name, figures, f"{size} bytes", file=sys.stderr)
            finally:
                fresh.stop()
            for sql, plan in plans(db, body):
                print(f"\n{backend}: {sql}\n{plan}")
        finally:
            api.stop()
            db.drop()

    print(f"\n{CLIENTS} clients, {SECONDS} s per figure\n")
    print("| database | engagements (the body's) | page | requests/s | p50 | p99 | page size |")
    print("|---|---|---|---|---|---|---|")
    for backend, total, portfolio, name, (rps, latency, non_2xx, errors), size in rows:
        flag = f" (non-2xx {non_2xx}, errors {errors})" if non_2xx or errors else ""
        print(f"| {backend} | {total:,} ({portfolio:,}) | {name} | {rps:,.0f}{flag} | {latency['50']} "
              f"| {latency['99']} | {size / 1024:.0f} KB |")


if __name__ == "__main__":
    main()
