#!/usr/bin/env bash
# Stops what scripts/quickstart.sh and scripts/setup.sh started (admin, worker, hookhandler,
# poller, git daemon, NATS, the S3 test server, PostgreSQL) and waits until each is gone (a
# worker hands its builds back and removes its containers first). Data stays under the state
# directory (and, as root, the PostgreSQL cluster under /var/lib/ocelot); remove them to
# start afresh.
#
# Usage: scripts/stop.sh [--keep-servers]
#   --keep-servers  stop only the Ocelot services and the git daemon; PostgreSQL, NATS and
#                   the S3 server keep running
# Environment: OCELOT_STATE_DIR (default: <repo>/.state). Exits 1 if something would not stop.
set -uo pipefail
repo_dir=$(cd "$(dirname "$0")/.." && pwd)
state_dir=${OCELOT_STATE_DIR:-$repo_dir/.state}
keep_servers=""
for arg in "$@"; do
  case $arg in
    --keep-servers) keep_servers=1 ;;
    -h | --help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "unknown argument \`$arg\` (usage: scripts/stop.sh [--keep-servers])" >&2; exit 2 ;;
  esac
done

status=0
stopping=()
# stop NAME PID_FILE PROGRAM: SIGTERM to the pid in PID_FILE when that process still runs
# PROGRAM (a pid file left from before a reboot may name another process by now)
stop() {
  local name=$1 pid_file=$2 program=$3 pid
  [ -f "$pid_file" ] || return 0
  pid=$(cat "$pid_file")
  rm -f "$pid_file"
  case $pid in '' | *[!0-9]*) return 0 ;; esac
  { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q -- "$program" || return 0
  kill "$pid" 2>/dev/null && stopping+=("$name:$pid")
}
# waits up to 60 s for every process signalled so far to exit
wait_stopped() {
  local entry name pid
  for entry in "${stopping[@]}"; do
    name=${entry%%:*} pid=${entry##*:}
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$name (pid $pid) is still running 60 s after SIGTERM" >&2
      status=1
    else
      echo "stopped $name"
    fi
  done
  stopping=()
}

for name in worker poller hookhandler admin; do
  stop "$name" "$state_dir/pids/$name" "ocelot-$name"
done
stop git-daemon "$state_dir/pids/git-daemon" "git"
wait_stopped
rm -f "$state_dir/pids/bin-dir"
[ -n "$keep_servers" ] && exit $status

stop "moto_server (S3)" "$state_dir/s3/pid" moto_server
stop nats-server "$state_dir/nats/pid" nats-server
wait_stopped
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
pg_data=$(cat "$state_dir/postgres-data.path" 2>/dev/null || echo "$state_dir/postgres")
if [ -n "$pg_bin" ] && [ -s "$pg_data/PG_VERSION" ]; then
  as_pg=()
  [ "$(id -u)" = "0" ] && as_pg=(runuser -u postgres --)
  if "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; then
    if "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" stop -w -m fast >/dev/null 2>&1; then
      echo "stopped postgres"
    else
      echo "postgres ($pg_data) did not stop" >&2
      status=1
    fi
  fi
fi
exit $status
