#!/usr/bin/env bash
# Builds a local Docker image holding Ocelot's service binaries and the shared libraries they
# link, with no registry: a rootfs assembled from this machine's files and `docker import`ed.
# Used to run workers (or any service) as separate hosts on a Docker network; the multi-host
# test builds it from the test binaries.
#
# Usage: scripts/worker-image.sh [BIN_DIR] [IMAGE]
#   BIN_DIR  directory of the built binaries (default: <repo>/target/release, else target/debug)
#   IMAGE    image name (default: ocelot/services:local)
#
# Run a worker from it (the Docker socket lets it start build containers next to itself). A
# worker in a container cannot change the Docker host's firewall: install the rule that keeps
# builds off the host's own addresses on the Docker host yourself, and tell the worker so:
#   iptables -C INPUT -i ocb+ -j DROP 2>/dev/null || iptables -I INPUT -i ocb+ -j DROP
#   ip6tables -C INPUT -i ocb+ -j DROP 2>/dev/null || ip6tables -I INPUT -i ocb+ -j DROP
#   docker run -d --network NET -v /var/run/docker.sock:/var/run/docker.sock \
#     -e OCELOT_DATABASE_URL=... -e OCELOT_NATS_URL=... -e OCELOT_MASTER_KEY=... \
#     -e OCELOT_BUILD_HOST_ACCESS=external ocelot/services:local ocelot-worker
set -euo pipefail

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=${1:-}
if [ -z "$bin_dir" ]; then
  if [ -x "$repo_dir/target/release/ocelot-worker" ]; then bin_dir=$repo_dir/target/release; else bin_dir=$repo_dir/target/debug; fi
fi
image=${2:-ocelot/services:local}
binaries=(ocelot-worker ocelot-admin ocelot-hookhandler ocelot-poller ocelot)

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/usr/local/bin" "$rootfs/tmp" "$rootfs/etc" "$rootfs/var/cache/ocelot"
chmod 1777 "$rootfs/tmp"
for name in "${binaries[@]}"; do
  if [ -x "$bin_dir/$name" ]; then
    cp "$bin_dir/$name" "$rootfs/usr/local/bin/"
    # every shared library it links, at the same path
    ldd "$bin_dir/$name" | awk '/=> \// {print $3} /^[ \t]*\/lib/ {print $1}' | while read -r lib; do
      mkdir -p "$rootfs$(dirname "$lib")"
      cp -Ln "$lib" "$rootfs$lib" 2>/dev/null || true
    done
  fi
done
[ -x "$rootfs/usr/local/bin/ocelot-worker" ] || { echo "no ocelot-worker in $bin_dir: build first" >&2; exit 1; }
# name resolution and a user database for libc
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'ENV OCELOT_CACHE_DIR=/var/cache/ocelot' \
  --change 'ENTRYPOINT []' \
  - "$image" >/dev/null
echo "$image"
