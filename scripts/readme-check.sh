#!/usr/bin/env bash
# Runs the README's command blocks as a newcomer would after `scripts/quickstart.sh`, and
# fails with the block and its output when one does not work.
#
# Runnable blocks are the fenced ```sh blocks right after a line `<!-- readme-check -->`
# (an HTML comment: GitHub shows nothing of it). They run in order, in one bash shell
# (`set -eo pipefail`; what a block exports or `cd`s into holds for the next), starting at the
# root of a fresh copy of the working tree (the files git tracks or would track, no .state,
# no target), against a quickstart of their own: scripts/quickstart.sh run in that copy, with
# its own state directory, PostgreSQL, NATS, S3 server, admin, worker, hookhandler, poller
# and git daemon on free loopback ports, from already built binaries. Git runs without the
# user's or the system's config, as on a fresh machine. Then it checks what the README says
# happens by itself: the poller builds the last commit the blocks pushed to the sample.
# Whatever happens, it stops what it started (scripts/stop.sh, checked) and removes the copy
# and its PostgreSQL cluster.
#
# Usage: scripts/readme-check.sh
# Environment:
#   OCELOT_BIN_DIR       the built binaries (default: OCELOT_TEST_BIN_DIR, else target/debug;
#                        build them with `cargo build --bins`)
#   README_CHECK_KEEP=1  keep the copy (and its logs) instead of removing it
set -euo pipefail

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '\033[1m[readme-check]\033[0m %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

bin_dir=${OCELOT_BIN_DIR:-${OCELOT_TEST_BIN_DIR:-${CARGO_TARGET_DIR:-$repo_dir/target}/debug}}
for binary in ocelot ocelot-admin ocelot-worker ocelot-hookhandler ocelot-poller; do
  [ -x "$bin_dir/$binary" ] || fail "$bin_dir/$binary is missing: build the binaries first (cargo build --bins) or set OCELOT_BIN_DIR"
