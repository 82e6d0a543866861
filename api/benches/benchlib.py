"""What the benchmark scripts share: the release binary, a database, the API as a process, seeding
through the API, wrk and pgbench runs and what they print, and the API's memory."""

import base64
import json
import os
import resource
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
CLIENTS = int(os.environ.get("CLIENTS", "64"))
WRK_THREADS = int(os.environ.get("WRK_THREADS", "2"))
# Seconds of the same requests an API process serves before a run of it is measured.
WARM_UP = int(os.environ.get("WARM_UP", "3"))
# The API's pool: 32 on PostgreSQL; on SQLite the default (10), since reads in one process gain
# nothing from more connections than cores and each connection keeps its own page and statement
# caches (32 connections took the API to 150-180 MB; 8 gave the same reads faster in 75 MB).
POOL = os.environ.get("DATABASE_MAX_CONNECTIONS")
SECRET = "bench-secret-of-at-least-32-characters-long"
# How the API and pgbench reach PostgreSQL on this same machine: without TLS by default, as a
# deployment with the database on the same host or a private network would; `prefer` (TLS when the
# server offers it, the default of libpq and sqlx) to measure what TLS costs.
SSLMODE = os.environ.get("BENCH_POSTGRES_SSLMODE", "disable")


# The statement of one `GET /api/v1/engagements/{id}` (the engagement joined with its open
# deadlines), as the API runs it, with the engagement as pgbench variable `e`.
PGBENCH_READ_STATEMENT = ("SELECT * FROM engagements e LEFT JOIN deadlines d ON d.engagement_id = e.id "
                          "AND d.status = 'open' WHERE e.id = :e;")


def pool_of(backend):
    return POOL or ("32" if backend == "postgres" else "10")


def release_binary():
    """The release `certflow`, built from this checkout; `CERTFLOW_BINARY` names another one instead
    (an earlier build, to compare two builds in one run)."""
    if os.environ.get("CERTFLOW_BINARY"):
        return Path(os.environ["CERTFLOW_BINARY"])
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "certflow"], cwd=ROOT, check=True)
    metadata = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
    return Path(json.loads(metadata)["target_directory"]) / "release" / "certflow"


