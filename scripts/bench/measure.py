"""Timing one command: the whole command, the moment of its first line of interest, its
output kept in a file (read through a pipe, as a terminal or `| tee` would), bounded by a
timeout; and the check that a log holds every line of `seq 1 N`, in order."""

import os
import subprocess
import threading
import time


class RunError(RuntimeError):
    pass


class _Watchdog:
    def __init__(self, process, timeout):
        self.fired = False
        self.timer = threading.Timer(timeout, self._kill, args=(process,))
        self.timer.daemon = True
        self.timer.start()

    def _kill(self, process):
        self.fired = True
        process.kill()

    def cancel(self):
        self.timer.cancel()


def _finish(process, watchdog, argv, timeout, started):
    process.wait()
    watchdog.cancel()
    total = time.monotonic() - started
    if watchdog.fired:
        raise RunError(f"{' '.join(argv[:4])}… took longer than {timeout:.0f} s (killed)")
    if process.returncode != 0:
        raise RunError(f"{' '.join(argv[:4])}… exited with {process.returncode}")
    return total


def first_line(argv, is_interesting, timeout, env=None):
    """Runs ARGV; returns (whole command, time to the first stdout line IS_INTERESTING accepts)
    in seconds."""
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    watchdog = _Watchdog(process, timeout)
    first = None
    for line in process.stdout:
        if first is None and is_interesting(line):
            first = time.monotonic() - started
    total = _finish(process, watchdog, argv, timeout, started)
    if first is None:
        raise RunError(f"{' '.join(argv[:4])}… printed no line of the script")
    return total, first


def to_file(argv, path, timeout, env=None):
    """Runs ARGV with its stdout through a pipe into PATH; returns the whole command's time."""
    started = time.monotonic()
    process = spawn_to_file(argv, path, env)
    return wait_to_file(process, argv, timeout, started)


def spawn_to_file(argv, path, env=None):
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out = open(path, "wb")

    def pump():
        with out:
            while True:
                chunk = os.read(process.stdout.fileno(), 1 << 20)
                if not chunk:
                    return
                out.write(chunk)

    process.pump = threading.Thread(target=pump, daemon=True)
    process.pump.start()
    return process


def wait_to_file(process, argv, timeout, started):
    watchdog = _Watchdog(process, max(0.1, timeout - (time.monotonic() - started)))
    process.pump.join()
    return _finish(process, watchdog, argv, timeout, started)


def count_sequence(path, count):
    """How many lines of `seq 1 COUNT` PATH holds in order from 1 (the rest missing)."""
    expected = 1
    with open(path, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\n")
            if line.isdigit() and int(line) == expected:
                expected += 1
    return expected - 1


def check_sequence(path, count, what):
    """The lines of `seq 1 COUNT` must all be in PATH, in order, once each; other lines (the
    worker's own, e.g. `build N #M of …`) may come only before them."""
    expected = 1
    others = []
    with open(path, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\n")
            if line.isdigit():
                if int(line) != expected:
                    raise RunError(f"{what}: line {expected} expected, got {line[:40]!r} (file {path})")
                expected += 1
            elif expected == 1:
                others.append(line)
            else:
                raise RunError(f"{what}: unexpected line {line[:80]!r} after line {expected - 1} (file {path})")
    if expected != count + 1:
        raise RunError(f"{what}: {expected - 1} of {count} lines (file {path})")
