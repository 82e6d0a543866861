#!/usr/bin/env python3
"""The peer comparison, re-runnable: certflow on its embedded default answering the three
operations the comparison with CISO Assistant measured, at 16 and 64 connections.

    python3 api/benches/peer.py      (needs wrk; see docs/benchmarks.md)

1. Builds the release `certflow` and starts `certflow serve` on a fresh SQLite file with its
   defaults, the reminder worker embedded (BACKEND=postgres runs it on a fresh PostgreSQL database
   instead; WORKER=off runs the API alone, as the other benches do).
2. Seeds the data shape of the comparison through the API: ENGAGEMENTS engagements of one
   organization with one certification body selected, each in stage 1 with its audit and
   FINDINGS findings recorded on it.
3. wrk, for SECONDS at 16 and then 64 connections, each operation in turn:
   - GET by id: `GET /api/v1/engagements/{id}` of a random engagement;
   - a list of 10: `GET /api/v1/engagements/{id}/findings?limit=10` of a random engagement;
   - a write: `POST /api/v1/engagements/{id}/audits/{audit}/findings` on a random engagement.
4. Prints requests/s, p50 and p99 latency and non-2xx answers of each run, and the API's peak
   resident memory (VmHWM) after each operation, with the part of it that maps files (the binary
   and, on SQLite, the database file through its memory map).
5. What request logging costs: the GET by id at 64 connections again, on a second API with the
   default `RUST_LOG` (one INFO line per request) writing its log to a file, against the first
   (`RUST_LOG=warn`, as every other bench runs), alternated twice; prints both and the log's
   bytes per request.

The peer's figures are not measured here (it needs its own stack): the README states them as
measured elsewhere, beside this script's output.

Environment: BACKEND (sqlite), ENGAGEMENTS (200), FINDINGS (10), SECONDS (10), WORKER (embedded),
CERTFLOW_BINARY (a build to run instead of this checkout's).
"""

import os
import re
import sys
import tempfile

from benchlib import Api, Database, get_script, lua_list, release_binary, seed_stage1, wrk, wrk_figures

BACKEND = os.environ.get("BACKEND", "sqlite")
ENGAGEMENTS = int(os.environ.get("ENGAGEMENTS", "200"))
FINDINGS = int(os.environ.get("FINDINGS", "10"))
SECONDS = int(os.environ.get("SECONDS", "10"))
CONNECTIONS = (16, 64)
# The embedded default runs the worker in the API's process (its memory counts).
WORKER_ENV = {} if os.environ.get("WORKER", "embedded") == "off" else {"WORKER_EMBEDDED": "true"}


def finding_body(n):
    return {"grade": "ofi", "reference": f"A.5.{n % 37 + 1}", "description": "observed during the audit"}


def post_finding_script(token, pairs):
    """wrk: POST a finding on a random engagement's audit."""
    return (
        f"local engagements = {lua_list([e for e, _ in pairs])}\n"
        f"local audits = {lua_list([a for _, a in pairs])}\n"
        f'local token = "{token}"\n'
        "request = function()\n"
        "  local i = math.random(#engagements)\n"
        '  local body = \'{"grade":"ofi","reference":"A.8.13","description":"observed during the audit"}\'\n'
        '  return wrk.format("POST", "/api/v1/engagements/" .. engagements[i] .. "/audits/" .. audits[i] .. "/findings", '
        '{["Content-Type"]="application/json", ["Authorization"]="Bearer " .. token}, body)\n'
        "end\n")


def main():
    binary = release_binary()
    db = Database(BACKEND, "peer")
    api = Api(binary, db, WORKER_ENV)
    rows = []
    logging = []
    try:
        pairs, _, _ = seed_stage1(api, ENGAGEMENTS)
        for e, a in pairs:
            for n in range(FINDINGS):
                api.call("POST", f"/api/v1/engagements/{e}/audits/{a}/findings", finding_body(n))
        operations = [
            ("GET by id", get_script(api.token, [f"/api/v1/engagements/{e}" for e, _ in pairs])),
            ("list of 10", get_script(api.token, [f"/api/v1/engagements/{e}/findings?limit=10" for e, _ in pairs])),
            ("POST a finding", post_finding_script(api.token, pairs)),
        ]
        for name, script in operations:
            for connections in CONNECTIONS:
                out = wrk(api.base, script, SECONDS, connections)
                print(out, file=sys.stderr)
                rps, latency, non_2xx, errors = wrk_figures(out)
                _, peak = api.memory()
                rows.append((name, connections, rps, latency, non_2xx, errors, peak, api.file_backed()))
        # Request logging: the same reads with one INFO line each, written to a file.
        api.stop()
        with tempfile.TemporaryDirectory() as folder:
            for _ in range(2):
                for level in ("warn", "info,sqlx=warn"):
                    log_path = os.path.join(folder, "api.log")
                    with open(log_path, "wb") as log:
                        logged = Api(binary, db, dict(WORKER_ENV, RUST_LOG=level), log)
                        try:
                            out = wrk(logged.base, get_script(logged.token, [f"/api/v1/engagements/{e}" for e, _ in pairs]),
                                      SECONDS, 64)
                        finally:
                            logged.stop()
                    rps = wrk_figures(out)[0]
                    requests = int(re.search(r"(\d+) requests in", out).group(1))
                    logging.append((level, rps, os.path.getsize(log_path) / requests))
    finally:
        api.stop()
        db.drop()

    worker = "the worker embedded" if WORKER_ENV else "the API alone"
    print(f"\ncertflow on {BACKEND} ({worker}), {ENGAGEMENTS} engagements with {FINDINGS} findings each, {SECONDS} s a run\n")
    print("| operation | connections | requests/s | p50 | p99 | non-2xx | peak RSS so far (files mapped at the end) |")
    print("|---|---|---|---|---|---|---|")
    for name, connections, rps, latency, non_2xx, errors, peak, files in rows:
        socket = f"; socket errors: {errors}" if errors else ""
        print(f"| {name} | {connections} | {rps:,.0f} | {latency['50']} | {latency['99']} | {non_2xx}{socket} | "
              f"{peak:.0f} MB ({files:.0f} MB) |")
    print_logging(logging)


def print_logging(logging):
    print("\n| request log | GET by id at 64 connections, requests/s | log bytes a request |")
    print("|---|---|---|")
    for level, rps, per_request in logging:
        print(f"| `RUST_LOG={level}` | {rps:,.0f} | {per_request:.0f} |")


if __name__ == "__main__":
    main()
