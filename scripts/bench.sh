#!/usr/bin/env bash
# The benchmark suite (issue 12): every case side by side with a plain `docker run --rm` of the
# same image and script, alternating runs, median (min–max) and the ratio, as Markdown tables.
#
#   scripts/bench.sh [CASE ...]        (no CASE: all; e.g. `scripts/bench.sh trivial logs`)
#
# Cases: trivial (whole command; trigger → first script line), sleep (a 5 s build),
#   logs-200k, logs-1m (alias: logs; every line checked, in order), watchers (20 `ocelot
#   watch` of one flooding build, and the admin's CPU for 1 vs 20), throughput (200 trivial
#   builds through 2 workers: builds/min, scheduling overhead per build), files (a repository
#   of 20 000 files: checkout → first line), webhooks (tests/src/bin/bench-webhooks.rs),
#   rss (idle and busy RSS of each service, from /proc), recovery (a worker SIGKILLed 4 s into
#   a build: kill → watchers told, → the retry's first line), scaling (200 `sleep 2` builds through
#   1, 2 and 4 workers × 2 slots: builds/min, queue wait p50/p90/p99, Postgres connections per
#   service, CPU by process kind), idle (Postgres statements/s of 10 idle workers).
#
# Needs scripts/setup.sh's Postgres, nats-server and base image (run it first). Starts its own
# database on that Postgres, its own NATS (setup.sh's users), an admin, 2 workers, a
# hookhandler and a git daemon, each on a free loopback port; stops them and drops the
# database at the end (also on Ctrl-C). Builds the binaries first (release, under
# `flock /tmp/ocelot-cargo.lock`).
#
# Environment:
#   RUNS=N                 repetitions of every case (default: per case, 10 for trivial … 1 for
#                          throughput)
#   BENCH_PROFILE=debug    debug binaries (default release)
#   BENCH_BUILD=0          use the binaries already built
#   BENCH_MAX_MINUTES=60   the suite's time bound: no run starts after it
#   BENCH_RUN_TIMEOUT=600  one run's bound (s)
#   BENCH_SETTLE=1         pause (s) after each measured command, so that its after-work
#                          (container removal, the next warm container) ends before the next
#   LOG_LINES="200000 1000000"  WATCH_LINES=200000  WATCHERS=20  BUILDS=200  FILES=20000
#   WEBHOOK_REQUESTS=20000 WEBHOOK_CONCURRENCY=32  HOOK_DELIVERIES=2000 (rss load)
#   BENCH_WORKERS=2 BENCH_CONCURRENCY=2  BENCH_KEEP_DIR=1 (keep logs and outputs)
#   SCALING_BUILDS=200 SCALING_WORKERS="1 2 4" SCALING_CONCURRENCY=2 SCALING_SCRIPT="sleep 2"
#   SCALING_SCRIPT_SECONDS=2 (the script's length, for the ideal rate) SCALING_SUBMITTERS=8
#   IDLE_WORKERS=10 IDLE_SECONDS=60
set -euo pipefail
repo_dir=$(cd "$(dirname "$0")/.." && pwd)
state_dir=${OCELOT_STATE_DIR:-$repo_dir/.state}
profile=${BENCH_PROFILE:-release}
log() { printf '[bench] %s\n' "$*" >&2; }

if [ ! -s "$state_dir/env" ]; then
  log "no $state_dir/env: run scripts/setup.sh first"
  exit 1
fi
# shellcheck disable=SC1091
source "$state_dir/env"
export OCELOT_MASTER_KEY_FILE OCELOT_PG_BIN OCELOT_NATS_SERVER OCELOT_NATS_PASSWORDS OCELOT_DATABASE_URL
"$repo_dir/scripts/base-images.sh"

export PYTHONDONTWRITEBYTECODE=1
python3 "$repo_dir/scripts/bench/main.py" --check-cases "$@"

case $profile in
  release) cargo_profile=(--release) ;;
  debug) cargo_profile=() ;;
  *) log "BENCH_PROFILE must be release or debug"; exit 1 ;;
esac
if [ "${BENCH_BUILD:-1}" != "0" ]; then
  log "building the $profile binaries (cargo build --bins; the first release build takes several minutes)"
  (cd "$repo_dir" && flock -o /tmp/ocelot-cargo.lock cargo build --quiet "${cargo_profile[@]}" --bins \
    -p ocelot-admin -p ocelot-worker -p ocelot-hookhandler -p ocelot-cli -p ocelot-tests)
fi

exec python3 "$repo_dir/scripts/bench/main.py" "$repo_dir/target/$profile" "$@"
