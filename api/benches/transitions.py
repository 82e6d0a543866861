#!/usr/bin/env python3
"""Transition throughput on PostgreSQL: the API against the database's own ceiling.

    python3 api/benches/transitions.py      (needs wrk and pgbench; see the README's Benchmark)

1. Builds the release `certflow`, creates a fresh PostgreSQL database and starts the API on it.
2. Seeds ENGAGEMENTS engagements in stage 1 (through the API), each with its stage 1 audit.
3. wrk, CLIENTS connections for SECONDS: `POST /api/v1/engagements/{id}/events` recording a
   "not ready" stage 1 outcome on a random engagement (a transition stage1 -> stage1 that locks
   the engagement, reads its facts, closes a deadline, updates the audit, writes the history and
   bumps the version: every request is a full transition).
4. pgbench, the same CLIENTS for SECONDS, running the SQL statements one such transition executes
   (captured from PostgreSQL's statement log) as a custom script, on the same database.
5. Prints the ratio of the two throughputs and the API's latency percentiles.
6. The read path the same way: wrk `GET /api/v1/engagements/{id}` (an engagement with its allowed
   events and open deadlines) against pgbench running that request's SELECTs.

Environment: BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test), ENGAGEMENTS
(256), CLIENTS (64), SECONDS (20), DATABASE_MAX_CONNECTIONS (for the API, default 32).
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
ENGAGEMENTS = int(os.environ.get("ENGAGEMENTS", "256"))
CLIENTS = int(os.environ.get("CLIENTS", "64"))
SECONDS = int(os.environ.get("SECONDS", "20"))
POOL = os.environ.get("DATABASE_MAX_CONNECTIONS", "32")
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "certflow-target"))

# The statements of one `record_stage1_outcome` (not ready) transition, in the order the API runs
# them (PostgreSQL statement log of a real request), with the API's parameters as variables.
PGBENCH_SCRIPT = f"""
\\set n random(1, {ENGAGEMENTS})
SELECT engagement_id AS e, audit_id AS a, organization_id AS o, certification_body_id AS c FROM bench_ids WHERE n = :n \\gset
BEGIN;
SELECT * FROM engagements WHERE id = :e FOR UPDATE;
SELECT * FROM organizations WHERE id = :o LIMIT 1;
SELECT * FROM proposals WHERE engagement_id = :e AND status = 'selected' LIMIT 1;
SELECT * FROM certification_bodies WHERE id = :c LIMIT 1;
SELECT * FROM documents WHERE engagement_id = :e;
SELECT * FROM soa_entries WHERE engagement_id = :e;
SELECT * FROM audits WHERE id = :a LIMIT 1;
SELECT count(*) FROM (SELECT * FROM findings WHERE audit_id = :a AND grade = 'major_nc') AS sub;
SELECT * FROM audits WHERE engagement_id = :e;
SELECT * FROM certificates WHERE engagement_id = :e LIMIT 1;
SELECT count(*) FROM (SELECT * FROM findings WHERE engagement_id = :e AND grade = 'major_nc' AND status = 'open') AS sub;
SELECT count(*) FROM (SELECT * FROM findings WHERE engagement_id = :e AND grade = 'minor_nc' AND status = 'open') AS sub;
UPDATE notifications SET status = 'cancelled' WHERE status = 'pending' AND deadline_id IN (SELECT id FROM deadlines WHERE engagement_id = :e AND kind = 'stage1_validity' AND status = 'open');
UPDATE deadlines SET status = 'cancelled', closed_at = now() WHERE engagement_id = :e AND kind = 'stage1_validity' AND status = 'open';
SELECT * FROM audits WHERE id = :a LIMIT 1;
UPDATE audits SET stage1_outcome = 'not_ready', gaps = '["no internal audit"]', completed_at = now(), updated_at = now() WHERE id = :a RETURNING *;
INSERT INTO engagement_history (id, engagement_id, action, from_state, to_state, actor, reason, evidence, subject_id, occurred_at) VALUES (gen_random_uuid(), :e, 'record_stage1_outcome', 'stage1', 'stage1', 'pgbench@certflow.bench', NULL, '[]', :a, now()) RETURNING *;
UPDATE engagements SET version = version + 1, updated_at = now() WHERE id = :e RETURNING *;
SELECT * FROM deadlines WHERE engagement_id = :e AND status = 'open';
COMMIT;
"""

# The statements of one `GET /api/v1/engagements/{id}` (the tenancy-filtered engagement, then its
# open deadlines), as the API runs them.
PGBENCH_READ = f"""
\\set n random(1, {ENGAGEMENTS})
SELECT engagement_id AS e FROM bench_ids WHERE n = :n \\gset
SELECT * FROM engagements WHERE id = :e LIMIT 1;
SELECT * FROM deadlines WHERE engagement_id = :e AND status = 'open';
"""


def psql(url, sql):
    subprocess.run(["psql", url, "-qAtc", sql], check=True, capture_output=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, token, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def main():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "certflow"], cwd=ROOT, check=True)
    binary = TARGET / "release" / "certflow"
    name = f"bench_transitions_{os.getpid()}"
    server_url, _ = ADMIN_URL.rsplit("/", 1)
    url = f"{server_url}/{name}"
    psql(ADMIN_URL, f'CREATE DATABASE "{name}"')
    port = free_port()
    env = dict(os.environ, DATABASE_URL=url, LISTEN_ADDR=f"127.0.0.1:{port}", WORKER_EMBEDDED="false",
               JWT_SECRET="bench-secret-of-at-least-32-characters-long", RUST_LOG="warn",
               DATABASE_MAX_CONNECTIONS=POOL)
    api = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp())
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/readyz")
                break
            except OSError:
                time.sleep(0.1)
        token = subprocess.run([binary, "token", "--role", "admin", "--sub", "bench@certflow.bench"], env=env,
                               check=True, capture_output=True, text=True).stdout.strip()
        today = time.strftime("%Y-%m-%d")
        org = call(base, token, "POST", "/api/v1/organizations", {
            "legal_name": "Bench Ltd", "isms_scope": "everything", "persons": 120,
            "isms_manager_email": "isms@bench.test", "executive_email": "ceo@bench.test"})["id"]
        cb = call(base, token, "POST", "/api/v1/certification-bodies", {
            "name": "Bench CB", "accredited": True, "accreditation_body": "UKAS",
            "coordinator_email": "coordinator@bench.test"})["id"]
        pairs = []
        for _ in range(ENGAGEMENTS):
            e = call(base, token, "POST", "/api/v1/engagements",
                     {"organization_id": org, "manager_email": "isms@bench.test"})["id"]
            p = call(base, token, "POST", f"/api/v1/engagements/{e}/proposals",
                     {"certification_body_id": cb, "price_minor": 1, "currency": "GBP", "audit_days": 12})["id"]
            call(base, token, "POST", f"/api/v1/engagements/{e}/proposals/{p}/selection", {})
            call(base, token, "POST", f"/api/v1/engagements/{e}/events",
                 {"event": "sign_engagement_letter", "signed_on": today})
            a = call(base, token, "POST", f"/api/v1/engagements/{e}/audits",
                     {"kind": "stage1", "first_day": today, "last_day": today, "lead_auditor": "lead@bench.test"})["id"]
            pairs.append((e, a))
        rows = ",".join(f"({i + 1}, '{e}', '{a}', '{org}', '{cb}')" for i, (e, a) in enumerate(pairs))
        psql(url, "CREATE TABLE bench_ids (n int PRIMARY KEY, engagement_id uuid, audit_id uuid, "
                  f"organization_id uuid, certification_body_id uuid); INSERT INTO bench_ids VALUES {rows}")

        lua = work / "transition.lua"
        lua.write_text(
            "local pairs = {" + ",".join(f'{{"{e}","{a}"}}' for e, a in pairs) + "}\n"
            f'local token = "{token}"\n'
            "request = function()\n"
            "  local p = pairs[math.random(#pairs)]\n"
            '  local body = \'{"event":"record_stage1_outcome","audit_id":"\' .. p[2] .. '
            '\'","outcome":"not_ready","gaps":["no internal audit"]}\'\n'
            '  return wrk.format("POST", "/api/v1/engagements/" .. p[1] .. "/events", '
            '{["Content-Type"]="application/json", ["Authorization"]="Bearer " .. token}, body)\n'
            "end\n")
        api_run = subprocess.run(["wrk", "-t2", f"-c{CLIENTS}", f"-d{SECONDS}s", "--latency", "-s", str(lua), base],
                                 check=True, capture_output=True, text=True).stdout
        script = work / "transition.sql"
        script.write_text(PGBENCH_SCRIPT)
        parsed = urllib.parse.urlparse(url)
        def pgbench(path):
            return subprocess.run(["pgbench", "-n", "-M", "prepared", f"-c{CLIENTS}", "-j2", f"-T{SECONDS}", "-f",
                                   str(path), "-h", parsed.hostname, "-p", str(parsed.port or 5432), "-U",
                                   parsed.username or "postgres", name], check=True, capture_output=True,
                                  text=True).stdout
        db_run = pgbench(script)
        reads = work / "read.lua"
        reads.write_text(
            "local ids = {" + ",".join(f'"{e}"' for e, _ in pairs) + "}\n"
            f'local token = "{token}"\n'
            "request = function()\n"
            '  return wrk.format("GET", "/api/v1/engagements/" .. ids[math.random(#ids)], '
            '{["Authorization"]="Bearer " .. token})\n'
            "end\n")
        api_reads = subprocess.run(["wrk", "-t2", f"-c{CLIENTS}", f"-d{SECONDS}s", "--latency", "-s", str(reads),
                                    base], check=True, capture_output=True, text=True).stdout
        read_script = work / "read.sql"
        read_script.write_text(PGBENCH_READ)
        db_reads = pgbench(read_script)
    finally:
        api.terminate()
        api.wait()
        psql(ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print(api_run, db_run, api_reads, db_reads, sep="\n", file=sys.stderr)
    print(f"\n| {CLIENTS} clients, {SECONDS} s, {ENGAGEMENTS} engagements | per second | latency | API / pgbench |")
    print("|---|---|---|---|")
    for what, api_out, db_out in [("transition (POST .../events)", api_run, db_run),
                                  ("read (GET /engagements/{id})", api_reads, db_reads)]:
        api_rps = float(re.search(r"Requests/sec:\s+([\d.]+)", api_out).group(1))
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", api_out)
        latency = {p: re.search(rf"\s{p}%\s+([\d.]+\w+)", api_out).group(1) for p in ("50", "90", "99")}
        db_tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", db_out).group(1))
        db_latency = re.search(r"latency average = ([\d.]+ ms)", db_out).group(1)
        print(f"| API {what}, pool {POOL} | {api_rps:.0f} | p50 {latency['50']}, p90 {latency['90']}, "
              f"p99 {latency['99']}; non-2xx: {non_2xx.group(1) if non_2xx else 0} | {api_rps / db_tps:.0%} |")
        print(f"| pgbench, the same statements | {db_tps:.0f} | average {db_latency} | |")


if __name__ == "__main__":
    main()
