"""The scaling cases (issue 17).

`scaling`: SCALING_BUILDS container builds of a fixed length (`sleep 2`) pushed at once through
1, 2 and 4 worker processes (SCALING_WORKERS), each with SCALING_CONCURRENCY slots: builds/min,
queue wait percentiles (`started_at - queued_at` from Postgres), the Postgres connections of
each service, and where the machine's CPU went (the Docker Engine's share among it).

`idle`: the Postgres load of IDLE_WORKERS idle workers: transactions/s from
`pg_stat_database` over IDLE_SECONDS, against the same figure with no worker, and the
statements seen in `pg_stat_activity` (sampled 10 times a second), by service.

Both stop the stack's own workers for their time and start them again afterwards. Each
worker they start connects with its own `application_name` (`ocelot-worker-N`)."""

import collections
import concurrent.futures
import os
import statistics
import subprocess
import sys
import threading
import time

import measure
from report import Table

FINAL = ("passed", "failed", "errored", "cancelled", "timed_out", "skipped")


def settings():
    env = os.environ.get
    return {
        "builds": int(env("SCALING_BUILDS", "200")),
        "workers": [int(v) for v in env("SCALING_WORKERS", "1 2 4").split()],
        "concurrency": int(env("SCALING_CONCURRENCY", "2")),
        "script": env("SCALING_SCRIPT", "sleep 2"),
        "seconds": float(env("SCALING_SCRIPT_SECONDS", "2")),
        "submitters": int(env("SCALING_SUBMITTERS", "8")),
        "idle_workers": int(env("IDLE_WORKERS", "10")),
        "idle_seconds": float(env("IDLE_SECONDS", "60")),
    }


