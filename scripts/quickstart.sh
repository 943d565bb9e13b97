#!/usr/bin/env bash
# README command 1: set up everything, start an admin and a worker, create a sample git
# repository with an ocelot.yml, serve it with `git daemon` on loopback, register it, and run
# `ocelot build` in a checkout of it so that you watch a real build stream to your terminal.
# Stop everything with: scripts/stop.sh
set -euo pipefail

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
state_dir=${OCELOT_STATE_DIR:-$repo_dir/.state}
admin_port=${OCELOT_ADMIN_PORT:-50051}
git_port=${OCELOT_GIT_PORT:-59418}
log() { printf '\033[1m[quickstart]\033[0m %s\n' "$*" >&2; }

"$repo_dir/scripts/setup.sh"
# shellcheck disable=SC1091
source "$state_dir/env"
export OCELOT_MASTER_KEY_FILE

log "building ocelot (cargo build --bins; the first build takes a few minutes)"
(cd "$repo_dir" && cargo build --quiet --bins)
bin=$repo_dir/target/debug
export PATH=$bin:$PATH
mkdir -p "$state_dir/logs" "$state_dir/pids"

running() { [ -f "$state_dir/pids/$1" ] && kill -0 "$(cat "$state_dir/pids/$1")" 2>/dev/null; }
# each service connects to NATS as its own user (scripts/nats-auth.conf says what each may
# do), its password in $OCELOT_NATS_PASSWORDS/<user> (scripts/setup.sh makes them)
wait_port() {
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

export OCELOT_ADMIN=http://127.0.0.1:$admin_port
if ! running admin; then
  log "starting ocelot-admin on 127.0.0.1:$admin_port (log: $state_dir/logs/admin.log)"
  OCELOT_NATS_USER=admin OCELOT_NATS_PASSWORD_FILE=$OCELOT_NATS_PASSWORDS/admin OCELOT_ADMIN_LISTEN=127.0.0.1:$admin_port OCELOT_CACHE_DIR=$state_dir/admin-cache \
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

hooks_port=${OCELOT_HOOKS_PORT:-8080}
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
  log "serving $git_root on git://127.0.0.1:$git_port/"
  # pushes allowed (loopback only): the README's next steps push to the sample and build it
  nohup git daemon --reuseaddr --export-all --enable=receive-pack --base-path="$git_root" \
    --listen=127.0.0.1 --port="$git_port" "$git_root" >"$state_dir/logs/git-daemon.log" 2>&1 &
  echo $! >"$state_dir/pids/git-daemon"
  wait_port "$git_port"
fi

url=git://127.0.0.1:$git_port/sample.git
if ! ocelot repos list --json | grep -q "\"$url\""; then
  ocelot repos add sample "$url" --hooks-url "http://127.0.0.1:$hooks_port" >"$state_dir/sample-webhook-secret"
  log "webhook secret of the sample repo saved in $state_dir/sample-webhook-secret"
fi

checkout=$state_dir/sample-checkout
[ -d "$checkout" ] || git clone -q "$url" "$checkout"
log "running \`ocelot build\` in a checkout of the sample ($checkout)"
echo >&2
cd "$checkout"
set +e
ocelot build
code=$?
set -e
echo >&2
log "ocelot build exited with $code. Try: cd $checkout && ocelot status; ocelot watch <id>"
log "environment for more commands: source $state_dir/env; export PATH=$bin:\$PATH OCELOT_ADMIN=$OCELOT_ADMIN OCELOT_TOKEN=\$(cat $token_file)"
log "webhooks: POST to http://127.0.0.1:$hooks_port/hooks/{github,gitlab,bitbucket,gitea}; polling: ocelot poll add -r sample --every 30s"
log "stop everything with: scripts/stop.sh"
exit $code
