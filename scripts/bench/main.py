"""The benchmark suite's driver (scripts/bench.sh runs it): starts the stack, runs the
selected cases in order, prints each as a Markdown table, stops everything.

    main.py BIN_DIR [CASE ...]      (no CASE: all of them)
    main.py --check-cases [CASE ...]

Settings from the environment (see scripts/bench.sh)."""

import datetime
import os
import platform
import signal
import subprocess
import sys
import time
import traceback

import cases
import load
import measure
from stack import Stack


def settings_from_env():
    env = os.environ.get
    lines = [int(v) for v in env("LOG_LINES", "200000 1000000").split()]
    return {
        "runs": int(env("RUNS", "0")),
        "run_timeout": float(env("BENCH_RUN_TIMEOUT", "600")),
        "settle": float(env("BENCH_SETTLE", "1")),
        "max_minutes": float(env("BENCH_MAX_MINUTES", "60")),
        "log_lines": lines + [1_000_000] * (2 - len(lines)),
        "watch_lines": int(env("WATCH_LINES", "200000")),
        "watchers": int(env("WATCHERS", "20")),
        "builds": int(env("BUILDS", "200")),
        "files": int(env("FILES", "20000")),
        "webhook_requests": int(env("WEBHOOK_REQUESTS", "20000")),
        "webhook_concurrency": int(env("WEBHOOK_CONCURRENCY", "32")),
        "hook_deliveries": int(env("HOOK_DELIVERIES", "2000")),
        "workers": int(env("BENCH_WORKERS", "2")),
        "concurrency": int(env("BENCH_CONCURRENCY", "2")),
    }


def selected(names):
    if not names or names == ["all"]:
        return list(cases.CASES)
    chosen = []
    for name in names:
        for case in cases.ALIASES.get(name, [name]):
            if case not in cases.CASES:
                sys.exit(f"unknown case {name!r}; cases: {', '.join(cases.CASES)} "
                         f"(and {', '.join(cases.ALIASES)})")
            chosen.append(case)
    return [case for case in cases.CASES if case in chosen]


def header(bin_dir, settings, chosen):
    def run(*argv):
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip()
        except OSError:
            return "?"
    commit = run("git", "-C", os.path.dirname(bin_dir), "rev-parse", "--short", "HEAD")
    dirty = " (with uncommitted changes)" if run("git", "-C", os.path.dirname(bin_dir), "status", "--porcelain") else ""
    print(f"## Benchmark suite, {datetime.date.today().isoformat()}\n")
    print(f"- binaries: {bin_dir} (commit {commit}{dirty})")
    print(f"- machine: {platform.platform()}, {os.cpu_count()} cores, Docker Engine "
          f"{run('docker', 'version', '--format', '{{.Server.Version}}')}")
    print(f"- stack: own database, NATS, admin, {settings['workers']} workers × {settings['concurrency']} slots, "
          f"hookhandler, git daemon on loopback; image ocelot/busybox")
    print(f"- cases: {' '.join(chosen)}; RUNS={settings['runs'] or 'per case'}\n", flush=True)


def main():
    if sys.argv[1] == "--check-cases":  # scripts/bench.sh, before it builds anything
        selected(sys.argv[2:])
        return 0
    bin_dir = os.path.abspath(sys.argv[1])
    chosen = selected(sys.argv[2:])
    settings = settings_from_env()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    started = time.monotonic()
    deadline = started + settings["max_minutes"] * 60
    header(bin_dir, settings, chosen)
    stack = Stack(bin_dir, workers=settings["workers"], concurrency=settings["concurrency"])
    failed = []
    try:
        stack.start()
        time.sleep(2)
        sampler = load.Sampler(stack.services)
        settings["sampler"] = sampler
        ctx = cases.Context(stack, settings, deadline)
        for case in chosen:
            if ctx.time_left() < 0:
                print(f"### {case}\n\nskipped: the suite's time (BENCH_MAX_MINUTES={settings['max_minutes']:g}) "
                      f"was up\n", flush=True)
                failed.append(case)
                continue
            print(f"[bench] {case} …", file=sys.stderr, flush=True)
            case_started = time.monotonic()
            try:
                with sampler.phase(case):
                    tables = cases.CASES[case](ctx)
                for table in tables:
                    print(table.text(), flush=True)
            except Exception as error:  # noqa: BLE001 — one case's failure must not end the others
                if not isinstance(error, (measure.RunError, subprocess.CalledProcessError)):
                    traceback.print_exc()
                print(f"### {case}\n\nFAILED: {error if isinstance(error, measure.RunError) else repr(error)}\n", flush=True)
                failed.append(case)
                stack.check_alive()
            print(f"[bench] {case}: {time.monotonic() - case_started:.0f} s", file=sys.stderr, flush=True)
        sampler.stop()
    except KeyboardInterrupt:
        print("[bench] interrupted", file=sys.stderr)
        failed.append("interrupted")
    except RuntimeError as error:
        print(f"[bench] {error}", file=sys.stderr)
        failed.append("stack")
    finally:
        if failed and os.environ.get("BENCH_KEEP_DIR") != "1":
            for name in ("admin", "worker-1", "worker-2", "hookhandler"):
                tail = stack.log_tail(name, 8)
                if tail:
                    print(f"[bench] last lines of {name}'s log:\n{tail}", file=sys.stderr)
        stack.close()
    print(f"[bench] done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
