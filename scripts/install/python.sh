#!/usr/bin/env bash
# Idempotent installer for the Python interop peer: a venv with the pinned `websockets` and
# `httpx` (tests/interop/requirements.txt).
#
# usage: scripts/install/python.sh [--quiet] [--force]
# env: RIPPLE_PY_VENV   the venv (default ~/.cache/ripple/py)
#      RIPPLE_PYTHON3   python3 that creates it (default: python3 on PATH)
# A stamp in the venv records the requirements and the interpreter; when they match and
# `import websockets, httpx` works, the script returns at once. Exit 1 on failure.
set -euo pipefail
RP_TAG="install/python"
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

VENV="${RIPPLE_PY_VENV:-$HOME/.cache/ripple/py}"
PY3="${RIPPLE_PYTHON3:-python3}"
REQ="$RP_ROOT/tests/interop/requirements.txt"
STAMP="$VENV/.ripple-stamp"
T0=$SECONDS

command -v "$PY3" >/dev/null || rp_die "'$PY3' not found (set RIPPLE_PYTHON3)"
PY3_ID="$("$PY3" -c 'import sys; print(sys.executable, sys.version.split()[0])')" ||
    rp_die "'$PY3' does not run"
want_stamp() { { echo "$PY3_ID"; cat "$REQ"; } | rp_hash; }

if [ "$FORCE" = 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(want_stamp)" ] &&
    "$VENV/bin/python" -c 'import websockets, httpx' 2>/dev/null; then
    log "already installed ($VENV, $(( SECONDS - T0 ))s)"
    exit 0
fi

log "creating $VENV with $PY3_ID"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
if ! "$PY3" -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's own python3 needs the python3-venv package for `-m venv`.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "'$PY3 -m venv' failed; installing python3-venv"
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q python3-venv >/dev/null 2>&1 || true
    fi
    rm -rf "$VENV"
    "$PY3" -m venv "$VENV" || rp_die "'$PY3 -m venv' failed (install python3-venv)"
fi
timeout 600 "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" ||
    rp_die "pip install -r tests/interop/requirements.txt failed"
"$VENV/bin/python" -c 'import websockets, httpx' || rp_die "websockets or httpx does not import"
want_stamp > "$STAMP"
log "ok in $(rp_fmt_secs $(( SECONDS - T0 ))): $("$VENV/bin/python" -c 'import websockets, httpx; print("websockets", websockets.__version__ + ", httpx", httpx.__version__)') ($VENV)"
