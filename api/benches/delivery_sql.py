#!/usr/bin/env python3
"""The webhook worker's SQL on PostgreSQL, its instructions counted by callgrind: what a change of
schema or statement saves the database a message, told apart from this machine's noise.

    python3 api/benches/delivery_sql.py                 (needs valgrind; see docs/benchmarks.md)
    SQL='ALTER TABLE …' python3 api/benches/delivery_sql.py     (the same on a schema changed so)

End to end (`transitions.py`) a change worth a tenth of the worker connection's CPU moves the
hooked rounds' share by under a point, within their noise. Counted, it shows:

1. A PostgreSQL cluster of its own (the machine's binaries, PG_BIN), in a temporary folder, started
   under `valgrind --tool=callgrind --trace-children=yes` on a free port: each server process
   writes its instruction count when it ends. Autovacuum off; `fsync` off (the kernel's part of a
   commit is not counted anyway).
2. `certflow migrate` on it (CERTFLOW_BINARY, or the release build), then SQL (a variant to try).
3. An endpoint subscribed to every event (its owner's key dropped: the model has no
   organization), and (PASSES + 1) * N events queued as the API queues them.
4. One connection makes one pass; another makes PASSES: each a dispatch of N events whose messages
   were all delivered at once, in the statements `engine::webhooks::{dispatch, rows}` send on
   PostgreSQL, in the same transaction: the events read off the queue (`FOR UPDATE SKIP LOCKED`),
   the enabled endpoints read, those written to locked (`FOR KEY SHARE`), the messages inserted
   (`UNNEST`), each with its first attempt, which delivered it (kept in the message's row: no
   attempt row), the events taken off the queue, commit.
5. Prints the second connection's instructions a message past the first's: what a message adds,
   its connection's start and first plans left out.

The arrays are sent as text (psql has no binary binds) and parsed by `array_in`, which sqlx's
binary arrays spare the worker: the figure is higher than the worker connection's own; what a
variant changes of it is what this measures.

Environment: PASSES (20), N (75), SQL (none), PG_BIN (/usr/lib/postgresql/15/bin), CERTFLOW_BINARY.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import SECRET, free_port, release_binary  # noqa: E402

PASSES = int(os.environ.get("PASSES", "20"))
N = int(os.environ.get("N", "75"))
SQL = os.environ.get("SQL", "")
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
ENDPOINT = "11111111-1111-1111-1111-111111111111"
WHEN = "2026-12-04 14:00:00+00"


def as_postgres(command, **kwargs):
    """Runs `command` as the `postgres` user when this is root (the server refuses root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + command, check=True, **kwargs)


def event_id(i):
    return f"00000000-0000-7000-8000-{i:012x}"


def message_id(i):
    return f"00000000-0000-8000-8000-{i:012x}"


def engagement_id(i):
    return f"00000000-0000-0000-0000-{i % 256 + 1:012x}"


def array(values):
    return "'{" + ",".join(values) + "}'"


def setup_sql():
    return f"""
ALTER TABLE webhook_endpoints DROP CONSTRAINT IF EXISTS fk_webhook_endpoints_organization;
INSERT INTO webhook_endpoints (id, organization_id, certification_body_id, url, description, event_types, enabled,
  disabled_reason, secret, previous_secret, previous_secret_expires_at, failing_since, version, created_by,
  created_at, updated_at)
VALUES ('{ENDPOINT}', '22222222-2222-2222-2222-222222222222', NULL, 'http://127.0.0.1:9/', 'model', '[]', true,
  NULL, 'whsec_model', NULL, NULL, NULL, 1, 'admin', '{WHEN}', '{WHEN}');
INSERT INTO webhook_events (id, engagement_id, organization_id, certification_body_id, sequence, event_type, data,
  occurred_at)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
  ('00000000-0000-0000-0000-' || lpad(to_hex(i % 256 + 1), 12, '0'))::uuid, '22222222-2222-2222-2222-222222222222',
  NULL, i, 'engagement.transitioned',
  '{{"transition": {{"from": "stage1", "to": "stage1", "event": "record_stage1_outcome", "actor": "admin"}}}}',
  '{WHEN}'
FROM generate_series(1, {(PASSES + 1) * N}) i;
INSERT INTO webhook_outbox (event_id) SELECT id FROM webhook_events;
ANALYZE webhook_events, webhook_outbox;
"""