def psql(url, sql):
    """Runs `sql` (statements of any length, read from stdin) and returns what it printed."""
    return subprocess.run(["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1"], input=sql, check=True, capture_output=True,
                          text=True).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Database:
    """A fresh PostgreSQL database or SQLite file, dropped or removed at the end."""

    def __init__(self, backend, label):
        self.backend = backend
        self.name = f"bench_{label}_{os.getpid()}"
        if backend == "postgres":
            server, _ = ADMIN_URL.rsplit("/", 1)
            self.url = f"{server}/{self.name}?sslmode={SSLMODE}"
            psql(ADMIN_URL, f'CREATE DATABASE "{self.name}"')
        else:
            self.folder = Path(tempfile.mkdtemp())
            self.path = self.folder / f"{self.name}.db"
            self.url = f"sqlite://{self.path}?mode=rwc"

    def execute(self, sql):
        """Runs statements (a script) and returns the rows of the last one."""
        if self.backend == "postgres":
            out = psql(self.url, sql)
            return [line.split("|") for line in out.splitlines() if line]
        import sqlite3
        with sqlite3.connect(self.path, timeout=30) as connection:
            connection.create_function("time_ordered_id", 2, time_ordered_id)
            *script, last = [s for s in sql.split(";\n") if s.strip()]
            for statement in script:
                connection.execute(statement)
            return [[uuid_text(v) for v in row] for row in connection.execute(last).fetchall()]

    def settle(self):
        """On PostgreSQL, a checkpoint now; returns how many the server has made since its
        statistics were reset. One comes every few minutes under these loads (or with each `CREATE
        DATABASE`) and writes thousands of buffers over a minute or more, and full pages to the WAL
        after it: it landed in one run and not its neighbours at random. A run that begins right
        after one seldom sees the next; the count taken again after the run tells whether it did.
        SQLite: nothing, 0."""
        if self.backend != "postgres":
            return 0
        self.execute("CHECKPOINT")
        return self.checkpoints()

    def checkpoints(self):
        """How many checkpoints PostgreSQL began since its statistics were reset (0 on SQLite)."""
        if self.backend != "postgres":
            return 0
        return int(self.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")[0][0])

    def autovacuums(self):
        """How many autovacuum and autoanalyze runs have ended on this database's tables (0 on
        SQLite): the count taken before and after a run tells how many landed in it."""
        if self.backend != "postgres":
            return 0
        return int(self.execute("SELECT COALESCE(SUM(autovacuum_count + autoanalyze_count), 0) "
                                "FROM pg_stat_user_tables")[0][0])

    def drop(self):
        if self.backend == "postgres":
            psql(ADMIN_URL, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)


class Autovacuum:
    """PostgreSQL's autovacuum on while a benchmark runs (`with Autovacuum():`), as a deployment has
    it, and put back as it was after. This machine's PostgreSQL runs without it (its
    `conf.d/90-ci.conf`): the outbox's index then keeps an entry for every event ever taken from it,
    which each dispatch walks (the worker's PostgreSQL CPU grew by a third over three rounds), and
    every table keeps each old version of its rows. A `VACUUM` of the bench's own making is no
    substitute: one on a table the worker has just emptied records it as empty, and the plans the
    worker's connections make then (a sequential scan) stay until the next `ANALYZE`, which only
    autovacuum makes (a round of it delivered at 830 messages a second, seconds behind)."""

    def __enter__(self):
        self.was = psql(ADMIN_URL, "SHOW autovacuum").strip()
        if self.was != "on":
            psql(ADMIN_URL, "ALTER SYSTEM SET autovacuum = on;\nSELECT pg_reload_conf()")
        return self

    def __exit__(self, *_):
        if self.was != "on":
            psql(ADMIN_URL, "ALTER SYSTEM RESET autovacuum;\nSELECT pg_reload_conf()")


def time_ordered_id(milliseconds, ordinal):
    """The bytes of a UUIDv7 for the `ordinal`-th row of a bulk insert begun at `milliseconds`
    (a thousand rows to the millisecond, the row's place within it in the counter bits)."""
    fields = ((milliseconds + ordinal // 1000) << 80 | 0x7 << 76 | (ordinal % 1000) << 64 | 0b10 << 62
              | random.getrandbits(62))
    return fields.to_bytes(16, "big")


def uuid_text(value):
    """SQLite keeps ids as 16-byte blobs; PostgreSQL prints them as text."""
    return str(uuid.UUID(bytes=value)) if isinstance(value, bytes) and len(value) == 16 else value


def cursor_of(engagement_id):
    """The API's page cursor after `engagement_id` (URL-safe base64 of its 16 bytes)."""
    return base64.urlsafe_b64encode(uuid.UUID(engagement_id).bytes).rstrip(b"=").decode()


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


def time_ordered_id_sql(db, ordinal):
    """An id laid out like the API's UUIDv7 for the `ordinal`-th row of a bulk insert made now:
    the time in milliseconds (a thousand rows to the millisecond), the row's place within its
    millisecond where UUIDv7 keeps a counter, then random bits. Rows inserted later sort later,
    as rows the API creates do, so a page in id order lies in neighbouring table pages as it
    would in production (random ids would scatter every page over the whole table)."""
    now = int(time.time() * 1000)
    if db.backend == "postgres":
        return (f"(lpad(to_hex({now}::bigint + {ordinal} / 1000), 12, '0') || '7' "
                f"|| lpad(to_hex({ordinal} % 1000), 3, '0') || '8' || substr(md5(random()::text), 1, 15))::uuid")
    return f"time_ordered_id({now}, {ordinal})"


def series(db, count):
    if db.backend == "postgres":
        return f"generate_series(1, {count}) AS s(i)"
    return f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count}) SELECT i FROM s) AS s"


def copies(db, table, overrides, source):
    """INSERT ... SELECT: a copy of the template row `t` for every row of `source`, with `overrides`."""
    names = columns(db, table)
    select = ", ".join(overrides.get(name, f"t.{name}") for name in names)
    return f"INSERT INTO {table} ({', '.join(names)}) SELECT {select} FROM {source}"


