"""The cases of the suite. Each runs `ocelot build` (or watch) against the stack and the
plain `docker run --rm` of the same image and script, alternating, and returns its tables."""

import concurrent.futures
import json
import os
import subprocess
import tempfile
import time

import load
import measure
import report
import repos
import scaling
from report import Table, secs, side_by_side
from stack import cpu_seconds, rss_kib


class Context:
    """What the cases share: the stack, the settings, the deadline, the repositories made."""

    def __init__(self, stack, settings, deadline):
        self.stack = stack
        self.settings = settings
        self.deadline = deadline
        self.repos = {}
        self.timeout = settings["run_timeout"]

    def runs(self, default):
        return self.settings["runs"] or default

    def repo(self, name, script, files=0):
        if name not in self.repos:
            repos.create(self.stack, name, script, files)
            self.repos[name] = script
            self.warm_up(name)
        return name

    def warm_up(self, name):
        """Builds NAME once on each worker (likely: both at once), so that no measured build
        pays for the first mirror clone; then one plain docker run of the image."""
        processes = [subprocess.Popen(self.stack.cli("build", "-r", name, "-b", "main"), env=self.stack.cli_env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for _ in range(self.stack.workers)]
        for process in processes:
            if process.wait(timeout=self.timeout) != 0:
                raise measure.RunError(f"warm-up build of {name} failed")
        subprocess.run(["docker", "run", "--rm", repos.IMAGE, "true"], check=True, stdout=subprocess.DEVNULL)

    def time_left(self):
        return self.deadline - time.monotonic()

    def alternate(self, runs, sides):
        """Runs each of SIDES (callables) RUNS times, their order rotating per run; stops early
        when the suite's time is up. Returns the number of runs done."""
        for index in range(runs):
            if index > 0 and self.time_left() < 0:
                return index
            turn = index % len(sides)
            for side in sides[turn:] + sides[:turn]:
                side()
                # the workers' after-build work (removing the container, preparing the next)
                # must not fall into the other side's measurement
                time.sleep(self.settings["settle"])
        return runs

    def tmp(self, name):
        return os.path.join(self.stack.dir, name)

    # --- the two ways of running a script -----------------------------------------------
    def ocelot_first_line(self, repo):
        def script_line(raw):
            kind = json.loads(raw)["kind"]
            return kind.get("type") == "line" and kind.get("stream") == "stdout"

        return measure.first_line(self.stack.cli("build", "-r", repo, "-b", "main", "--json"), script_line,
                                  self.timeout, env=self.stack.cli_env)

    def docker_first_line(self, script):
        return measure.first_line(docker_argv(script), lambda _: True, self.timeout)


def docker_argv(script, *options):
    return ["docker", "run", "--rm", *options, repos.IMAGE, "sh", "-c", script]


def done_runs_note(done, planned):
    return None if done == planned else f"Stopped after {done} of {planned} runs: the suite's time was up."


# --- trivial, sleep, files: the whole command and trigger → first script line -------------
def _latency(ctx, title, name, script, runs, files=0, docker=None, note=None):
    repo = ctx.repo(name, script, files)
    ours = {"total": [], "first": []}
    theirs = {"total": [], "first": []}

    def ocelot():
        total, first = ctx.ocelot_first_line(repo)
        ours["total"].append(total)
        ours["first"].append(first)

    def plain():
        total, first = docker() if docker else ctx.docker_first_line(script)
        theirs["total"].append(total)
        theirs["first"].append(first)

    done = ctx.alternate(runs, [ocelot, plain])
    notes = [n for n in (note, done_runs_note(done, runs)) if n]
    return [side_by_side(title, done, [
        ("whole command", ours["total"], theirs["total"]),
        ("trigger → first script line", ours["first"], theirs["first"]),
    ], note=" ".join(notes) or None)]


def trivial(ctx):
    return _latency(ctx, "Trivial build (`echo hi`)", "trivial", "echo hi", ctx.runs(10))


def sleep(ctx):
    return _latency(ctx, "A 5 s build (`echo start; sleep 5`)", "sleep", "echo start; sleep 5", ctx.runs(5))


def files(ctx):
    count = ctx.settings["files"]
    url = f"git://127.0.0.1:{ctx.stack.git_port}/files.git"

    def docker():
        checkout = tempfile.mkdtemp(dir=ctx.stack.dir)
        try:
            return measure.first_line(
                ["sh", "-c", 'git clone -q "$1" "$2/w" && exec docker run --rm -v "$2/w:/workspace" -w /workspace '
                 f'{repos.IMAGE} sh -c "echo hi"', "sh", url, checkout], lambda _: True, ctx.timeout)
        finally:
            subprocess.run(["rm", "-rf", checkout], check=False)

    return _latency(ctx, f"A repository of {count} files (`echo hi`)", "files", "echo hi", ctx.runs(3),
                    files=count, docker=docker,
                    note="Plain side: `git clone` from the same git daemon, then `docker run --rm -v "
                         "checkout:/workspace`. `ocelot build` checks out from the worker's mirror (warm).")


# --- logs: every line to a pipe, checked --------------------------------------------------
def logs(ctx, lines):
    script = f"seq 1 {lines}"
    repo = ctx.repo(f"logs-{lines}", script)
    ours, theirs = [], []
    ours_file, theirs_file = ctx.tmp(f"ocelot-{lines}.out"), ctx.tmp(f"docker-{lines}.out")

    def ocelot():
        ours.append(measure.to_file(ctx.stack.cli("build", "-r", repo, "-b", "main"), ours_file, ctx.timeout,
                                    env=ctx.stack.cli_env))
        measure.check_sequence(ours_file, lines, "ocelot build")

    def plain():
        theirs.append(measure.to_file(docker_argv(script), theirs_file, ctx.timeout))
        measure.check_sequence(theirs_file, lines, "docker run")

    runs = ctx.runs(5 if lines <= 200_000 else 3)
    done = ctx.alternate(runs, [ocelot, plain])
    for path in (ours_file, theirs_file):
        os.unlink(path)
    return [side_by_side(f"{lines} log lines (`{script}`, stdout through a pipe; every line checked, in order)",
                         done, [("whole command", ours, theirs)], unit=secs, note=done_runs_note(done, runs))]


# --- watchers: one flooding build, N `ocelot watch` ----------------------------------------
def watchers(ctx):
    lines = ctx.settings["watch_lines"]
    count = ctx.settings["watchers"]
    script = f"seq 1 {lines}"
    repo = ctx.repo(f"logs-{lines}", script)
    admin = ctx.stack.services["admin"]
    figures = {(side, n): [] for side in ("ocelot", "docker") for n in (1, count)}
    admin_cpu = {1: [], count: []}
    short_docker = []

    def ocelot(n):
        def run():
            cpu = cpu_seconds(admin)
            started = time.monotonic()
            build = subprocess.run(ctx.stack.cli("build", "-r", repo, "-b", "main", "--no-follow"),
                                   env=ctx.stack.cli_env, check=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True).stdout.strip()
            attached = [(measure.spawn_to_file(ctx.stack.cli("watch", build), ctx.tmp(f"watch-{i}.out"),
                                               ctx.stack.cli_env), ctx.tmp(f"watch-{i}.out")) for i in range(n)]
            for process, _ in attached:
                measure.wait_to_file(process, process.args, ctx.timeout, started)
            figures[("ocelot", n)].append(time.monotonic() - started)
            admin_cpu[n].append(cpu_seconds(admin) - cpu)
            for index, (_, path) in enumerate(attached):
                measure.check_sequence(path, lines, f"ocelot watch {build} ({index + 1} of {n})")
                os.unlink(path)
        return run

    def docker(n):
        def run():
            started = time.monotonic()
            container = subprocess.run(["docker", "run", "-d", repos.IMAGE, "sh", "-c", script], check=True,
                                       stdout=subprocess.PIPE, text=True).stdout.strip()
            try:
                attached = [(measure.spawn_to_file(["docker", "logs", "-f", container], ctx.tmp(f"logs-{i}.out")),
                             ctx.tmp(f"logs-{i}.out")) for i in range(n)]
                for process, _ in attached:
                    measure.wait_to_file(process, process.args, ctx.timeout, started)
                figures[("docker", n)].append(time.monotonic() - started)
            finally:
                subprocess.run(["docker", "rm", "-f", container], stdout=subprocess.DEVNULL, check=False)
            # not an error of the suite: `docker logs -f` may stop before the end of the log of
            # a container that exits (Docker Engine 20.10); counted and reported
            for _, path in attached:
                got = measure.count_sequence(path, lines)
                if got < lines:
                    short_docker.append(got)
                os.unlink(path)
        return run

    runs = ctx.runs(3)
    done = ctx.alternate(runs, [ocelot(1), docker(1), ocelot(count), docker(count)])
    table = side_by_side(f"{count} watchers of one flooding build (`{script}`; every watcher's lines checked)",
                         done, [("1 watcher, trigger → last watcher done", figures[("ocelot", 1)],
                                 figures[("docker", 1)]),
                                (f"{count} watchers, trigger → last watcher done", figures[("ocelot", count)],
                                 figures[("docker", count)])], unit=secs,
                         sides=("`ocelot build --no-follow` + `ocelot watch`", "`docker run -d` + `docker logs -f`"),
                         note=" ".join(filter(None, [done_runs_note(done, runs), short_note(short_docker, lines)])))
    cpu = Table(f"Admin CPU for one build of {lines} lines, by watchers",
                ["", "admin CPU (user+sys), median (min–max)", f"{count} watchers / 1 watcher"])
    cpu.row("1 watcher", report.spread(admin_cpu[1], secs), "")
    cpu.row(f"{count} watchers", report.spread(admin_cpu[count], secs), report.ratio(admin_cpu[count], admin_cpu[1]))
    return [table, cpu]


def short_note(short, lines):
    if not short:
        return None
    return (f"`docker logs -f` stopped early {len(short)} times (got {min(short)}–{max(short)} of {lines} lines): "
            f"it ends with the container and can miss the log's tail (Docker Engine 20.10); not a failure "
            f"of the suite, the times stand.")


# --- throughput: N trivial builds through the workers ------------------------------------
def throughput(ctx):
    count = ctx.settings["builds"]
    slots = ctx.stack.workers * ctx.stack.concurrency
    script = "echo hi"
    repo = ctx.repo("batch", script)
    ours, theirs = [], []

    def ocelot():
        started_wall = time.time()
        started = time.monotonic()

        def submit(_):
            return int(subprocess.run(ctx.stack.cli("build", "-r", repo, "-b", "main", "--no-follow"),
                                      env=ctx.stack.cli_env, check=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True).stdout.strip())

        with concurrent.futures.ThreadPoolExecutor(slots) as pool:
            ids = set(pool.map(submit, range(count)))
        finished = wait_builds(ctx, repo, ids, started)
        failed = [b["id"] for b in finished if b["state"] != "passed"]
        if failed:
            raise measure.RunError(f"throughput: builds {failed[:10]} did not pass")
        ours.append(max(b["finished_at_ms"] for b in finished) / 1000 - started_wall)

    def plain():
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(slots) as pool:
            list(pool.map(lambda _: subprocess.run(docker_argv(script), check=True, stdout=subprocess.DEVNULL,
                                                   timeout=ctx.timeout), range(count)))
        theirs.append(time.monotonic() - started)

    runs = ctx.runs(1)
    done = ctx.alternate(runs, [ocelot, plain])
    per_minute = lambda walls: [count * 60 / w for w in walls]
    overhead = [(a - b) * slots / count for a, b in zip(ours, theirs)]
    table = side_by_side(f"{count} trivial builds (`{script}`) through {ctx.stack.workers} workers × "
                         f"{ctx.stack.concurrency} slots", done, [
                             ("trigger of the first → end of the last", ours, theirs),
                         ], unit=secs,
                         note=f"Plain side: {count} × `docker run --rm`, {slots} at a time. Builds are "
                              f"queued with `ocelot build --no-follow`, {slots} at a time; the end is the last "
                              f"build's `finished_at`. " + (done_runs_note(done, runs) or ""))
    table.row("builds/min", report.spread(per_minute(ours), lambda v: f"{v:.0f}"),
              report.spread(per_minute(theirs), lambda v: f"{v:.0f}"),
              report.ratio(per_minute(ours), per_minute(theirs)))
    table.row("scheduling overhead per build (slot time beyond `docker run`)",
              report.spread(overhead) if overhead else "–", "", "")
    return [table]


def wait_builds(ctx, repo, ids, started):
    final = {"passed", "failed", "errored", "cancelled", "timed_out", "skipped"}
    while True:
        listed = json.loads(subprocess.run(
            ctx.stack.cli("status", "-r", repo, "--json", "--limit", str(len(ids) + 50)), env=ctx.stack.cli_env,
            check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout)
        ours = [b for b in listed if b["id"] in ids]
        if len(ours) == len(ids) and all(b["state"] in final for b in ours):
            return ours
        if time.monotonic() - started > ctx.timeout:
            raise measure.RunError(f"throughput: builds not finished after {ctx.timeout:.0f} s")
        ctx.stack.check_alive()
        time.sleep(0.5)


# --- webhook ingest: the repo's own bench binary ------------------------------------------
def webhooks(ctx):
    argv = [ctx.stack.bin("bench-webhooks"), str(ctx.settings["webhook_requests"]),
            str(ctx.settings["webhook_concurrency"])]
    env = dict(os.environ, OCELOT_TEST_DATABASE_URL=os.environ["OCELOT_DATABASE_URL"])
    result = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=ctx.timeout)
    table = Table(f"Webhook ingest (`{os.path.basename(argv[0])} {argv[1]} {argv[2]}`)", ["output"])
    for line in result.stdout.splitlines():
        if "INFO" not in line and "NOTICE" not in line and line.strip():
            table.row(line.strip())
    if result.returncode != 0:
        table.note(f"bench-webhooks exited with {result.returncode}")
    return [table]


# --- RSS: each service idle and under a mixed load ----------------------------------------
def rss(ctx):
    stack = ctx.stack
    lines = ctx.settings["watch_lines"]
    repo = ctx.repo(f"logs-{lines}", f"seq 1 {lines}")
    trivial_repo = ctx.repo("trivial", "echo hi")
    if "hook_secret" not in ctx.settings:
        ctx.settings["hook_secret"] = repos.create_hooks_repo(stack)
    time.sleep(3)
    idle = ctx.settings["sampler"].now()
    with ctx.settings["sampler"].phase("rss: mixed load") as peak:
        load.mixed(ctx, repo, trivial_repo)
    table = Table("Resident memory of each service (VmRSS from /proc, MiB)",
                  ["service", "idle after start", "idle now", "busy (mixed load)", "peak over the run",
                   "busiest case"])
    start = ctx.settings["sampler"].at_start
    for name, pid in stack.services.items():
        _, hwm = rss_kib(pid)
        hwm = max(hwm, ctx.settings["sampler"].highest.get(name, (0, None))[0])
        busiest = ctx.settings["sampler"].busiest(name)
        table.row(name, mib(start.get(name)), mib(idle.get(name)), mib(peak.get(name)), mib(hwm), busiest)
    table.note(f"Mixed load: one build of {lines} lines with 3 `ocelot watch`, "
               f"{2 * stack.workers * stack.concurrency} trivial builds, and {ctx.settings['hook_deliveries']} "
               f"signed webhook deliveries to the hookhandler (ingest only: `--processors 0`), at once.")
    return [table]


# --- recovery: a worker killed mid-build --------------------------------------------------
def recovery(ctx):
    script = "echo start; sleep 15; echo end"
    repo = ctx.repo("slow", script)
    told, retried, ended = [], [], []
    runs = ctx.runs(1)
    done = 0
    for index in range(runs):
        if index > 0 and ctx.time_left() < 0:
            break
        t_told, t_retry, t_end = recover_once(ctx, repo, index)
        told.append(t_told)
        retried.append(t_retry)
        ended.append(t_end)
        done += 1
    table = Table(f"A worker killed mid-build (SIGKILL 4 s into `{script}`) — {done} run{'s' if done != 1 else ''}",
                  ["from the kill to", "median (min–max)"])
    table.row("`ocelot watch` shows the loss (first event after the kill)", report.spread(told, secs))
    table.row("the retry's first script line", report.spread(retried, secs))
    table.row("the build's end", report.spread(ended, secs))
    table.note("No `docker run` counterpart. The killed worker is started again afterwards.")
    return [table]


def recover_once(ctx, repo, index):
    stack = ctx.stack
    build = subprocess.run(stack.cli("build", "-r", repo, "-b", "main", "--no-follow"), env=stack.cli_env,
                           check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip()
    watch = subprocess.Popen(stack.cli("watch", build, "--json"), env=stack.cli_env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    timer = measure._Watchdog(watch, ctx.timeout)
    killed_at = t_told = t_retry = None
    victim = None
    try:
        for raw in watch.stdout:
            event = json.loads(raw)
            kind = event["kind"]
            now = time.monotonic()
            if killed_at is None:
                if kind.get("type") == "line" and kind.get("stream") == "stdout":
                    time.sleep(4)
                    status = json.loads(subprocess.run(stack.cli("status", build, "--json"), env=stack.cli_env,
                                                       check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                                       text=True).stdout)
                    worker = status.get("worker") or status.get("build", {}).get("worker")
                    victim = next(n for n, w in stack.worker_ids.items() if w == worker)
                    stack.kill_worker(victim)
                    killed_at = time.monotonic()
                continue
            if t_told is None:
                t_told = now - killed_at
            if t_retry is None and event.get("attempt", 1) >= 2 and kind.get("type") == "line" \
                    and kind.get("stream") == "stdout":
                t_retry = now - killed_at
        watch.wait()
    finally:
        timer.cancel()
        if watch.poll() is None:
            watch.kill()
    if timer.fired:
        raise measure.RunError(f"recovery: build {build} not done after {ctx.timeout:.0f} s")
    t_end = time.monotonic() - killed_at
    if victim:
        stack.start_worker(victim, f"bench-{os.getpid()}-{victim}-r{index + 1}")
        stack.wait_workers()
    if t_retry is None:
        raise measure.RunError(f"recovery: build {build} showed no line of a second attempt")
    return t_told, t_retry, t_end


def mib(kib):
    return "–" if kib is None else f"{kib / 1024:.1f}"


CASES = {
    "trivial": trivial,
    "sleep": sleep,
    "logs-200k": lambda ctx: logs(ctx, ctx.settings["log_lines"][0]),
    "logs-1m": lambda ctx: logs(ctx, ctx.settings["log_lines"][1]),
    "watchers": watchers,
    "throughput": throughput,
    "files": files,
    "webhooks": webhooks,
    "rss": rss,
    "recovery": recovery,
    "scaling": scaling.scaling,
    "idle": scaling.idle,
}
ALIASES = {"logs": ["logs-200k", "logs-1m"], "builds": ["throughput"], "ingest": ["webhooks"], "5s": ["sleep"]}
