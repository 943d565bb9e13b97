#!/usr/bin/env bash
# Benchmark: how long from `ocelot build` to the first log line, and the whole build, compared
# with the same script in a plain `docker run` of the same image. Needs the quickstart's
# services running (scripts/quickstart.sh). Bounded: RUNS builds (default 5), then stops.
set -euo pipefail
repo_dir=$(cd "$(dirname "$0")/.." && pwd)
state_dir=${OCELOT_STATE_DIR:-$repo_dir/.state}
runs=${RUNS:-5}
git_port=${OCELOT_GIT_PORT:-59418}
export PATH=$repo_dir/target/debug:$PATH
export OCELOT_ADMIN=${OCELOT_ADMIN:-http://127.0.0.1:${OCELOT_ADMIN_PORT:-50051}}
OCELOT_TOKEN=${OCELOT_TOKEN:-$(cat "$state_dir/token")}
export OCELOT_TOKEN

script='echo start; for i in $(seq 1 200); do echo "line $i"; done; echo done'
bench=$state_dir/git/bench.git
if [ ! -d "$bench" ]; then
  work=$(mktemp -d)
  git -C "$work" init -q -b main
  printf 'image: ocelot/busybox\nstages:\n  - name: bench\n    script:\n      - %s\n' "'$script'" >"$work/ocelot.yml"
  git -C "$work" add -A
  git -C "$work" -c user.name=b -c user.email=b@b commit -q -m bench
  git clone -q --bare "$work" "$bench"
  rm -rf "$work"
fi
url=git://127.0.0.1:$git_port/bench.git
ocelot repos list --json | grep -q "\"$url\"" || ocelot repos add bench "$url" >/dev/null 2>&1

python3 - "$runs" "$script" <<'PY'
import json, statistics, subprocess, sys, time
runs, script = int(sys.argv[1]), sys.argv[2]
first, output, total, plain = [], [], [], []
for _ in range(runs):
    t0 = time.monotonic()
    proc = subprocess.Popen(["ocelot", "build", "-r", "bench", "-b", "main", "--json"],
                            stdout=subprocess.PIPE, text=True)
    t_first = t_output = None
    for line in proc.stdout:
        kind = json.loads(line)["kind"]
        if kind["type"] == "line" and t_first is None:
            t_first = time.monotonic() - t0
        if kind["type"] == "line" and kind["stream"] == "stdout" and t_output is None:
            t_output = time.monotonic() - t0
    proc.wait()
    assert proc.returncode == 0, "build failed"
    first.append(t_first * 1000)
    output.append(t_output * 1000)
    total.append((time.monotonic() - t0) * 1000)
    t0 = time.monotonic()
    subprocess.run(["docker", "run", "--rm", "ocelot/busybox", "sh", "-c", "set -e\n" + script],
                   check=True, stdout=subprocess.DEVNULL)
    plain.append((time.monotonic() - t0) * 1000)
def show(name, values):
    print(f"{name:<44} median {statistics.median(values):7.0f} ms   min {min(values):7.0f} ms   max {max(values):7.0f} ms")
print(f"{runs} runs, 202-line script, image ocelot/busybox")
show("ocelot build → first log line (worker's)", first)
show("ocelot build → first line of the script", output)
show("ocelot build → exit (whole build)", total)
show("docker run --rm, same script", plain)
PY