def fresh_stage1_audits(db, pairs, seconds):
    """Enough unfinished stage 1 audits for `seconds` of transitions at 5,000/s: bulk copies of the
    audit of each pair of `pairs`, then every unfinished one of their engagements, shuffled:
    [(engagement, audit)]. An audit completes one event only, so every transition of a benchmark
    names an audit of its own (see `transition_script`)."""
    each = seconds * 5000 // len(pairs) + 1
    engagements = ",".join(id_literal(db, e) for e, _ in pairs)
    audits = ",".join(id_literal(db, a) for _, a in pairs)
    # Copies are unfinished whatever their template's state: a seeded audit an earlier run completed
    # would otherwise give only completed copies, and its engagement no fresh audit after the first
    # run (a later run then found none left and wrk's script had no target).
    unfinished = {"id": new_id(db), "completed_at": "NULL", "stage1_outcome": "NULL", "gaps": "'[]'"}
    db.execute(copies(db, "audits", unfinished,
                      f"{series(db, each)} CROSS JOIN (SELECT * FROM audits WHERE id IN ({audits})) t") + ";\nSELECT 1")
    fresh = [(e, a) for e, a in db.execute(
        f"SELECT engagement_id, id FROM audits WHERE kind = 'stage1' AND completed_at IS NULL "
        f"AND engagement_id IN ({engagements})")]
    random.shuffle(fresh)
    return fresh


