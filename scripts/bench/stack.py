"""The services a benchmark run needs, each on its own free loopback port: a database of its
own on scripts/setup.sh's Postgres, its own NATS (JetStream, the service users of setup.sh's
config), an admin, two workers, a hookhandler (ingest only, no per-source rate limit) and a
git daemon. Everything it
starts is stopped, and the database dropped, by Stack.close()."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60.0, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args[0]} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def rss_kib(pid):
    """(current, peak) resident set size of a process in KiB, from /proc."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def cpu_seconds(pid):
    """User + system CPU time of a process so far (seconds), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Stack:
    def __init__(self, bin_dir, workers=2, concurrency=2):
        self.bin_dir = bin_dir
        self.workers = workers
        self.concurrency = concurrency
        self.dir = tempfile.mkdtemp(prefix="ocelot-bench-")
        self.processes = []  # (name, Popen)
        self.services = {}  # name -> pid of the services whose RSS is reported
        self.database = f"bench_{os.getpid()}"
        self.database_created = False
        self.pg_bin = os.environ["OCELOT_PG_BIN"]
        url = os.environ["OCELOT_DATABASE_URL"]
        self.pg_server = url.rsplit("/", 1)[0]
        self.git_root = os.path.join(self.dir, "git")
        self.worker_ids = {}  # process name -> worker id
        self.all_worker_ids = []
        os.makedirs(self.git_root)

    # --- processes ------------------------------------------------------------------------
    def _start(self, name, argv, env=None, service=False):
        log = open(os.path.join(self.dir, f"{name}.log"), "wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=dict(os.environ, **(env or {})), start_new_session=True)
        log.close()
        self.processes.append((name, process))
        if service:
            self.services[name] = process.pid
        return process

    def log_tail(self, name, lines=20):
        try:
            with open(os.path.join(self.dir, f"{name}.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self):
        for name, process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")

    def psql(self, sql, database="postgres"):
        subprocess.run([os.path.join(self.pg_bin, "psql"), f"{self.pg_server}/{database}", "-qtAc", sql],
                       check=True, stdout=subprocess.PIPE)

    # --- start ----------------------------------------------------------------------------
    def start(self):
        self.psql(f"CREATE DATABASE {self.database}")
        self.database_created = True
        self.database_url = f"{self.pg_server}/{self.database}"
        state_dir = os.path.dirname(os.environ["OCELOT_NATS_PASSWORDS"])
        self.passwords = os.environ["OCELOT_NATS_PASSWORDS"]

        nats_port = free_port()
        nats = self._start("nats", [os.environ["OCELOT_NATS_SERVER"], "-c", os.path.join(state_dir, "nats.conf"),
                                    "-a", "127.0.0.1", "-p", str(nats_port), "-js",
                                    "-sd", os.path.join(self.dir, "jetstream")])
        wait_port(nats_port, process=nats)
        self.common = {
            "OCELOT_DATABASE_URL": self.database_url,
            "OCELOT_NATS_URL": f"nats://127.0.0.1:{nats_port}",
            "OCELOT_MASTER_KEY_FILE": os.environ["OCELOT_MASTER_KEY_FILE"],
        }

        def user(name):
            return {"OCELOT_NATS_USER": name, "OCELOT_NATS_PASSWORD_FILE": os.path.join(self.passwords, name)}

        admin_port = free_port()
        admin = self._start("admin", [self.bin("ocelot-admin")], service=True, env=dict(
            self.common, **user("admin"), OCELOT_ADMIN_LISTEN=f"127.0.0.1:{admin_port}",
            OCELOT_CACHE_DIR=os.path.join(self.dir, "admin-cache")))
        wait_port(admin_port, process=admin)
        token = subprocess.run([self.bin("ocelot-admin"), "token", "create", "--name", "bench", "--scope", "admin"],
                               env=dict(os.environ, **self.common), check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True).stdout.strip()
        self.cli_env = dict(os.environ, OCELOT_ADMIN=f"http://127.0.0.1:{admin_port}", OCELOT_TOKEN=token)

        self.worker_env = dict(self.common, **user("worker"))
        for index in range(1, self.workers + 1):
            self.start_worker(f"worker-{index}", f"bench-{os.getpid()}-{index}")

        self.hooks_port = free_port()
        hooks = self._start("hookhandler", [self.bin("ocelot-hookhandler"), "--processors", "0",
                                                   # one source (this machine) sends every delivery
                                                   "--rate-limit", "1000000", "--rate-burst", "1000000"], service=True,
                            env=dict(self.common, **user("hookhandler"),
                                     OCELOT_HOOKS_LISTEN=f"127.0.0.1:{self.hooks_port}",
                                     OCELOT_CACHE_DIR=os.path.join(self.dir, "hooks-cache")))
        wait_port(self.hooks_port, process=hooks)

        self.git_port = free_port()
        git = self._start("git-daemon", ["git", "daemon", "--reuseaddr", "--export-all",
                                         f"--base-path={self.git_root}", "--listen=127.0.0.1",
                                         f"--port={self.git_port}", self.git_root])
        wait_port(self.git_port, process=git)
        self.wait_workers()
        self.check_alive()

    def start_worker(self, name, worker_id, concurrency=None, database_url=None):
        """DATABASE_URL: the stack's database under another URL (e.g. with its own
        `application_name`, so that pg_stat_activity tells this worker apart)."""
        self.worker_ids[name] = worker_id
        self.all_worker_ids.append(worker_id)
        env = dict(self.worker_env, OCELOT_WORKER_ID=worker_id,
                   OCELOT_CACHE_DIR=os.path.join(self.dir, f"{name}-cache"))
        if database_url:
            env["OCELOT_DATABASE_URL"] = database_url
        self._start(name, [self.bin("ocelot-worker"), "--concurrency", str(concurrency or self.concurrency)],
                    service=True, env=env)

    def stop_worker(self, name, timeout=60.0):
        """SIGTERM, as an operator would; waits for it to exit (its builds handed back)."""
        for index, (process_name, process) in enumerate(self.processes):
            if process_name == name and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                del self.processes[index]
                del self.services[name]
                del self.worker_ids[name]
                return
        raise RuntimeError(f"no running {name}")

    def kill_worker(self, name):
        """SIGKILL, as a crash would: its containers stay behind (removed by close())."""
        for index, (process_name, process) in enumerate(self.processes):
            if process_name == name and process.poll() is None:
                process.kill()
                process.wait()
                del self.processes[index]
                del self.services[name]
                return
        raise RuntimeError(f"no running {name}")

    def wait_workers(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listed = subprocess.run(self.cli("workers"), env=self.cli_env, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True).stdout
            if all(any(worker_id in line for line in listed.splitlines()) for worker_id in self.worker_ids.values()):
                return
            self.check_alive()
            time.sleep(0.3)
        raise RuntimeError(f"the workers did not register within {timeout:.0f} s")

    def bin(self, name):
        return os.path.join(self.bin_dir, name)

    def cli(self, *args):
        return [self.bin("ocelot"), *args]

    # --- stop -----------------------------------------------------------------------------
    def remove_containers(self):
        """The containers and networks our workers left (a killed worker's, for one)."""
        for worker_id in self.all_worker_ids:
            label = f"label=io.ocelot.worker-id={worker_id}"
            for kind, listing in (("container", ["docker", "ps", "-aq"]), ("network", ["docker", "network", "ls", "-q"])):
                ids = subprocess.run(listing + ["--filter", label], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True).stdout.split()
                if ids:
                    rm = ["docker", "rm", "-f"] if kind == "container" else ["docker", "network", "rm"]
                    subprocess.run(rm + ids, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    def close(self):
        for _, process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for _, process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        self.remove_containers()
        if self.database_created:
            try:
                self.psql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
            except subprocess.CalledProcessError:
                pass
        if os.environ.get("BENCH_KEEP_DIR") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
