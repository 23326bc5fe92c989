#!/usr/bin/env bash
# External-peer tests of the channel protocol, by clients that are not ours:
#   tests/interop/py_channels.py  Python `websockets` on /ws (subscribe, publish, disconnect,
#                                 miss messages, reconnect with `since`: every message exactly
#                                 once and in order; see the script's docstring)
#   tests/interop/py_fallback.py  Python `httpx` and `curl -N` on the HTTP fallback transports
#                                 /sse, /poll and /rpc (drop, miss, resume with Last-Event-ID or
#                                 the poll cursor: exactly once and in order; recovered: false;
#                                 held and idle polls; error statuses; see its docstring)
#
# usage: scripts/channels-py.sh
# Installs the Python peer (scripts/install/python.sh), builds
#   cargo build --release --locked -p ripple-server --example serve
# starts it twice on free ports of 127.0.0.1: once anonymous with a random RIPPLE_API_KEY (both
# scripts run against it, one after the other) and once in JWT mode with a random
# RIPPLE_JWT_SECRET (py_fallback.py's `jwt_*` checks). Stops both servers by PID; while the
# anonymous one stops, `curl -N` holds an /sse stream, which must end with the `close` event
# 1001 (check `sse_close_on_shutdown`). Prints each script's lines and ends with
# "N passed, N failed" summed over both scripts and that check; exit 1 if a check failed, a
# script reported nothing or a server died; 2 if the setup (install, build, server start)
# failed.
#
# env: RIPPLE_CHANNELS_SERVER_CMD  server command (default target/release/examples/serve; split
#                                  on whitespace, the address 127.0.0.1:PORT appended; when set,
#                                  nothing is built)
#      CHANNELS_TIMEOUT  seconds for each script (default 300)
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
SLOG="$OUT/server.log"; JLOG="$OUT/jwt-server.log"
SERVER_PID=""; JWT_PID=""; CURL_PID=""
trap 'rp_stop_pid "$CURL_PID"; rp_stop_pid "$SERVER_PID"; rp_stop_pid "$JWT_PID"' EXIT
trap 'exit 130' INT TERM

# start_server LOG PORT JWT_SECRET: starts the server in the background (pid in STARTED_PID)
# and waits until it printed 'listening' and accepts connections.
start_server() {
    local log="$1" port="$2" secret="$3"
    RIPPLE_JWT_SECRET="$secret" "${SERVER[@]}" "127.0.0.1:$port" >"$log" 2>&1 &
    STARTED_PID=$!
    if ! rp_wait_line "$log" '^listening' "$READY_SECS" "$STARTED_PID" ||
        ! rp_wait_port "$port" 5 "$STARTED_PID"; then
        sed 's/^/   | /' "$log" | tail -n 20
        rp_die "server '${SERVER[*]} 127.0.0.1:$port' did not print 'listening' and accept connections within ${READY_SECS}s"
    fi
}

RIPPLE_API_KEY="py-channels-$RANDOM$RANDOM"
export RIPPLE_API_KEY
PORT="$(rp_free_port)" || rp_die "no free port on 127.0.0.1"
start_server "$SLOG" "$PORT" ""
SERVER_PID=$STARTED_PID
JWT_SECRET="py-fallback-$RANDOM$RANDOM$RANDOM"
JPORT="$(rp_free_port)" || rp_die "no free port on 127.0.0.1"
[ "$JPORT" != "$PORT" ] || JPORT="$(rp_free_port)" || rp_die "no free port on 127.0.0.1"
start_server "$JLOG" "$JPORT" "$JWT_SECRET"
JWT_PID=$STARTED_PID