done
bin_dir=$(cd "$bin_dir" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/ocelot-readme-check.XXXXXX")
# as root, PostgreSQL runs as its own user, started from the copy: it must be able to enter it
chmod 711 "$work"
clone=$work/ocelot
state_dir=$clone/.state
cleanup() {
  local code=$?
  if [ -d "$state_dir" ]; then
    log "stopping the copy's quickstart (scripts/stop.sh)"
    OCELOT_STATE_DIR=$state_dir "$clone/scripts/stop.sh" >&2 || {
      log "FAILED: scripts/stop.sh did not stop everything"
      code=1
    }
    local pg_data
    pg_data=$(cat "$state_dir/postgres-data.path" 2>/dev/null || true)
    # its own cluster only: under the copy, or the one setup.sh made for the copy as root
    case $pg_data in
      "$state_dir"/* | /var/lib/ocelot/postgres-*) [ -z "${README_CHECK_KEEP:-}" ] && rm -rf "$pg_data" ;;
    esac
  fi
  if [ -n "${README_CHECK_KEEP:-}" ]; then log "kept $work"; else rm -rf "$work"; fi
  exit $code
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- a fresh copy of the working tree ---------------------------------------------------------
mkdir -p "$clone"
if git -C "$repo_dir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$repo_dir" && git ls-files -z --cached --others --exclude-standard) \
    | (cd "$repo_dir" && tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null) \
    | tar -xf - -C "$clone"
else # an unpacked source archive: all of it but what the scripts and cargo made
  tar -C "$repo_dir" --exclude=./.state --exclude=./target -cf - . | tar -xf - -C "$clone"
fi
{ [ -f "$clone/README.md" ] && [ -x "$clone/scripts/quickstart.sh" ]; } || fail "could not copy the working tree to $clone"

# --- the runnable blocks --------------------------------------------------------------------
blocks_dir=$work/blocks
mkdir -p "$blocks_dir"
awk -v dir="$blocks_dir" '
  in_block && /^```/ { in_block = 0; close(file); next }
  in_block { print > file; next }
  marked && /^```sh[[:space:]]*$/ {
    n++; in_block = 1; marked = 0
    file = sprintf("%s/%02d.sh", dir, n); printf "" > file
    line_file = sprintf("%s/%02d.line", dir, n); print NR + 1 > line_file; close(line_file)
    next
  }
  marked && NF { printf "line %d: `<!-- readme-check -->` must come right before a ```sh block\n", marker_line > "/dev/stderr"; bad = 1; marked = 0 }
  /^<!-- readme-check -->[[:space:]]*$/ { marked = 1; marker_line = NR; next }
  END { if (in_block) { print "an unterminated ```sh block at the end" > "/dev/stderr"; bad = 1 } exit bad }
' "$clone/README.md" || fail "README.md has a misplaced readme-check marker"
blocks=("$blocks_dir"/*.sh)
[ -e "${blocks[0]}" ] || fail "README.md has no block marked <!-- readme-check -->"
log "${#blocks[@]} runnable block(s) in README.md"

# --- its own quickstart -----------------------------------------------------------------------
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
sockets = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    sockets.append(s)
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PY
}
read -r pg_port nats_port s3_port admin_port hooks_port git_port dashboard_port <<<"$(free_ports 7)"
# nothing of the caller's installation leaks in (test.sh exports its state directory and
# servers); git as on a fresh machine: no user name or e-mail configured
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^OCELOT_' || true)
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 XDG_CONFIG_HOME=$work/config
export OCELOT_STATE_DIR=$state_dir OCELOT_BIN_DIR=$bin_dir
export OCELOT_PG_PORT=$pg_port OCELOT_NATS_PORT=$nats_port OCELOT_S3_PORT=$s3_port
export OCELOT_ADMIN_PORT=$admin_port OCELOT_HOOKS_PORT=$hooks_port OCELOT_GIT_PORT=$git_port OCELOT_DASHBOARD_PORT=$dashboard_port
export OCELOT_PG_FSYNC=off # a throwaway cluster
log "scripts/quickstart.sh in $clone (admin on 127.0.0.1:$admin_port, git daemon on $git_port; log: $work/quickstart.log)"
if ! (cd "$clone" && scripts/quickstart.sh) </dev/null >"$work/quickstart.log" 2>&1; then
  tail -40 "$work/quickstart.log" >&2
  fail "scripts/quickstart.sh did not end with a passed build (its log's end above)"
fi

# --- the blocks, in order, in one shell ----------------------------------------------------
output=$work/blocks.log
runner=$work/run-blocks.sh
cat >"$runner" <<'RUN'
set -eo pipefail
for block in "$@"; do
  printf '\n>>> README.md block %s (line %s)\n' "$(basename "$block" .sh)" "$(cat "${block%.sh}.line")"
  # shellcheck disable=SC1090
  source "$block"
done
printf '\n>>> all blocks ran\n'
RUN
set +e
(cd "$clone" && bash "$runner" "${blocks[@]}") </dev/null 2>&1 | tee "$output" >&2
code=${PIPESTATUS[0]}
set -e
if [ "$code" != 0 ]; then
  failed=$(grep -o '^>>> README.md block [0-9]*' "$output" | tail -1 | awk '{print $4}')
  log "README.md block $failed (line $(cat "$blocks_dir/$failed.line")) failed with exit code $code:"
  sed 's/^/    /' "$blocks_dir/$failed.sh" >&2
  log "its output:"
  awk -v marker=">>> README.md block $failed " 'index($0, marker) == 1 { show = 1; next } show' "$output" | sed 's/^/    /' >&2
  fail "README.md block $failed"
fi

# --- what the README says happens by itself -------------------------------------------------
# shellcheck disable=SC1091
source "$state_dir/quickstart.env"
head_commit=$(git -C "$state_dir/sample-checkout" rev-parse HEAD)
origin_commit=$(git -C "$state_dir/git/sample.git" rev-parse main)
[ "$head_commit" = "$origin_commit" ] || fail "the sample checkout's HEAD $head_commit is not what the blocks pushed (main is $origin_commit)"
log "waiting for the poller's build of the pushed commit ${head_commit:0:7} (it polls the sample every 10 s)"
poll_build=""
for _ in $(seq 1 120); do
  poll_build=$(ocelot status -r sample --limit 50 --json | python3 -c '
import json, sys
commit = sys.argv[1]
text = sys.stdin.read()
try:
    values = [json.loads(text)]
except ValueError:
    values = [json.loads(line) for line in text.splitlines() if line.strip()]
for value in values:
    for build in value if isinstance(value, list) else [value]:
        if build.get("commit") == commit and build.get("trigger") == "poll":
            print(build["id"])
            sys.exit(0)
' "$head_commit")
  [ -n "$poll_build" ] && break
  sleep 1
done
[ -n "$poll_build" ] || fail "no build with trigger poll of ${head_commit:0:7} within 2 minutes (log: $state_dir/logs/poller.log)"
ocelot watch "$poll_build" >/dev/null 2>"$work/poll-build.log" || {
  cat "$work/poll-build.log" >&2
  fail "the poller's build $poll_build of ${head_commit:0:7} did not pass"
}
log "the poller built ${head_commit:0:7} (build $poll_build, passed)"
log "README.md: ${#blocks[@]} block(s) ran green"
