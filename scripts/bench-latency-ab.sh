#!/usr/bin/env bash
# Benchmark: build latency of two sets of binaries side by side (e.g. the last release and
# this checkout), each with its own database, NATS server, admin and worker on loopback,
# builds alternating between them, so that both see the same machine load.
#
#   scripts/bench-latency-ab.sh OLD_BIN_DIR [NEW_BIN_DIR]     (NEW default: target/debug)
#
# OLD_BIN_DIR: e.g. `git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --bins)`
# then /tmp/old/target/debug. Binaries without NATS users (before issue 11) get a NATS
# server without them. Needs scripts/setup.sh's services (Postgres, nats-server, the base
# image). Bounded: RUNS builds per side (default 15), then everything it started is stopped.
# OLD_WORKER_ARGS / NEW_WORKER_ARGS: extra worker flags per side (e.g. the same binaries with
# NEW_WORKER_ARGS="--warm-images 0" on one side).
set -euo pipefail
repo_dir=$(cd "$(dirname "$0")/.." && pwd)
state_dir=${OCELOT_STATE_DIR:-$repo_dir/.state}
# shellcheck disable=SC1091
source "$state_dir/env"
old_bin=$(cd "${1:?usage: $0 OLD_BIN_DIR [NEW_BIN_DIR]}" && pwd)
new_bin=$(cd "${2:-$repo_dir/target/debug}" && pwd)
runs=${RUNS:-15}
pg_port=${OCELOT_PG_PORT:-55432}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 5
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
psql() { "$OCELOT_PG_BIN/psql" -h 127.0.0.1 -p "$pg_port" -U ocelot -d postgres -qtAc "$1"; }

# the repository both sides build: the 202-line script of scripts/bench-build-latency.sh
script='echo start; for i in $(seq 1 200); do echo "line $i"; done; echo done'
mkdir -p "$work/src" "$work/git"
git -C "$work/src" init -q -b main
printf 'image: ocelot/busybox\nstages:\n  - name: bench\n    script:\n      - %s\n' "'$script'" >"$work/src/ocelot.yml"
git -C "$work/src" add -A
git -C "$work/src" -c user.name=b -c user.email=b@b commit -q -m bench
git clone -q --bare "$work/src" "$work/git/bench.git"
git_port=$(free_port)
git daemon --reuseaddr --export-all --base-path="$work/git" --listen=127.0.0.1 --port="$git_port" \
  >"$work/git.log" 2>&1 &
pids+=($!)
wait_port "$git_port"

# start_side NAME BIN_DIR: database, NATS, admin, token, worker, repo; sets side_port to
# the admin's port (no subshell: the started processes' pids must reach the cleanup)
start_side() {
  local name=$1 bin=$2 dir=$work/$1 db nats_port admin_port
  mkdir -p "$dir"
  db=bench_ab_${name}_$$
  psql "CREATE DATABASE $db"
  nats_port=$(free_port)
  local nats_args=(-a 127.0.0.1 -p "$nats_port" -js -sd "$dir/js")
  local admin_env=() worker_env=()
  if "$bin/ocelot-admin" --help | grep -q -- --nats-user; then
    nats_args=(-c "$state_dir/nats/nats.conf" "${nats_args[@]}")
    admin_env=(OCELOT_NATS_USER=admin "OCELOT_NATS_PASSWORD_FILE=$OCELOT_NATS_PASSWORDS/admin")
    worker_env=(OCELOT_NATS_USER=worker "OCELOT_NATS_PASSWORD_FILE=$OCELOT_NATS_PASSWORDS/worker")
  fi
  "$OCELOT_NATS_SERVER" "${nats_args[@]}" >"$dir/nats.log" 2>&1 &
  pids+=($!)
  wait_port "$nats_port"
  local common=("OCELOT_DATABASE_URL=postgres://ocelot@127.0.0.1:$pg_port/$db"
    "OCELOT_NATS_URL=nats://127.0.0.1:$nats_port" "OCELOT_MASTER_KEY_FILE=$OCELOT_MASTER_KEY_FILE")
  admin_port=$(free_port)
  env "${common[@]}" "${admin_env[@]}" "OCELOT_ADMIN_LISTEN=127.0.0.1:$admin_port" \
    "OCELOT_CACHE_DIR=$dir/admin-cache" "$bin/ocelot-admin" >"$dir/admin.log" 2>&1 &
  pids+=($!)
  wait_port "$admin_port"
  env "${common[@]}" "$bin/ocelot-admin" token create --name bench --scope admin >"$dir/token"
  env "${common[@]}" "${worker_env[@]}" "OCELOT_CACHE_DIR=$dir/worker-cache" \
    "$bin/ocelot-worker" --concurrency 2 $worker_args >"$dir/worker.log" 2>&1 &
  pids+=($!)
  OCELOT_ADMIN=http://127.0.0.1:$admin_port OCELOT_TOKEN=$(cat "$dir/token") \
    "$bin/ocelot" repos add bench "git://127.0.0.1:$git_port/bench.git" >/dev/null
  side_port=$admin_port
}
worker_args=${OLD_WORKER_ARGS:-}
start_side old "$old_bin"
old_port=$side_port
worker_args=${NEW_WORKER_ARGS:-}
start_side new "$new_bin"
new_port=$side_port
trap 'cleanup; psql "DROP DATABASE IF EXISTS bench_ab_old_$$"; psql "DROP DATABASE IF EXISTS bench_ab_new_$$"' EXIT
sleep 2

python3 - "$runs" "$old_bin" "$old_port" "$work/old/token" "$new_bin" "$new_port" "$work/new/token" <<'PY'
import json, os, statistics, subprocess, sys, time
runs = int(sys.argv[1])
sides = {"old": sys.argv[2:5], "new": sys.argv[5:8]}
figures = {side: {"first": [], "total": []} for side in sides}
def build(side):
    bin_dir, port, token_file = sides[side]
    env = dict(os.environ, OCELOT_ADMIN=f"http://127.0.0.1:{port}",
               OCELOT_TOKEN=open(token_file).read().strip())
    t0 = time.monotonic()
    first = None
    proc = subprocess.Popen([f"{bin_dir}/ocelot", "build", "-r", "bench", "-b", "main", "--json"],
                            stdout=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        kind = json.loads(line)["kind"]
        if first is None and kind.get("type") == "line" and kind.get("stream") == "stdout":
            first = time.monotonic() - t0
    proc.wait()
    assert proc.returncode == 0, f"{side}: build failed"
    return first, time.monotonic() - t0
for side in sides:
    build(side)  # warm-up: mirrors, image cache
for i in range(runs):
    for side in (["old", "new"] if i % 2 == 0 else ["new", "old"]):
        first, total = build(side)
        figures[side]["first"].append(first * 1000)
        figures[side]["total"].append(total * 1000)
        time.sleep(0.3)
print(f"{runs} builds per side, alternating, 202-line script on ocelot/busybox")
for what, label in (("first", "ocelot build → first line of the script"), ("total", "ocelot build → exit")):
    old, new = (statistics.median(figures[s][what]) for s in ("old", "new"))
    for side in ("old", "new"):
        values = figures[side][what]
        print(f"{side:>3}  {label:<40} median {statistics.median(values):6.0f} ms  "
              f"min {min(values):6.0f}  max {max(values):6.0f}")
    print(f"     {'':<40} new/old {new / old:5.2f}  ({new - old:+.0f} ms)")
PY