def passes_sql(first, count):
    """A connection's script: its server process's id, then `count` passes from pass `first`."""
    columns = ("id, engagement_id, organization_id, certification_body_id, sequence, event_type, "
               "CAST(data AS text) AS data, occurred_at")
    out = [f"""SELECT pg_backend_pid() AS pid, pg_current_wal_insert_lsn() AS lsn \\gset
\\echo PID :pid
PREPARE take AS SELECT {columns} FROM webhook_events WHERE id IN
  (SELECT event_id FROM webhook_outbox ORDER BY event_id LIMIT {N} FOR UPDATE SKIP LOCKED) ORDER BY id;
PREPARE endpoints AS SELECT * FROM webhook_endpoints WHERE enabled = true;
PREPARE told(uuid[]) AS SELECT id FROM webhook_endpoints WHERE id = ANY($1) ORDER BY id FOR KEY SHARE;
PREPARE messages(uuid[], uuid[], uuid[], uuid[], text[], text[], int4[], timestamptz[], timestamptz[], int4[], text[],
  timestamptz[], timestamptz[], timestamptz[], int4[], text[]) AS
INSERT INTO webhook_messages (id, endpoint_id, event_id, engagement_id, event_type, status, attempts, next_attempt_at,
  lease_until, last_response_status, last_error, delivered_at, created_at, updated_at, first_attempt_latency_ms,
  first_attempt_excerpt)
SELECT * FROM UNNEST($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (event_id, endpoint_id) DO NOTHING RETURNING id;
PREPARE off_queue(uuid[]) AS DELETE FROM webhook_outbox WHERE event_id = ANY($1);
\\o /dev/null
"""]
    for p in range(first, first + count):
        ids = range(p * N + 1, (p + 1) * N + 1)
        events, messages = array(map(event_id, ids)), array(map(message_id, ids))
        engagements = array(map(engagement_id, ids))

        def each(value):
            return array([value] * N)
        out.append(f"""BEGIN;
EXECUTE take;
EXECUTE endpoints;
EXECUTE told('{{{ENDPOINT}}}');
EXECUTE messages({messages}, {each(ENDPOINT)}, {events}, {engagements}, {each('engagement.transitioned')},
  {each('delivered')}, {each('1')}, {each(WHEN)}, {each('NULL')}, {each('200')}, {each('NULL')}, {each(WHEN)},
  {each(WHEN)}, {each(WHEN)}, {each('3')}, {each('ok')});
EXECUTE off_queue({events});
COMMIT;
""")
    out.append("\\o\nSELECT pg_current_wal_insert_lsn() - :'lsn' AS wal \\gset\n\\echo WAL :wal\n")
    return "".join(out)


def instructions(folder, pid):
    """The instruction count the server process `pid` wrote when it ended."""
    path = folder / f"callgrind.{pid}"
    for _ in range(120):
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("totals:"):
                    return int(line.split()[1])
        time.sleep(0.5)
    raise SystemExit(f"no count from server process {pid} in {path}")


def main():
    binary = release_binary()
    folder = Path(tempfile.mkdtemp(prefix="delivery-sql-"))
    shutil.chown(folder, "postgres") if os.geteuid() == 0 else None
    data, port = folder / "data", free_port()
    as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"], capture_output=True)
    server = subprocess.Popen(
        (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])
        + ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={folder}/callgrind.%p",
           str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder),
           "-c", "listen_addresses=127.0.0.1", "-c", "autovacuum=off", "-c", "fsync=off",
           "-c", "shared_buffers=128MB"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgres://postgres@127.0.0.1:{port}/postgres"
    try:
        for _ in range(240):
            if subprocess.run(["psql", url, "-qAtc", "SELECT 1"], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        subprocess.run([str(binary), "migrate"], env={**os.environ, "DATABASE_URL": url, "JWT_SECRET": SECRET},
                       check=True, capture_output=True)
        run = lambda sql: subprocess.run(["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1"], input=sql, check=True,
                                         capture_output=True, text=True).stdout
        if SQL:
            run(SQL)
        run(setup_sql())
        counts, wal = [], []
        for first, count in [(0, 1), (1, PASSES)]:
            said = dict(line.split(maxsplit=1) for line in run(passes_sql(first, count)).splitlines()
                        if line.startswith(("PID", "WAL")))
            counts.append(instructions(folder, said["PID"]))
            wal.append(float(said["WAL"]))
        left = run("SELECT count(*) FROM webhook_outbox").strip()
        made = run("SELECT count(*) FROM webhook_messages").strip()
        if left != "0" or made != str((PASSES + 1) * N):
            raise SystemExit(f"the model went wrong: {made} messages made, {left} events left queued")
        per_message = (counts[1] - counts[0]) / ((PASSES - 1) * N)
        print(f"{made} messages, {PASSES + 1} passes of {N}; {'SQL: ' + SQL if SQL else 'the schema as migrated'}")
        print(f"the worker connection's instructions a message (past its first pass): {per_message:,.0f}; "
              f"WAL written a message: {(wal[1] - wal[0]) / ((PASSES - 1) * N):,.0f} bytes")
    finally:
        server.terminate()
        server.wait(timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
