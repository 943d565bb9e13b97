#!/usr/bin/env bash
# README command 1: set up everything, build Ocelot, start an admin, a worker, a hookhandler
# and a poller, create a sample git repository with an ocelot.yml, serve it with `git daemon`
# on loopback (pushes allowed), register it with a poll, and run `ocelot build` in a checkout
# of it so that you watch a real build stream to your terminal. Run it again at any time: it
# starts only what is not running.
#
# Usage: scripts/quickstart.sh [--release]
#   --release  build and run release binaries (cargo build --release; slower to build)
# Afterwards: `source .state/quickstart.env` puts the CLI on PATH with OCELOT_ADMIN and
# OCELOT_TOKEN set. Stop everything with: scripts/stop.sh
#
# Environment:
#   OCELOT_STATE_DIR   where data, logs and the sample live (default: <repo>/.state)
#   OCELOT_BIN_DIR     run the binaries in this directory instead of building them
#   OCELOT_ADMIN_PORT  the admin's gRPC port (default 50051)
#   OCELOT_HOOKS_PORT  the hookhandler's port (default 8080)
#   OCELOT_DASHBOARD_PORT  the admin's web dashboard and /metrics (default 8081)
#   OCELOT_GIT_PORT    the sample's git daemon port (default 59418)
#   and those of scripts/setup.sh (OCELOT_PG_PORT, OCELOT_NATS_PORT, OCELOT_S3_PORT, ...)
set -euo pipefail

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
state_dir=${OCELOT_STATE_DIR:-$repo_dir/.state}
admin_port=${OCELOT_ADMIN_PORT:-50051}
hooks_port=${OCELOT_HOOKS_PORT:-8080}
dashboard_port=${OCELOT_DASHBOARD_PORT:-8081}
git_port=${OCELOT_GIT_PORT:-59418}
poll_every=10s
log() { printf '\033[1m[quickstart]\033[0m %s\n' "$*" >&2; }
usage() { sed -n '2,19s/^# \{0,1\}//p' "$0"; }

profile=debug
for arg in "$@"; do
  case $arg in
    --release) profile=release ;;
    -h | --help) usage; exit 0 ;;
    *) log "unknown argument \`$arg\`"; usage >&2; exit 2 ;;
  esac
done

"$repo_dir/scripts/setup.sh"
# shellcheck disable=SC1091
source "$state_dir/env"
export OCELOT_MASTER_KEY_FILE

binaries="ocelot ocelot-admin ocelot-worker ocelot-hookhandler ocelot-poller"
if [ -n "${OCELOT_BIN_DIR:-}" ]; then
  bin=$(cd "$OCELOT_BIN_DIR" && pwd)
  log "using the binaries in $bin (OCELOT_BIN_DIR)"
