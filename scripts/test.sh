#!/usr/bin/env bash
# README command 2: set up what the tests need (Debian packages, PostgreSQL, nats-server, the
# local base image), check formatting and lints, build the binaries, run every test, then
# the README's command blocks (scripts/readme-check.sh).
# Each end-to-end test makes its own database on that PostgreSQL and starts its own NATS
# server, git daemon, admin and workers on free loopback ports.
set -euo pipefail

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo_dir"
export OCELOT_STATE_DIR=${OCELOT_STATE_DIR:-$repo_dir/.state}
export OCELOT_PG_FSYNC=${OCELOT_PG_FSYNC:-off} # test databases are throwaway: no fsync (setup.sh; the quickstart sets it on again)
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "set-up (scripts/setup.sh)"
"$repo_dir/scripts/setup.sh"
# shellcheck disable=SC1091
source "$OCELOT_STATE_DIR/env"
export OCELOT_TEST_DATABASE_URL=$OCELOT_DATABASE_URL
export OCELOT_NATS_SERVER

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build --bins"
cargo build --workspace --bins --locked

step "cargo test"
# build networks that earlier test runs left behind (a test's in-process worker can be torn
# down before its background removal of a network ran; each test has its own installation,
# so no later sweeper removes them, and Docker has only about 30 address pools): unused
# ones only, nothing runs yet
docker network prune -f --filter label=io.ocelot.build-id >/dev/null 2>&1 || true
docker network prune -f --filter label=io.ocelot.warm-until >/dev/null 2>&1 || true
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# the binaries the end-to-end tests run are the ones just built (a plain `cargo test` builds
# them itself first; here that would only rebuild them with the tests' feature set)
export OCELOT_TEST_BIN_DIR=$target_dir/debug
# setup.sh installed every tool the tests use (prometheus, ...): none may be skipped here
export OCELOT_TEST_REQUIRE_ALL=1
# the chaos and multi-host tests leave their figures here
figures_dir=$target_dir/tmp
rm -f "$figures_dir"/*-figures.txt
tests_started=$(date +%s)
# a test's in-process worker can be torn down while it starts a warm container: the ones
# made during the run go at its end, whatever the result (a running quickstart's worker only
# loses its spare, which it makes again)
remove_test_warm_containers() {
  docker ps -aq --filter label=io.ocelot.warm-until 2>/dev/null | while read -r id; do
    created=$(date -d "$(docker inspect -f '{{.Created}}' "$id" 2>/dev/null)" +%s 2>/dev/null || echo 0)
    if [ "$created" -ge "$tests_started" ]; then docker rm -f -v "$id" >/dev/null 2>&1 || true; fi
  done || true
  docker network prune -f --filter label=io.ocelot.warm-until >/dev/null 2>&1 || true
}
trap remove_test_warm_containers EXIT
cargo test --workspace --locked -- --test-threads "${OCELOT_TEST_THREADS:-2}"

step "figures"
cat "$figures_dir"/*-figures.txt 2>/dev/null || echo "(no figures recorded)"

step "README command blocks (scripts/readme-check.sh)"
# the README's blocks after the quickstart, as written, in a fresh copy of the working tree
# against a quickstart of its own (own state directory, free ports), stopped at its end
OCELOT_BIN_DIR=$target_dir/debug "$repo_dir/scripts/readme-check.sh"