# --- Postgres --------------------------------------------------------------------------------
class Psql:
    """One long-lived psql session on URL; rows come back as lists of strings."""

    END = "__ocelot_bench_end__"

    def __init__(self, stack, url):
        self.process = subprocess.Popen(
            [os.path.join(stack.pg_bin, "psql"), url, "-qtAX", "-F", "\t"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.lock = threading.Lock()

    def rows(self, sql):
        with self.lock:
            self.process.stdin.write(f"{sql};\n\\echo {self.END}\n")
            self.process.stdin.flush()
            rows = []
            for line in self.process.stdout:
                line = line.rstrip("\n")
                if line == self.END:
                    return rows
                if line:
                    rows.append(line.split("\t"))
        raise measure.RunError("psql ended")

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=10)


class Database:
    """Our database's builds (`ours`), and its statistics read through the `postgres`
    database (`stats`), so that reading them adds nothing to the figures."""

    def __init__(self, stack):
        self.name = stack.database
        self.ours = Psql(stack, stack.database_url)
        self.stats = Psql(stack, f"{stack.pg_server}/postgres")

    def transactions(self):
        rows = self.stats.rows(f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{self.name}'")
        return int(rows[0][0])

    def close(self):
        self.ours.close()
        self.stats.close()


class Activity:
    """Samples pg_stat_activity of our database every EVERY seconds: the peak of connections
    by application_name, and every statement seen (a backend's (pid, query_start) pair)."""

    def __init__(self, db, every=0.1):
        self.db = db
        self.every = every
        self.peak = collections.Counter()
        self.peak_total = 0
        self.last = collections.Counter()
        self.statements = {}  # (pid, query_start) -> (application_name, query)
        self.before = None  # the statements of the first sample: from before the window
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        sql = ("SELECT pid, application_name, coalesce(query_start::text, ''), "
               "left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_activity "
               f"WHERE datname = '{self.db.name}' AND backend_type = 'client backend'")
        while not self.stopped.wait(self.every):
            try:
                rows = self.db.stats.rows(sql)
            except (OSError, measure.RunError, ValueError):
                return
            now = collections.Counter()
            first = self.before is None
            if first:
                self.before = set()
            for row in rows:
                if len(row) < 4:
                    continue
                pid, app, started, query = row[:4]
                now[app] += 1
                if first:
                    self.before.add((pid, started))
                elif started and (pid, started) not in self.before:
                    self.statements[(pid, started)] = (app, query)
            self.last = now
            for app, count in now.items():
                self.peak[app] = max(self.peak[app], count)
            self.peak_total = max(self.peak_total, sum(now.values()))

    def stop(self):
        self.stopped.set()
        self.thread.join()


# --- CPU, by kind of process, from /proc ---------------------------------------------------
def processes_cpu():
    """pid -> (command name, user+system ticks)."""
    snapshot = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        comm = data[data.index("(") + 1:data.rindex(")")]
        fields = data.rsplit(")", 1)[1].split()
        snapshot[int(entry)] = (comm, int(fields[11]) + int(fields[12]))
    return snapshot


def machine_busy_ticks():
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values) - values[3] - values[4]  # less idle and iowait


CPU_GROUPS = (
    ("Docker Engine (dockerd, containerd)", lambda c: c in ("dockerd", "containerd")),
    ("workers", lambda c: c == "ocelot-worker"),
    ("admin", lambda c: c == "ocelot-admin"),
    ("Postgres", lambda c: c == "postgres"),
    ("NATS", lambda c: c == "nats-server"),
)


def cpu_by_group(before, after, seconds):
    """Cores used by each group over SECONDS; what no group claims (the builds' own processes,
    container shims and runc that came and went, the CLI, this driver) is 'other'."""
    tick = os.sysconf("SC_CLK_TCK")
    used = collections.Counter()
    for pid, (comm, ticks) in after[0].items():
        old = before[0].get(pid)
        delta = ticks - (old[1] if old and old[0] == comm else 0)
        group = next((name for name, match in CPU_GROUPS if match(comm)), None)
        if group:
            used[group] += delta
    machine = after[1] - before[1]
    result = {name: used[name] / tick / seconds for name, _ in CPU_GROUPS}
    result["machine"] = machine / tick / seconds
    result["other"] = max(0.0, result["machine"] - sum(used.values()) / tick / seconds)
    return result


def cpu_mark():
    return processes_cpu(), machine_busy_ticks(), time.monotonic()


# --- workers --------------------------------------------------------------------------------
class Workers:
    """Stops the stack's own workers, starts others, and gives the stack its own back."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.own = list(ctx.stack.worker_ids)
        self.started = []
        self.generation = 0
        for name in self.own:
            ctx.stack.stop_worker(name)

    def start(self, count, concurrency):
        self.generation += 1
        stack = self.ctx.stack
        for index in range(1, count + 1):
            name = f"g{self.generation}-worker-{index}"
            stack.start_worker(name, f"bench-{os.getpid()}-g{self.generation}-{index}", concurrency=concurrency,
                               database_url=f"{stack.database_url}?application_name=ocelot-worker-{index}")
            self.started.append(name)
        stack.wait_workers()

    def stop_all(self):
        for name in self.started:
            self.ctx.stack.stop_worker(name)
        self.started = []

    def restore(self):
        self.stop_all()
        stack = self.ctx.stack
        for name in self.own:
            stack.start_worker(name, f"bench-{os.getpid()}-{name}-again")
        stack.wait_workers()


def submit(ctx, repo, count, parallel):
    def one(_):
        return int(subprocess.run(ctx.stack.cli("build", "-r", repo, "-b", "main", "--no-follow"),
                                  env=ctx.stack.cli_env, check=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True).stdout.strip())

    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, range(count)))


def wait_finished(ctx, db, ids):
    started = time.monotonic()
    listed = ",".join(str(i) for i in ids)
    states = ",".join(f"'{s}'" for s in FINAL)
    while True:
        done = int(db.ours.rows(
            f"SELECT count(*) FROM builds WHERE id IN ({listed}) AND state IN ({states})")[0][0])
        if done == len(ids):
            return
        if time.monotonic() - started > ctx.timeout:
            raise measure.RunError(f"scaling: {len(ids) - done} of {len(ids)} builds not finished after "
                                   f"{ctx.timeout:.0f} s")
        ctx.stack.check_alive()
        time.sleep(0.5)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


# --- scaling --------------------------------------------------------------------------------
def scaling(ctx):
    cfg = settings()
    repo = ctx.repo("scaling", cfg["script"])
    db = Database(ctx.stack)
    workers = Workers(ctx)
    results = []
    try:
        for count in cfg["workers"]:
            if results and ctx.time_left() < 0:
                break
            print(f"[bench] scaling: {count} worker(s) × {cfg['concurrency']} slots …", file=sys.stderr,
                  flush=True)
            workers.start(count, cfg["concurrency"])
            # one untimed build per slot: each worker has its mirror and its warm container
            wait_finished(ctx, db, submit(ctx, repo, count * cfg["concurrency"], cfg["submitters"]))
            results.append(one_configuration(ctx, db, repo, count, cfg))
            workers.stop_all()
    finally:
        db.close()
        workers.restore()
    return tables(cfg, results)


def one_configuration(ctx, db, repo, count, cfg):
    activity = Activity(db, every=0.5)
    before = cpu_mark()
    submit_started = time.monotonic()
    ids = submit(ctx, repo, cfg["builds"], cfg["submitters"])
    submitted = time.monotonic() - submit_started
    wait_finished(ctx, db, ids)
    after = cpu_mark()
    activity.stop()
    rows = db.ours.rows("SELECT state, attempt, extract(epoch FROM queued_at), extract(epoch FROM started_at), "
                        f"extract(epoch FROM finished_at) FROM builds WHERE id IN ({','.join(map(str, ids))})")
    failed = [r for r in rows if r[0] != "passed"]
    if failed:
        raise measure.RunError(f"scaling: {len(failed)} of {len(rows)} builds did not pass ({failed[0][0]})")
    queued = [float(r[2]) for r in rows]
    started = [float(r[3]) for r in rows]
    finished = [float(r[4]) for r in rows]
    total = max(finished) - min(queued)
    waits = [s - q for q, s in zip(queued, started)]
    runs = [f - s for s, f in zip(started, finished)]
    slots = count * cfg["concurrency"]
    per_worker = [n for app, n in activity.last.items() if app.startswith("ocelot-worker")]
    return {
        "workers": count,
        "slots": slots,
        "builds": len(rows),
        "retried": sum(1 for r in rows if int(r[1]) > 1),
        "per_minute": len(rows) * 60 / total,
        "ideal": slots * 60 / cfg["seconds"],
        "waits": [percentile(waits, p) for p in (50, 90, 99)],
        "runs": (statistics.median(runs), percentile(runs, 90)),
        "busy": sum(runs) / (slots * total),
        "total": total,
        "submitted": submitted,
        "connections": {
            "worker": max(per_worker, default=0),
            "workers": sum(per_worker),
            "admin": activity.last.get("ocelot-admin", 0),
            "hookhandler": activity.last.get("ocelot-hookhandler", 0),
            "total": sum(activity.last.values()),
            "peak": activity.peak_total,
        },
        "cpu": cpu_by_group(before, after, after[2] - before[2]),
    }


def tables(cfg, results):
    script, builds, concurrency = cfg["script"], cfg["builds"], cfg["concurrency"]
    main = Table(f"Scaling: {builds} builds of `{script}` through 1–{max(cfg['workers'])} workers × {concurrency} "
                 f"slots", ["workers × slots", "builds/min", f"ideal (slots × 60 / {cfg['seconds']:g} s)",
                            "of ideal", "queue wait p50 / p90 / p99", "build run time median / p90",
                            "slots busy", "first queued → last finished", "submitting all"])
    for r in results:
        main.row(f"{r['workers']} × {concurrency}", f"{r['per_minute']:.0f}", f"{r['ideal']:.0f}",
                 f"{r['per_minute'] / r['ideal']:.0%}",
                 " / ".join(f"{w:.1f} s" for w in r["waits"]),
                 f"{r['runs'][0]:.2f} s / {r['runs'][1]:.2f} s", f"{r['busy']:.0%}", f"{r['total']:.1f} s",
                 f"{r['submitted']:.1f} s")
    main.note(f"All {builds} builds are queued at once (`ocelot build --no-follow`, {cfg['submitters']} at a time) "
              "after one untimed build per slot; times are Postgres's (`queued_at`, `started_at`, `finished_at`). "
              "Run time: `started_at` → `finished_at` (claim, checkout, container, `sleep`, result). Slots busy: "
              "the builds' run time over slots × the whole time. "
              + "".join(f"{r['retried']} builds ran a second attempt with {r['workers']} workers. "
                        for r in results if r["retried"]))
    connections = Table("Postgres connections at the end of each run (`pg_stat_activity` by `application_name`)",
                        ["workers", "per worker (most)", "all workers", "admin", "hookhandler", "total",
                         "total, peak (sampled 2/s)"])
    for r in results:
        c = r["connections"]
        connections.row(r["workers"], c["worker"], c["workers"], c["admin"], c["hookhandler"], c["total"], c["peak"])
    connections.note("A pool opens connections as its service needs them at once and keeps them (at most "
                     "`--database-pool-size`, default 16, per process).")
    cpu = Table("Where the CPU went during each run (cores used, of 2)",
                ["workers", "machine"] + [name for name, _ in CPU_GROUPS] +
                ["other: the builds' processes, container shims, runc, the CLI"])
    for r in results:
        c = r["cpu"]
        cpu.row(r["workers"], f"{c['machine']:.2f}", *[f"{c[name]:.2f}" for name, _ in CPU_GROUPS], f"{c['other']:.2f}")
    cpu.note("From /proc: user+system time of the processes alive at the end of the run (a process that ended "
             "meanwhile counts as 'other', through the machine's total in /proc/stat).")
    return [main, connections, cpu]


# --- idle -----------------------------------------------------------------------------------
def idle(ctx):
    cfg = settings()
    db = Database(ctx.stack)
    workers = Workers(ctx)
    seconds = cfg["idle_seconds"]
    try:
        time.sleep(5)
        base = idle_window(db, seconds)
        workers.start(cfg["idle_workers"], ctx.stack.concurrency)
        time.sleep(10)  # past start-up (registration, the first sweep and checks)
        loaded = idle_window(db, seconds)
    finally:
        db.close()
        workers.restore()
    count = cfg["idle_workers"]
    table = Table(f"Idle load on Postgres: {count} idle workers on one database, {seconds:.0f} s each",
                  ["", "transactions/s (`pg_stat_database`)", "statements seen/s (`pg_stat_activity`)",
                   "connections"])
    table.row("admin and hookhandler, no worker", f"{base['xacts']:.2f}", f"{base['statements']:.2f}",
              base["connections"])
    table.row(f"the same and {count} idle workers", f"{loaded['xacts']:.2f}", f"{loaded['statements']:.2f}",
              loaded["connections"])
    table.row("per idle worker", f"{(loaded['xacts'] - base['xacts']) / count:.3f}",
              f"{(loaded['statements'] - base['statements']) / count:.3f}",
              f"{(loaded['connections'] - base['connections']) / count:.1f}")
    table.note("Statements: distinct (backend, `query_start`) pairs seen in `pg_stat_activity`, sampled 10 "
               "times a second (a lower bound: two statements of one connection within 0.1 s count once). "
               "Transactions: the delta of `xact_commit + xact_rollback` of the database over the window; "
               "it undercounts here: a connection that only runs `SELECT 1` touches no table, and Postgres "
               "(15) reports its transaction counts only along with table statistics.")
    seen = Table(f"Statements seen at idle, with {count} workers, by service", ["service", "statement", "per second"])
    by = collections.Counter()
    for app, query in loaded["seen"]:
        by[("ocelot-worker" if app.startswith("ocelot-worker") else app, query)] += 1
    for (app, query), n in by.most_common(12):
        seen.row(app or "(none)", f"`{query}`", f"{n / seconds:.3f}")
    if not by:
        seen.row("–", "none", "0")
    return [table, seen]


def idle_window(db, seconds):
    activity = Activity(db, every=0.1)
    first = db.transactions()
    time.sleep(seconds)
    last = db.transactions()
    activity.stop()
    seen = list(activity.statements.values())
    # the sampler also sees each backend's last statement from before the window
    return {
        "xacts": (last - first) / seconds,
        "statements": len(seen) / seconds,
        "connections": sum(activity.last.values()),
        "seen": seen,
    }