PROBLEMS=()
PASSED=0; FAILED=0
# run_script LOG NAME ARGS...: runs a Python script with the timeout, prints and logs its lines,
# adds its "N passed, N failed" to PASSED and FAILED (a script without that line, or that
# failed without a failed check, counts one failure).
run_script() {
    local log="$1" name="$2" rc summary p f
    shift 2
    : >"$log"
    echo "$RP_TAG: $name"
    set +e
    timeout --kill-after=10 "$TIMEOUT" "$PY" "$@" </dev/null 2>&1 |
        while IFS= read -r line; do printf '%s\n' "$line" >>"$log"; printf '   %s\n' "$line"; done
    rc=${PIPESTATUS[0]}
    set -e
    [ "$rc" != 124 ] || echo "   (the script timed out after ${TIMEOUT}s)"
    summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)" || true
    if [ -n "$summary" ]; then
        read -r p _ f _ <<< "${summary//,/}"
        PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
        [ "$f" = 0 ] || PROBLEMS+=("$name: $f check(s) failed")
        if [ "$f" = 0 ] && [ "$rc" != 0 ]; then
            PROBLEMS+=("$name: no failure reported but exit status $rc"); FAILED=$((FAILED + 1))
        fi
    else
        PROBLEMS+=("$name: exited with status $rc without a 'N passed, N failed' line"); FAILED=$((FAILED + 1))
    fi
}

T0=$SECONDS
CLOG="$OUT/client.log"; FLOG="$OUT/fallback.log"
run_script "$CLOG" "py_channels.py (websockets on /ws)" tests/interop/py_channels.py "ws://127.0.0.1:$PORT"
FALLBACK_JWT_URL="http://127.0.0.1:$JPORT" FALLBACK_JWT_SECRET="$JWT_SECRET" \
    run_script "$FLOG" "py_fallback.py (httpx and curl on /sse, /poll, /rpc)" \
    tests/interop/py_fallback.py "http://127.0.0.1:$PORT"

for pair in "$SERVER_PID:$SLOG" "$JWT_PID:$JLOG"; do
    if ! kill -0 "${pair%%:*}" 2>/dev/null; then
        sed 's/^/   | /' "${pair#*:}" | tail -n 20
        PROBLEMS+=("a server exited during the run (log: ${pair#*:})"); FAILED=$((FAILED + 1))
    fi
done
rp_stop_pid "$JWT_PID"; JWT_PID=""

# One more check, counted in the sum: `curl -N` holds a /sse stream while the anonymous server
# stops (SIGTERM); the stream must end with the `close` event, code 1001.
echo "$RP_TAG: sse_close_on_shutdown (curl -N on /sse while the server stops)"
SHUT="$OUT/shutdown-sse.txt"
: >"$SHUT"
curl -sS -N -m 30 "http://127.0.0.1:$PORT/sse?channel=py:shutdown:$RANDOM" >"$SHUT" 2>&1 &
CURL_PID=$!
WHY=""
if ! rp_wait_line "$SHUT" '^event: subscribed' 10 "$CURL_PID"; then
    WHY="no subscribed event within 10s"
fi
rp_stop_pid "$SERVER_PID"; SERVER_PID=""
for ((i = 0; i < 50; i++)); do kill -0 "$CURL_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$CURL_PID" 2>/dev/null && WHY="${WHY:-the stream did not end within 5s after the server stopped}"
rp_stop_pid "$CURL_PID"; CURL_PID=""
if [ -z "$WHY" ] && ! grep -Eq '^data: \{.*"type":"close"' "$SHUT"; then
    WHY="no close event"
elif [ -z "$WHY" ] && ! grep -E '^data: \{.*"type":"close"' "$SHUT" | grep -q '"code":1001'; then
    WHY="the close event is not code 1001: $(grep -E '^data: \{.*"type":"close"' "$SHUT")"
fi
if [ -z "$WHY" ]; then
    echo "   ok sse_close_on_shutdown"; PASSED=$((PASSED + 1))
else
    echo "   FAIL sse_close_on_shutdown: $WHY (output: $SHUT)"; FAILED=$((FAILED + 1))
    PROBLEMS+=("sse_close_on_shutdown: $WHY")
fi

echo "$RP_TAG: $((SECONDS - T0))s; logs: $SLOG, $JLOG, $CLOG, $FLOG, $SHUT"
if [ ${#PROBLEMS[@]} -gt 0 ]; then
    echo "$RP_TAG: failures:"
    printf '  %s\n' "${PROBLEMS[@]}"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
