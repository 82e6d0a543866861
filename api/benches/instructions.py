#!/usr/bin/env python3
"""The API's own instructions a request, counted by callgrind: a measure this machine's noise
cannot move.

    python3 api/benches/instructions.py      (needs valgrind; see docs/benchmarks.md)

Throughput on this 2-core machine drifts by a third within minutes, and the API shares its cores
with PostgreSQL and wrk, so a change worth a tenth of the API's CPU is lost in the noise of
`transitions.py`. Valgrind's callgrind counts the instructions a process executes: the same build
and inputs give the same count, whatever else the machine does. This counts the API's user-space
instructions (not the kernel's: a round trip's system calls are not in it) over requests made one
at a time on one kept-alive connection:

1. Builds the release `certflow` (or takes CERTFLOW_BINARY), creates a fresh database (each of
   BACKENDS) and starts the API on it under callgrind, instrumentation off.
2. Seeds 10 engagements in stage 1 through the API, and unfinished stage 1 audits (bulk copies).
3. Warms up with 20 transitions, then counts REQUESTS transitions (`record_stage1_outcome`, not
   ready, as `transitions.py` posts) and REQUESTS reads (`GET /api/v1/engagements/{id}`).
4. Prints the instructions a request and, for transitions, the functions of certflow's own crates
   that take most of them (inclusive: with what they call).

Environment: BACKENDS (postgres,sqlite), REQUESTS (200), TOP (12), CERTFLOW_BINARY.
"""

import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Api, Database, fresh_stage1_audits, release_binary, seed_stage1  # noqa: E402

REQUESTS = int(os.environ.get("REQUESTS", "200"))
TOP = int(os.environ.get("TOP", "12"))
BACKENDS = os.environ.get("BACKENDS", "postgres,sqlite").split(",")
OWN = re.compile(r"^(engine|api|entities|worker)::")


def callgrind(*args):
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def counted(api, out, requests):
    """Instructions over `requests` (a function sending them): the total, and the profile as
    `callgrind_annotate` prints it (inclusive)."""
    pid = str(api.process.pid)
    callgrind("-z", pid)
    callgrind("-i", "on", pid)
    requests()
    callgrind("-i", "off", pid)
    before = set(Path(out).parent.glob(Path(out).name + "*"))
    callgrind("-d", pid)
    dumped = max(set(Path(out).parent.glob(Path(out).name + "*")) - before, key=lambda p: p.stat().st_mtime)
    annotated = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(dumped)], check=True,
                               capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", annotated).group(1).replace(",", ""))
    return total, annotated


def own_functions(annotated):
    """certflow's own functions by inclusive instructions, the most first (async bodies and their
    closures folded into their function)."""
    seen = {}
    for line in annotated.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+\?\?\?:(.*) \[", line)
        if not m:
            continue
        name = re.sub(r"(::\{\{closure\}\})+$", "", m.group(2))
        if OWN.match(name):
            seen[name] = max(seen.get(name, 0), int(m.group(1).replace(",", "")))
    return sorted(seen.items(), key=lambda kv: -kv[1])[:TOP]


def main():
    binary = release_binary()
    folder = Path(tempfile.mkdtemp())
    for backend in BACKENDS:
        db = Database(backend, "instructions")
        out = str(folder / f"callgrind.{backend}")
        api = Api(binary, db, wrapper=("valgrind", "--tool=callgrind", "--instr-atstart=no",
                                       f"--callgrind-out-file={out}"))
        try:
            pairs, _, _ = seed_stage1(api, 10)
            audits = fresh_stage1_audits(db, pairs, 1)[:REQUESTS + 20]
            host, port = api.base.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port))
            headers = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}

            def send(method, path, body=None):
                connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
                response = connection.getresponse()
                response.read()
                assert response.status == 200, (method, path, response.status)

            def transitions(chosen):
                for engagement, audit in chosen:
                    send("POST", f"/api/v1/engagements/{engagement}/events",
                         {"event": "record_stage1_outcome", "audit_id": audit, "outcome": "not_ready",
                          "gaps": ["no internal audit"]})

            transitions(audits[:20])
            total, annotated = counted(api, out, lambda: transitions(audits[20:20 + REQUESTS]))
            reads, _ = counted(api, out, lambda: [send("GET", f"/api/v1/engagements/{e}")
                                                  for e, _ in (pairs * (REQUESTS // len(pairs) + 1))[:REQUESTS]])
            print(f"\n{backend}: {total / REQUESTS:,.0f} instructions a transition, "
                  f"{reads / REQUESTS:,.0f} a read (GET by id), over {REQUESTS} of each\n")
            print("| certflow's function (inclusive) | instructions a transition | share |")
            print("|---|---|---|")
            for name, cost in own_functions(annotated):
                print(f"| `{name}` | {cost / REQUESTS:,.0f} | {cost / total:.0%} |")
        finally:
            api.stop()
            db.drop()


if __name__ == "__main__":
    main()
