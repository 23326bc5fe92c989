#!/usr/bin/env bash
# External-peer test of the channel protocol: tests/interop/py_channels.py (Python `websockets`)
# against ripple-server (subscribe, publish, disconnect, miss messages, reconnect with `since`,
# every message exactly once and in order; see the script's docstring).
#
# usage: scripts/channels-py.sh
# Installs the Python peer (scripts/install/python.sh), builds
#   cargo build --release --locked -p ripple-server --example serve
# starts it on a free port of 127.0.0.1 with a random RIPPLE_API_KEY, runs the script against
# it, stops the server by PID. Ends with the script's "N passed, N failed"; exit 1 if a check
# failed, the script reported nothing or the server died; 2 if the setup (install, build,
# server start) failed.
#
# env: RIPPLE_CHANNELS_SERVER_CMD  server command (default target/release/examples/serve; split
#                                  on whitespace, the address 127.0.0.1:PORT appended; when set,
#                                  nothing is built)
#      CHANNELS_TIMEOUT  seconds for the script (default 300)
#      CHANNELS_OUT      log directory (default out/channels-py)
#      RIPPLE_PY_VENV    the Python peer's venv (default ~/.cache/ripple/py)
set -euo pipefail
RP_TAG="channels-py"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
case "${1:-}" in
    "") ;;
    -h|--help) rp_usage "$0" 0 ;;
    *) echo "$RP_TAG: unknown argument '$1'" >&2; rp_usage "$0" ;;
esac
cd "$RP_ROOT"

TIMEOUT="${CHANNELS_TIMEOUT:-300}"
OUT="${CHANNELS_OUT:-out/channels-py}"
VENV="${RIPPLE_PY_VENV:-$HOME/.cache/ripple/py}"
READY_SECS=30

scripts/install/python.sh --quiet || rp_die "installing the Python peer failed"
PY="$VENV/bin/python"

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
read -r -a SERVER <<< "${RIPPLE_CHANNELS_SERVER_CMD:-$TARGET_DIR/release/examples/serve}"
if [ -z "${RIPPLE_CHANNELS_SERVER_CMD:-}" ]; then
    rp_log "cargo build --release --locked -p ripple-server --example serve"
    cargo build --release --locked -p ripple-server --example serve ||
        rp_die "building the ripple-server serve example failed"
fi
[ ${#SERVER[@]} -gt 0 ] || rp_die "empty RIPPLE_CHANNELS_SERVER_CMD"

mkdir -p "$OUT"
SLOG="$OUT/server.log"; CLOG="$OUT/client.log"
: >"$CLOG"
SERVER_PID=""
trap 'rp_stop_pid "$SERVER_PID"' EXIT
trap 'exit 130' INT TERM

PORT="$(rp_free_port)" || rp_die "no free port on 127.0.0.1"
RIPPLE_API_KEY="py-channels-$RANDOM$RANDOM"
export RIPPLE_API_KEY
RIPPLE_JWT_SECRET="" "${SERVER[@]}" "127.0.0.1:$PORT" >"$SLOG" 2>&1 &
SERVER_PID=$!
if ! rp_wait_line "$SLOG" '^listening' "$READY_SECS" "$SERVER_PID" ||
    ! rp_wait_port "$PORT" 5 "$SERVER_PID"; then
    sed 's/^/   | /' "$SLOG" | tail -n 20
    rp_die "server '${SERVER[*]} 127.0.0.1:$PORT' did not print 'listening' and accept connections within ${READY_SECS}s"
fi

T0=$SECONDS
set +e
timeout --kill-after=10 "$TIMEOUT" "$PY" tests/interop/py_channels.py "ws://127.0.0.1:$PORT" </dev/null 2>&1 |
    while IFS= read -r line; do printf '%s\n' "$line" >>"$CLOG"; printf '   %s\n' "$line"; done
RC=${PIPESTATUS[0]}
set -e
[ "$RC" != 124 ] || echo "   (the script timed out after ${TIMEOUT}s)"

PROBLEMS=()
SUMMARY="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$CLOG" | tail -n 1)" || true
PASSED=0; FAILED=0
if [ -n "$SUMMARY" ]; then
    read -r PASSED _ FAILED _ <<< "${SUMMARY//,/}"
    [ "$FAILED" = 0 ] || PROBLEMS+=("$FAILED check(s) failed")
    if [ "$FAILED" = 0 ] && [ "$RC" != 0 ]; then
        PROBLEMS+=("the script reported no failure but exited with status $RC"); FAILED=1
    fi
else
    PROBLEMS+=("the script exited with status $RC without a 'N passed, N failed' line"); FAILED=1
fi
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    sed 's/^/   | /' "$SLOG" | tail -n 20
    PROBLEMS+=("the server exited during the run (log: $SLOG)"); FAILED=$((FAILED + 1))
fi
rp_stop_pid "$SERVER_PID"; SERVER_PID=""

echo "$RP_TAG: $((SECONDS - T0))s; logs: $SLOG, $CLOG"
if [ ${#PROBLEMS[@]} -gt 0 ]; then
    echo "$RP_TAG: failures:"
    printf '  %s\n' "${PROBLEMS[@]}"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
