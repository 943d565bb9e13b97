#!/usr/bin/env bash
# Stops what scripts/quickstart.sh and scripts/setup.sh started (admin, worker, hookhandler,
# poller, git daemon,
# NATS, the S3 test server, PostgreSQL). Data stays under the state directory (and, as root, the PostgreSQL
# cluster under /var/lib/ocelot); remove them to start afresh.
set -uo pipefail
repo_dir=$(cd "$(dirname "$0")/.." && pwd)
state_dir=${OCELOT_STATE_DIR:-$repo_dir/.state}
for name in worker poller hookhandler admin git-daemon; do
  pid_file=$state_dir/pids/$name
  if [ -f "$pid_file" ]; then
    kill "$(cat "$pid_file")" 2>/dev/null && echo "stopped $name"
    rm -f "$pid_file"
  fi
done
if [ -f "$state_dir/s3/pid" ]; then
  kill "$(cat "$state_dir/s3/pid")" 2>/dev/null && echo "stopped moto_server (S3)"
  rm -f "$state_dir/s3/pid"
fi
if [ -f "$state_dir/nats/pid" ]; then
  kill "$(cat "$state_dir/nats/pid")" 2>/dev/null && echo "stopped nats-server"
  rm -f "$state_dir/nats/pid"
fi
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
pg_data=$(cat "$state_dir/postgres-data.path" 2>/dev/null || echo "$state_dir/postgres")
if [ -n "$pg_bin" ] && [ -s "$pg_data/PG_VERSION" ]; then
  if [ "$(id -u)" = "0" ]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" stop -m fast >/dev/null 2>&1 && echo "stopped postgres"
  else
    "$pg_bin/pg_ctl" -D "$pg_data" stop -m fast >/dev/null 2>&1 && echo "stopped postgres"
  fi
fi