class Api:
    """The release API serving `database`, as a process of its own."""

    def __init__(self, binary, database, extra_env=None, log=None, wrapper=()):
        """`extra_env` overrides the environment; `log` is a file the API's standard output (its
        log lines) goes to, or none (discarded); `wrapper` runs the API under another program
        (valgrind, say)."""
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.env = dict(os.environ, DATABASE_URL=database.url, LISTEN_ADDR=f"127.0.0.1:{port}",
                        WORKER_EMBEDDED="false", JWT_SECRET=SECRET, RUST_LOG="warn",
                        DATABASE_MAX_CONNECTIONS=pool_of(database.backend),
                        # The limiter runs on every request (its cost is measured) but one
                        # benchmark token never reaches its limit.
                        RATE_LIMIT_CALLER_PER_SECOND="1000000", RATE_LIMIT_CALLER_BURST="1000000",
                        RATE_LIMIT_ANONYMOUS_PER_SECOND="1000000", RATE_LIMIT_ANONYMOUS_BURST="1000000")
        self.env.update(extra_env or {})
        self.process = subprocess.Popen([*wrapper, binary, "serve"], env=self.env, stdout=log or subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        for _ in range(3000 if wrapper else 300):
            try:
                urllib.request.urlopen(self.base + "/readyz")
                break
            except OSError:
                time.sleep(0.1)
        self.token = subprocess.run([binary, "token", "--role", "admin", "--sub", "bench@certflow.bench"],
                                    env=self.env, check=True, capture_output=True, text=True).stdout.strip()

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read() or b"null")

    def memory(self):
        """(current RSS, peak RSS) of the API process, in MB."""
        return self._status_mb("VmRSS"), self._status_mb("VmHWM")

    def file_backed(self):
        """The part of the API's current RSS that maps files, in MB: its own binary and, on SQLite,
        the database file each connection reads through its memory map (`mmap_size`). Those are
        pages of the OS's file cache, counted once per connection that touched them; read with
        `pread` instead, the same pages sit in the same cache without counting in the RSS."""
        return self._status_mb("RssFile")

    def own(self):
        """The API's own memory, in MB: its anonymous pages (heap, stacks, the allocator's
        retention), without the files it maps."""
        return self._status_mb("RssAnon")

    def _status_mb(self, key):
        """A memory figure of the API process's `/proc/<pid>/status`, in MB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) / 1024

    def stop(self):
        self.process.terminate()
        self.process.wait()


def seed_stage1(api, count):
    """`count` engagements in stage 1 with their stage 1 audit: [(engagement, audit)], org, cb."""
    today = time.strftime("%Y-%m-%d")
    org = api.call("POST", "/api/v1/organizations", {
        "legal_name": "Bench Ltd", "isms_scope": "everything", "persons": 120,
        "isms_manager_email": "isms@bench.test", "executive_email": "ceo@bench.test"})["id"]
    cb = api.call("POST", "/api/v1/certification-bodies", {
        "name": "Bench CB", "accredited": True, "accreditation_body": "UKAS",
        "coordinator_email": "coordinator@bench.test"})["id"]
    pairs = []
    for _ in range(count):
        e = api.call("POST", "/api/v1/engagements", {"organization_id": org, "manager_email": "isms@bench.test"})["id"]
        p = api.call("POST", f"/api/v1/engagements/{e}/proposals",
                     {"certification_body_id": cb, "price_minor": 1, "currency": "GBP", "audit_days": 12})["id"]
        api.call("POST", f"/api/v1/engagements/{e}/proposals/{p}/selection", {})
        api.call("POST", f"/api/v1/engagements/{e}/events", {"event": "sign_engagement_letter", "signed_on": today})
        a = api.call("POST", f"/api/v1/engagements/{e}/audits",
                     {"kind": "stage1", "first_day": today, "last_day": today, "lead_auditor": "lead@bench.test"})["id"]
        pairs.append((e, a))
    return pairs, org, cb


def lua_list(values):
    return "{" + ",".join(f'"{v}"' for v in values) + "}"


def transition_script(token, pairs):
    """wrk: `record_stage1_outcome` (not ready) on the engagements and unfinished stage 1 audits of
    `pairs`, each pair once (see `fresh_stage1_audits`): wrk's threads walk the list interleaved,
    each from its own start, so no two requests name the same audit. Past the end of the list the
    audits are completed already and the API refuses them (counted as non-2xx)."""
    return (
        f'local packed = "{";".join(f"{e},{a}" for e, a in pairs)}"\n'
        "local targets = {}\n"
        'for e, a in string.gmatch(packed, "([^,;]+),([^;]+)") do targets[#targets + 1] = {e, a} end\n'
        f'local token = "{token}"\n'
        "local threads = 0\n"
        "setup = function(thread)\n"
        "  threads = threads + 1\n"
        "  thread:set(\"first\", threads)\n"
        "end\n"
        "local sent = 0\n"
        "request = function()\n"
        f"  local p = targets[(first - 1 + sent * {WRK_THREADS}) % #targets + 1]\n"
        "  sent = sent + 1\n"
        '  local body = \'{"event":"record_stage1_outcome","audit_id":"\' .. p[2] .. '
        '\'","outcome":"not_ready","gaps":["no internal audit"]}\'\n'
        '  return wrk.format("POST", "/api/v1/engagements/" .. p[1] .. "/events", '
        '{["Content-Type"]="application/json", ["Authorization"]="Bearer " .. token}, body)\n'
        "end\n")


def get_script(token, paths):
    """wrk: GET a random path of `paths`."""
    return (
        f"local paths = {lua_list(paths)}\n"
        f'local token = "{token}"\n'
        "request = function()\n"
        '  return wrk.format("GET", paths[math.random(#paths)], {["Authorization"]="Bearer " .. token})\n'
        "end\n")


def wrk(base, script, seconds, clients=None):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        run = subprocess.run(["wrk", f"-t{WRK_THREADS}", f"-c{clients or CLIENTS}", f"-d{seconds}s", "--latency", "-s",
                              f.name, base], capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"wrk exited with {run.returncode}: {run.stderr.strip() or run.stdout.strip()}")
        return run.stdout
    finally:
        os.unlink(f.name)


def warm_up(api, script):
    """WARM_UP seconds of wrk running `script` on `api`, then a second for the requests it left in
    flight to end. A process just started opens its pools' connections and prepares every
    statement on each in its first requests; pgbench's tps leaves its own connections' opening out
    ("without initial connection time"), and so do the runs measured after this. The pause keeps
    the targets of the run measured next from including one a late request completes meanwhile."""
    if WARM_UP:
        wrk(api.base, script, WARM_UP)
        time.sleep(1)


def stat_of(pid):
    """The fields of `/proc/<pid>/stat` after the process's name (the parent's pid first)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    """The CPU time process `pid` has used, user and system, in seconds."""
    fields = stat_of(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    """The CPU the processes this one started and waited for have used, user and system, in seconds."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk_figures(out):
    """Requests per second, latency percentiles and non-2xx count of a wrk run."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {p: re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1) for p in ("50", "90", "99")}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return rps, latency, int(non_2xx.group(1)) if non_2xx else 0, errors.group(1) if errors else None


def pgbench(db, script, seconds):
    """pgbench's output and its p99 latency in ms (from its per-transaction log)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    parsed = urllib.parse.urlparse(db.url)
    logs = tempfile.mkdtemp()
    try:
        run = subprocess.run(["pgbench", "-n", "-M", "prepared", f"-c{CLIENTS}", "-j2", f"-T{seconds}", "-f", f.name,
                              "-l", "--log-prefix", f"{logs}/tx", "-h", parsed.hostname, "-p",
                              str(parsed.port or 5432), "-U", parsed.username or "postgres", db.name],
                             capture_output=True, text=True, env=dict(os.environ, PGSSLMODE=SSLMODE))
        if run.returncode != 0:
            sys.exit(f"pgbench failed:\n{run.stderr}")
        # Each log line: client, transaction, latency (microseconds), ...
        latencies = sorted(int(line.split()[2]) for log in os.listdir(logs)
                           for line in open(os.path.join(logs, log)))
        return run.stdout, latencies[int(len(latencies) * 0.99)] / 1000
    finally:
        os.unlink(f.name)
        shutil.rmtree(logs)


def pgbench_figures(out):
    """Transactions per second and average latency of a pgbench run."""
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))
    return tps, re.search(r"latency average = ([\d.]+ ms)", out).group(1)


class Receiver:
    """The webhook receiver of `receiver.rs` on 127.0.0.1, a process of its own answering 200 to every
    POST (keep-alive, one thread serving every connection from an epoll loop), counting them; it
    checks nothing (the tests verify signatures).

    Compiled here with `rustc -O` (the standard library only). The receiver is the integrator's and
    would run on their machine; here it shares the two cores with what is measured. A process of
    its own, its CPU is its own (`cpu_seconds(receiver.process.pid)`): 6–7 µs a message. Until
    session 35 it ran a thread a connection (16 µs a message), each asleep in `read` between
    requests, and over loopback the worker's `writev` paid for waking that thread (a sixth of the
    worker's CPU a message): a cost of this receiver, not of certflow's (docs/benchmarks.md, "A
    receiver that wakes no thread a request")."""

    def __init__(self):
        source = Path(__file__).with_name("receiver.rs")
        binary = Path(tempfile.gettempdir()) / f"certflow-bench-receiver-{source.stat().st_mtime_ns}"
        if not binary.exists():
            subprocess.run(["rustc", "--edition", "2024", "-C", "opt-level=3", "-o", str(binary), str(source)],
                           check=True)
        self.process = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(self.process.stdout.readline().split()[1])
        self.url = f"http://127.0.0.1:{port}/hooks"
        self.count_url = f"http://127.0.0.1:{port}/count"

    @property
    def count(self):
        """How many POSTs it has answered."""
        with urllib.request.urlopen(self.count_url) as answer:
            return int(answer.read())

    def stop(self):
        self.process.stdin.close()
        self.process.wait()


def drained(db):
    """Whether every event is dispatched and every message delivered (or failed)."""
    left = db.execute("SELECT (SELECT count(*) FROM webhook_outbox) + "
                      "(SELECT count(*) FROM webhook_messages WHERE status IN ('pending', 'sending'))")
    return int(left[0][0]) == 0


def wait_until_drained(db, since, seconds):
    """Waits until `drained`, or until `seconds` have passed since `since` (a `time.monotonic()`)."""
    while not drained(db) and time.monotonic() - since < seconds:
        time.sleep(0.2)


def start_worker(binary, api, wrapper=()):
    """The worker process alone on `api`'s database and settings, its reminder scan put off (the
    benchmarks measure webhooks), under `wrapper` (valgrind, say) if any."""
    return subprocess.Popen([*wrapper, binary, "worker"], env=dict(api.env, SCAN_SCHEDULE="0 0 0 1 1 * 2099"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process):
    """Ends `process` (if any) and waits for it."""
    if process is not None:
        process.terminate()
        process.wait()