else
  target_dir=${CARGO_TARGET_DIR:-$repo_dir/target}
  case $target_dir in /*) ;; *) target_dir=$repo_dir/$target_dir ;; esac
  if [ "$profile" = release ]; then
    log "building ocelot (cargo build --release --bins; the first build takes several minutes)"
    (cd "$repo_dir" && cargo build --quiet --release --bins)
  else
    log "building ocelot (cargo build --bins; the first build takes a few minutes)"
    (cd "$repo_dir" && cargo build --quiet --bins)
  fi
  bin=$target_dir/$profile
fi
for binary in $binaries; do
  [ -x "$bin/$binary" ] || { log "$bin/$binary is missing: build it (cargo build --bins) or unset OCELOT_BIN_DIR"; exit 1; }
done
export PATH=$bin:$PATH
mkdir -p "$state_dir/logs" "$state_dir/pids"

# services started from other binaries (a debug build, and now --release, or the other way
# round) are stopped first, so that what runs is what was asked for
bin_record=$state_dir/pids/bin-dir
if [ -s "$bin_record" ] && [ "$(cat "$bin_record")" != "$bin" ]; then
  log "the services run from $(cat "$bin_record"): restarting them from $bin"
  OCELOT_STATE_DIR=$state_dir "$repo_dir/scripts/stop.sh" --keep-servers >&2
fi
echo "$bin" >"$bin_record"

running() { [ -f "$state_dir/pids/$1" ] && kill -0 "$(cat "$state_dir/pids/$1")" 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
# `ocelot ... --json` answers, read with python3 (setup.sh installs it): prints what the
# expression makes of the parsed JSON, `data`
json_query() { python3 -c 'import json, sys; data = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# each service connects to NATS as its own user (scripts/nats-auth.conf says what each may
# do), its password in $OCELOT_NATS_PASSWORDS/<user> (scripts/setup.sh makes them)
export OCELOT_ADMIN=http://127.0.0.1:$admin_port
if ! running admin; then
  log "starting ocelot-admin on 127.0.0.1:$admin_port (log: $state_dir/logs/admin.log)"
  OCELOT_NATS_USER=admin OCELOT_NATS_PASSWORD_FILE=$OCELOT_NATS_PASSWORDS/admin OCELOT_ADMIN_LISTEN=127.0.0.1:$admin_port OCELOT_ADMIN_HTTP_LISTEN=127.0.0.1:$dashboard_port OCELOT_CACHE_DIR=$state_dir/admin-cache \
    nohup "$bin/ocelot-admin" >"$state_dir/logs/admin.log" 2>&1 &
  echo $! >"$state_dir/pids/admin"
  wait_port "$admin_port" || { log "ocelot-admin did not start:"; tail -20 "$state_dir/logs/admin.log"; exit 1; }
fi
# the CLI needs an API token: the first one is made on the server side
token_file=$state_dir/token
if [ ! -s "$token_file" ]; then
  log "creating an admin API token (saved in $token_file)"
  (umask 077 && "$bin/ocelot-admin" token create --name "quickstart-$(date +%s)" --scope admin >"$token_file")
fi
OCELOT_TOKEN=$(cat "$token_file")
export OCELOT_TOKEN

if ! running worker; then
  log "starting ocelot-worker (log: $state_dir/logs/worker.log)"
  OCELOT_NATS_USER=worker OCELOT_NATS_PASSWORD_FILE=$OCELOT_NATS_PASSWORDS/worker OCELOT_CACHE_DIR=$state_dir/worker-cache nohup "$bin/ocelot-worker" --concurrency 2 \
    >"$state_dir/logs/worker.log" 2>&1 &
  echo $! >"$state_dir/pids/worker"
fi
if ! running hookhandler; then
  log "starting ocelot-hookhandler on 127.0.0.1:$hooks_port (log: $state_dir/logs/hookhandler.log)"
  OCELOT_NATS_USER=hookhandler OCELOT_NATS_PASSWORD_FILE=$OCELOT_NATS_PASSWORDS/hookhandler OCELOT_HOOKS_LISTEN=127.0.0.1:$hooks_port OCELOT_CACHE_DIR=$state_dir/hooks-cache \
    nohup "$bin/ocelot-hookhandler" >"$state_dir/logs/hookhandler.log" 2>&1 &
  echo $! >"$state_dir/pids/hookhandler"
fi
if ! running poller; then
  log "starting ocelot-poller (log: $state_dir/logs/poller.log)"
  OCELOT_NATS_USER=poller OCELOT_NATS_PASSWORD_FILE=$OCELOT_NATS_PASSWORDS/poller OCELOT_CACHE_DIR=$state_dir/poller-cache nohup "$bin/ocelot-poller" \
    >"$state_dir/logs/poller.log" 2>&1 &
  echo $! >"$state_dir/pids/poller"
fi

# a sample repository, served over git:// on loopback
git_root=$state_dir/git
sample=$git_root/sample.git
if [ ! -d "$sample" ]; then
  log "creating the sample repository"
  work=$(mktemp -d)
  git -C "$work" init -q -b main
  cat >"$work/ocelot.yml" <<'YML'
image: ocelot/busybox
buildTool: shell
branches: [main]
env: ["GREETING=hello from ocelot"]
timeout: 10m
stages:
  - name: build
    script:
      - echo "$GREETING"
      - echo "building $OCELOT_REPO at $GIT_HASH_SHORT on branch $GIT_BRANCH"
      - ls -1 "$WORKSPACE"
      - for i in 1 2 3; do echo "compiling part $i"; sleep 1; done
  - name: test
    env: ["SUITE=unit"]
    script:
      - echo "running $SUITE tests"
      - test -f src/app.sh && sh src/app.sh
  - name: deploy
    triggers:
      - \branch main and \filepath deploy/
    script:
      - echo "deploying (only when deploy/ changed)"
YML
  mkdir -p "$work/src"
  printf '#!/bin/sh\necho "app: all 3 tests passed"\n' >"$work/src/app.sh"
  git -C "$work" add -A
  git -C "$work" -c user.name=Quickstart -c user.email=quickstart@ocelot.local commit -q -m "Sample project"
  mkdir -p "$git_root"
  git clone -q --bare "$work" "$sample"
  rm -rf "$work"
fi
if ! running git-daemon; then
  log "serving $git_root on git://127.0.0.1:$git_port/ (pushes allowed: loopback only)"
  # receive-pack: the README's next steps commit to the sample, push and build it
  nohup git daemon --reuseaddr --export-all --enable=receive-pack --base-path="$git_root" \
    --listen=127.0.0.1 --port="$git_port" "$git_root" >"$state_dir/logs/git-daemon.log" 2>&1 &
  echo $! >"$state_dir/pids/git-daemon"
  wait_port "$git_port" || { log "git daemon did not start:"; tail -20 "$state_dir/logs/git-daemon.log"; exit 1; }
fi

url=git://127.0.0.1:$git_port/sample.git
if [ "$(ocelot repos list --json | json_query "any(r.get('url') == '$url' for r in data)")" != True ]; then
  ocelot repos add sample "$url" --hooks-url "http://127.0.0.1:$hooks_port" >"$state_dir/sample-webhook-secret"
  log "webhook secret of the sample repo saved in $state_dir/sample-webhook-secret"
fi
# the poller lists the sample's branches every $poll_every and builds a pushed commit by
# itself; its first poll only records the heads
sample_polled_at() { ocelot poll list --json | json_query "max([p.get('last_polled_at_ms') or 0 for p in data if p.get('repo') == 'sample'] or [-1])"; }
if [ "$(sample_polled_at)" = -1 ]; then
  log "polling the sample every $poll_every (ocelot poll add -r sample --every $poll_every)"
  ocelot poll add -r sample --every "$poll_every" >/dev/null
fi

checkout=$state_dir/sample-checkout
[ -d "$checkout" ] || git clone -q "$url" "$checkout"
# the README's next steps commit in the checkout: give it an author where git has none
git -C "$checkout" config user.name >/dev/null || git -C "$checkout" config user.name "Ocelot Quickstart"
git -C "$checkout" config user.email >/dev/null || git -C "$checkout" config user.email quickstart@ocelot.local

# what a shell needs for the README's next steps (and the services' settings of setup.sh)
env_file=$state_dir/quickstart.env
# shellcheck disable=SC2016 # $PATH and $(cat ...) are expanded when the file is sourced
{
  echo "# written by scripts/quickstart.sh: \`source\` it to use the quickstart's Ocelot from a shell"
  printf 'source %q\n' "$state_dir/env"
  printf 'export PATH=%q:"$PATH"\n' "$bin"
  printf 'export OCELOT_ADMIN=%q\n' "$OCELOT_ADMIN"
  printf 'OCELOT_TOKEN=$(cat %q)   # the admin API token the quickstart made\n' "$token_file"
  echo 'export OCELOT_TOKEN'
} >"$env_file"

log "running \`ocelot build\` in a checkout of the sample ($checkout)"
echo >&2
cd "$checkout"
set +e
ocelot build
code=$?
set -e
echo >&2

# a push right after this script must be seen as a new head, not recorded as the first one
for _ in $(seq 1 600); do
  [ "$(sample_polled_at)" -gt 0 ] && break
  sleep 0.1
done
[ "$(sample_polled_at)" -gt 0 ] || log "the poller has not polled the sample yet: see $state_dir/logs/poller.log"

log "ocelot build exited with $code"
if [ "$state_dir" = "$repo_dir/.state" ]; then
  log "more to try, from $repo_dir: source .state/quickstart.env; cd .state/sample-checkout; ocelot status"
else
  log "more to try: source $env_file; cd $checkout; ocelot status"
fi
log "a push to the sample is built by the poller within $poll_every; webhooks: POST to http://127.0.0.1:$hooks_port/hooks/{github,gitlab,bitbucket,gitea}"
log "the dashboard: http://127.0.0.1:$dashboard_port (\`ocelot open latest\` in the checkout prints a link that signs you in)"
log "stop everything with: scripts/stop.sh"
exit $code
