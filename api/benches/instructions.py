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
5. The webhook worker the same way (`PARTS` has `worker`): the API started plainly, one endpoint
   subscribed to every event (a local receiver answering 200), the worker process under callgrind;
   after MESSAGES / 10 transitions delivered as a warm-up, counts the worker's instructions while
   MESSAGES transitions are made one after another and their messages delivered, until the outbox
   and the messages are drained. Prints the instructions a message and the worker's own functions
   that take most of them. Under callgrind the worker runs some fifty times slower than the API
   makes events, so its passes are full (`WEBHOOK_CONCURRENCY` messages), as under load.

Environment: BACKENDS (postgres,sqlite), PARTS (api,worker), REQUESTS (200), MESSAGES (400), TOP (12),
CERTFLOW_BINARY.
"""

import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (Api, Database, Receiver, drained, fresh_stage1_audits, release_binary,  # noqa: E402
                      seed_stage1, start_worker, stop, wait_until_drained)

REQUESTS = int(os.environ.get("REQUESTS", "200"))
MESSAGES = int(os.environ.get("MESSAGES", "400"))
PARTS = os.environ.get("PARTS", "api,worker").split(",")
TOP = int(os.environ.get("TOP", "12"))
BACKENDS = os.environ.get("BACKENDS", "postgres,sqlite").split(",")
OWN = re.compile(r"^(engine|api|entities|worker)::")


def callgrind(*args):
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def counted(process, out, requests):
    """Instructions of `process` over `requests` (a function sending them, and waiting for what
    they cause): the total, and the profile as `callgrind_annotate` prints it (inclusive)."""
    pid = str(process.pid)
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


class Client:
    """Requests one at a time on one kept-alive connection, as the benchmark token."""

    def __init__(self, api):
        host, port = api.base.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port))
        self.headers = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}

    def send(self, method, path, body=None):
        self.connection.request(method, path, body=None if body is None else json.dumps(body), headers=self.headers)
        response = self.connection.getresponse()
        response.read()
        assert response.status == 200, (method, path, response.status)

    def transitions(self, chosen):
        for engagement, audit in chosen:
            self.send("POST", f"/api/v1/engagements/{engagement}/events",
                      {"event": "record_stage1_outcome", "audit_id": audit, "outcome": "not_ready",
                       "gaps": ["no internal audit"]})


def print_own(annotated, total, count, unit):
    print(f"| certflow's function (inclusive) | instructions a {unit} | share |")
    print("|---|---|---|")
    for name, cost in own_functions(annotated):
        print(f"| `{name}` | {cost / count:,.0f} | {cost / total:.0%} |")


def count_api(binary, backend, folder):
    db = Database(backend, "instructions")
    out = str(folder / f"callgrind.{backend}")
    api = Api(binary, db, wrapper=("valgrind", "--tool=callgrind", "--instr-atstart=no",
                                   f"--callgrind-out-file={out}"))
    try:
        pairs, _, _ = seed_stage1(api, 10)
        audits = fresh_stage1_audits(db, pairs, 1)[:REQUESTS + 20]
        client = Client(api)
        client.transitions(audits[:20])
        total, annotated = counted(api.process, out, lambda: client.transitions(audits[20:20 + REQUESTS]))
        reads, _ = counted(api.process, out, lambda: [client.send("GET", f"/api/v1/engagements/{e}")
                                                      for e, _ in (pairs * (REQUESTS // len(pairs) + 1))[:REQUESTS]])
        print(f"\n{backend}: {total / REQUESTS:,.0f} instructions a transition, "
              f"{reads / REQUESTS:,.0f} a read (GET by id), over {REQUESTS} of each\n")
        print_own(annotated, total, REQUESTS, "transition")
    finally:
        api.stop()
        db.drop()


def count_worker(binary, backend, folder):
    db = Database(backend, "instructions")
    out = str(folder / f"callgrind.worker.{backend}")
    # The receiver listens on loopback; the worker takes the API's settings.
    api = Api(binary, db, extra_env={"WEBHOOK_ALLOW_LOOPBACK": "true"})
    worker = receiver = None
    try:
        pairs, org, _ = seed_stage1(api, 10)
        warm = MESSAGES // 10
        audits = fresh_stage1_audits(db, pairs, 1)[:warm + MESSAGES]
        receiver = Receiver()
        api.call("POST", "/api/v1/webhook-endpoints", {"url": receiver.url, "organization_id": org})
        worker = start_worker(binary, api, wrapper=("valgrind", "--tool=callgrind", "--instr-atstart=no",
                                                      f"--callgrind-out-file={out}"))
        client = Client(api)

        def delivered(count):
            client.transitions(audits[count[0]:count[1]])
            wait_until_drained(db, time.monotonic(), 600)
            assert drained(db), "the worker did not deliver within 10 minutes"

        delivered((0, warm))
        before = receiver.count
        total, annotated = counted(worker, out, lambda: delivered((warm, warm + MESSAGES)))
        received = receiver.count - before
        assert received == MESSAGES, (received, MESSAGES)
        print(f"\n{backend}: the worker's {total / MESSAGES:,.0f} instructions a message, over {MESSAGES} "
              f"(each made, signed, sent and logged)\n")
        print_own(annotated, total, MESSAGES, "message")
    finally:
        stop(worker)
        if receiver is not None:
            receiver.stop()
        api.stop()
        db.drop()


def main():
    binary = release_binary()
    folder = Path(tempfile.mkdtemp())
    for backend in BACKENDS:
        if "api" in PARTS:
            count_api(binary, backend, folder)
        if "worker" in PARTS:
            count_worker(binary, backend, folder)

if __name__ == "__main__":
    main()
