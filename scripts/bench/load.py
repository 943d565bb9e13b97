"""Load for the memory figures: a sampler of each service's RSS (10 per second, by phase of
the run), and the mixed load of the `rss` case (a flooding build with watchers, trivial
builds, signed webhook deliveries, all at once)."""

import concurrent.futures
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import threading
import time

import measure
from stack import rss_kib

REPO_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Sampler:
    def __init__(self, services, every=0.1):
        self.services = services
        self.every = every
        self.phases = []  # the open phases' peak dicts, innermost last
        self.labels = []
        self.highest = {}  # name -> (kib, label)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.at_start = self.now()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def now(self):
        values = {}
        for name, pid in list(self.services.items()):  # workers come and go (scaling, idle)
            try:
                values[name] = rss_kib(pid)[0]
            except OSError:
                pass
        return values

    def _run(self):
        while not self.stopped.wait(self.every):
            sample = self.now()
            with self.lock:
                label = self.labels[-1] if self.labels else None
                for name, kib in sample.items():
                    for peaks in self.phases:
                        peaks[name] = max(peaks.get(name, 0), kib)
                    if label and kib > self.highest.get(name, (0, None))[0]:
                        self.highest[name] = (kib, label)

    @contextlib.contextmanager
    def phase(self, label):
        peaks = {}
        with self.lock:
            self.phases.append(peaks)
            self.labels.append(label)
        try:
            yield peaks
        finally:
            with self.lock:
                self.phases.remove(peaks)
                self.labels.pop()

    def busiest(self, name):
        kib, label = self.highest.get(name, (None, None))
        return "–" if label is None else f"{label} ({kib / 1024:.1f})"

    def stop(self):
        self.stopped.set()


def mixed(ctx, flood_repo, trivial_repo):
    stack = ctx.stack
    slots = stack.workers * stack.concurrency
    build = subprocess.run(stack.cli("build", "-r", flood_repo, "-b", "main", "--no-follow"), env=stack.cli_env,
                           check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip()
    watching = [subprocess.Popen(stack.cli("watch", build), env=stack.cli_env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for _ in range(3)]

    def trivial(_):
        subprocess.run(stack.cli("build", "-r", trivial_repo, "-b", "main"), env=stack.cli_env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=ctx.timeout)

    deliveries = ctx.settings["hook_deliveries"]
    with concurrent.futures.ThreadPoolExecutor(slots * 2 + 4) as pool:
        jobs = [pool.submit(trivial, i) for i in range(slots * 2)]
        jobs += [pool.submit(send_hooks, stack, ctx.settings["hook_secret"], part, 4, deliveries)
                 for part in range(4)]
        for job in jobs:
            job.result()
    for process in watching:
        if process.wait(timeout=ctx.timeout) != 0:
            raise measure.RunError(f"ocelot watch {build} exited with {process.returncode}")


def send_hooks(stack, secret, part, parts, total):
    """Signed GitHub push deliveries (distinct ids) over one keep-alive connection."""
    with open(os.path.join(REPO_DIR, "hookhandler/tests/fixtures/webhooks/github/push_branch.json")) as f:
        body = json.load(f)
    body["repository"]["full_name"] = "team/hooks"
    payload = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    connection = http.client.HTTPConnection("127.0.0.1", stack.hooks_port, timeout=30)
    refused = 0
    for index in range(part, total, parts):
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "push",
                   "X-GitHub-Delivery": f"bench-{os.getpid()}-{time.monotonic_ns()}-{index}",
                   "X-Hub-Signature-256": signature}
        for attempt in range(3):
            try:
                connection.request("POST", "/hooks/github", body=payload, headers=headers)
                response = connection.getresponse()
                response.read()
                break
            except (OSError, http.client.HTTPException):
                # the server closed the keep-alive connection: again on a new one
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", stack.hooks_port, timeout=30)
                if attempt == 2:
                    raise
        if response.status >= 300:
            refused += 1
    connection.close()
    if refused:
        raise measure.RunError(f"the hookhandler refused {refused} webhook deliveries")
