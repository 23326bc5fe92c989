#!/usr/bin/env bash
# Idempotent installer for `redis-server` (Debian's package), which the Redis broker's tests and
# scripts/cluster.sh start on their own ports. Nothing is started or enabled as a service here.
#
# usage: scripts/install/redis.sh [--quiet]
# When `redis-server` is already on PATH the script returns at once. Otherwise it runs
# `apt-get install -y redis-server`, after one `apt-get update` when the package lists do not
# know the package yet (a fresh machine). Needs root (or sudo without a password). Concurrent
# runs (test processes started in parallel) wait for each other on a lock file.
# Exit 0 when `redis-server --version` works afterwards, 1 otherwise.
set -euo pipefail
RP_TAG="install/redis"
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

QUIET=0
for a in "$@"; do
    case "$a" in
        --quiet) QUIET=1 ;;
        -h|--help) rp_usage "$0" 0 ;;
        *) echo "$RP_TAG: unknown argument '$a'" >&2; rp_usage "$0" ;;
    esac
done
log() { [ "$QUIET" = 1 ] || echo "$RP_TAG: $*" >&2; }
RP_DIE_STATUS=1
T0=$SECONDS

if command -v redis-server >/dev/null 2>&1; then
    log "already installed: $(redis-server --version | head -n 1)"
    exit 0
fi

# One install at a time: test processes that all found redis-server missing queue up here, and
# the ones after the first find it installed.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/ripple-install-redis.lock"
    flock -w 900 9 || rp_die "another install of redis-server holds the lock for over 900 s"
    if command -v redis-server >/dev/null 2>&1; then
        log "installed meanwhile: $(redis-server --version | head -n 1)"
        exit 0
    fi
fi

command -v apt-get >/dev/null || rp_die "redis-server is not on PATH and there is no apt-get to install it"
SUDO=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || rp_die "installing redis-server needs root (or sudo)"
    SUDO=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive

# The lists are refreshed once, only when apt does not know the package (never-updated lists).
if ! apt-cache show redis-server >/dev/null 2>&1; then
    log "apt-get update (the package lists do not know redis-server yet)"
    timeout 600 "${SUDO[@]}" apt-get update -q >/dev/null || rp_die "apt-get update failed"
fi
log "apt-get install -y redis-server"
timeout 900 "${SUDO[@]}" apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 redis-server >/dev/null ||
    rp_die "apt-get install redis-server failed"
command -v redis-server >/dev/null || rp_die "redis-server is still not on PATH after installing it"
# Debian's package may start a service on 6379 where an init system runs; the tests never use
# that port (each starts its own redis-server on a free port), so it is left alone.
log "ok in $(rp_fmt_secs $(( SECONDS - T0 ))): $(redis-server --version | head -n 1)"
