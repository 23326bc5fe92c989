#!/usr/bin/env bash
# Idempotent installer for the Node interop peer: `npm ci` in tests/interop/ (the pinned `ws`
# 8.x from tests/interop/package-lock.json) into tests/interop/node_modules.
#
# usage: scripts/install/node.sh [--quiet] [--force]
# A stamp in node_modules records the lock file and the Node version; when they match and `ws`
# loads, the script returns at once. Without node/npm it installs Debian's nodejs and npm
# (needs root). Exit 1 on failure.
set -euo pipefail
RP_TAG="install/node"
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

QUIET=0; FORCE=0
for a in "$@"; do
    case "$a" in
        --quiet) QUIET=1 ;;
        --force) FORCE=1 ;;
        -h|--help) rp_usage "$0" 0 ;;
        *) echo "$RP_TAG: unknown argument '$a'" >&2; rp_usage "$0" ;;
    esac
done
log() { [ "$QUIET" = 1 ] || echo "$RP_TAG: $*" >&2; }
RP_DIE_STATUS=1

DIR="$RP_ROOT/tests/interop"
STAMP="$DIR/node_modules/.ripple-stamp"
T0=$SECONDS

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        rp_die "node and npm are needed (install Node.js >= 18)"
    fi
    log "node/npm not found; installing Debian's nodejs and npm"
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q nodejs npm >/dev/null ||
        rp_die "apt-get install nodejs npm failed"
fi
want_stamp() { { node --version; cat "$DIR/package.json" "$DIR/package-lock.json"; } | rp_hash; }
ws_version() { (cd "$DIR" && node -p 'require("ws/package.json").version' 2>/dev/null); }

if [ "$FORCE" = 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(want_stamp)" ] && [ -n "$(ws_version)" ]; then
    log "already installed (ws $(ws_version) in $DIR/node_modules, $(( SECONDS - T0 ))s)"
    exit 0
fi

log "npm ci in tests/interop (node $(node --version), npm $(npm --version))"
LOG="$(mktemp)"
if ! (cd "$DIR" && timeout 600 npm ci --no-audit --no-fund --loglevel=error) >"$LOG" 2>&1; then
    cat "$LOG" >&2; rm -f "$LOG"
    rp_die "npm ci failed"
fi
[ "$QUIET" = 1 ] || cat "$LOG" >&2
rm -f "$LOG"
V="$(ws_version)"
[ -n "$V" ] || rp_die "ws does not load after npm ci"
want_stamp > "$STAMP"
log "ok in $(rp_fmt_secs $(( SECONDS - T0 ))): ws $V ($DIR/node_modules)"
