#!/usr/bin/env bash
# Idempotent installer for the browser suite's Chromium: Debian's `chromium` package, which
# gives /usr/bin/chromium (playwright-core drives it; no browser download of Playwright's own).
#
# usage: scripts/install/chromium.sh [--quiet] [--force]
# env: RIPPLE_CHROMIUM   the browser binary (default /usr/bin/chromium); when it runs
#                        (`--version`), the script returns at once
# Otherwise (needs root and apt-get): `apt-get install -y --no-install-recommends chromium`,
# with `apt-get update` first only when apt knows no candidate for the package, and once more
# if the install fails (stale lists). --quiet prints only errors. Exit 1 on failure.
set -euo pipefail
RP_TAG="install/chromium"
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

CHROMIUM="${RIPPLE_CHROMIUM:-/usr/bin/chromium}"
T0=$SECONDS
export DEBIAN_FRONTEND=noninteractive

chromium_version() { timeout 30 "$CHROMIUM" --version 2>/dev/null | head -n 1; }

if [ "$FORCE" = 0 ] && [ -x "$CHROMIUM" ] && V="$(chromium_version)" && [ -n "$V" ]; then
    log "already installed ($V at $CHROMIUM, $(( SECONDS - T0 ))s)"
    exit 0
fi
if [ -n "${RIPPLE_CHROMIUM:-}" ] && [ "$CHROMIUM" != /usr/bin/chromium ]; then
    rp_die "RIPPLE_CHROMIUM=$CHROMIUM does not run '--version'; unset it to install Debian's chromium"
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    rp_die "$CHROMIUM not found, and installing Debian's 'chromium' package needs root and apt-get"
fi

UPDATED=0
apt_update() {
    log "apt-get update"
    timeout 600 apt-get update -q >/dev/null || rp_die "apt-get update failed"
    UPDATED=1
}
has_candidate() {
    local policy
    policy="$(apt-cache policy chromium 2>/dev/null)" || return 1
    [[ "$policy" =~ Candidate:\ [0-9] ]]
}
apt_install() {
    log "apt-get install -y chromium"
    timeout 1200 apt-get install -y -q --no-install-recommends chromium >"$LOG" 2>&1
}

LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
has_candidate || apt_update
if ! apt_install; then
    if [ "$UPDATED" = 1 ]; then tail -n 20 "$LOG" >&2; rp_die "apt-get install chromium failed"; fi
    log "install failed; the package lists may be stale"
    apt_update
    apt_install || { tail -n 20 "$LOG" >&2; rp_die "apt-get install chromium failed"; }
fi
V="$(chromium_version)" || true
[ -n "$V" ] || rp_die "$CHROMIUM does not run after installing chromium"
log "ok in $(rp_fmt_secs $(( SECONDS - T0 ))): $V ($CHROMIUM)"
