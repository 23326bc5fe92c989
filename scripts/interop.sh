#!/usr/bin/env bash
# Interop suite: Ripple against peers nobody here wrote (Python websockets, Node ws).
# The programs and checks are specified in tests/interop/README.md.
#
# usage: scripts/interop.sh
# Installs both peers (scripts/install/python.sh, scripts/install/node.sh), builds
#   cargo build --release --locked -p ripple --example interop_server --example interop_client
# and runs four pairings, each server on its own free port on 127.0.0.1:
#   1. py_client.py      -> Ripple interop_server
#   2. node_client.mjs   -> Ripple interop_server
#   3. Ripple interop_client -> py_server.py
#   4. Ripple interop_client -> node_server.mjs
# Ends with "N passed, N failed" summed over the four; exit 1 if any check failed, a client did
# not report, or a server died or never became ready; 2 if the setup (install, build) failed.
#
# env: RIPPLE_INTEROP_SERVER_CMD  Ripple server command (default target/release/examples/interop_server);
#                                 the listen address 127.0.0.1:PORT is appended
#      RIPPLE_INTEROP_CLIENT_CMD  Ripple client command (default target/release/examples/interop_client);
#                                 the base URL ws://127.0.0.1:PORT is appended
#      (both are split on whitespace; when both are set, nothing is built — e.g. to check this
#       script with the peers standing in for Ripple)
#      INTEROP_TIMEOUT  seconds for one pairing's client (default 600)
#      INTEROP_OUT      log directory (default out/interop)
#      RIPPLE_PY_VENV   the Python peer's venv (default ~/.cache/ripple/py)
set -euo pipefail
RP_TAG="interop"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
case "${1:-}" in
    "") ;;
    -h|--help) rp_usage "$0" 0 ;;
    *) echo "$RP_TAG: unknown argument '$1'" >&2; rp_usage "$0" ;;
esac
cd "$RP_ROOT"

TIMEOUT="${INTEROP_TIMEOUT:-600}"
OUT="${INTEROP_OUT:-out/interop}"
VENV="${RIPPLE_PY_VENV:-$HOME/.cache/ripple/py}"
PEERS="$RP_ROOT/tests/interop"
READY_SECS=30

# --- peers and Ripple programs ---------------------------------------------------------------
scripts/install/python.sh --quiet || rp_die "installing the Python peer failed"
scripts/install/node.sh --quiet || rp_die "installing the Node peer failed"
PY="$VENV/bin/python"

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
read -r -a RIPPLE_SERVER <<< "${RIPPLE_INTEROP_SERVER_CMD:-$TARGET_DIR/release/examples/interop_server}"
read -r -a RIPPLE_CLIENT <<< "${RIPPLE_INTEROP_CLIENT_CMD:-$TARGET_DIR/release/examples/interop_client}"
if [ -z "${RIPPLE_INTEROP_SERVER_CMD:-}" ] || [ -z "${RIPPLE_INTEROP_CLIENT_CMD:-}" ]; then
    rp_log "cargo build --release --locked -p ripple --example interop_server --example interop_client"
    cargo build --release --locked -p ripple --example interop_server --example interop_client ||
        rp_die "building the Ripple interop examples failed"
fi
if [ ${#RIPPLE_SERVER[@]} = 0 ] || [ ${#RIPPLE_CLIENT[@]} = 0 ]; then rp_die "empty RIPPLE_INTEROP_*_CMD"; fi

mkdir -p "$OUT"
rm -f "$OUT"/*.log
SERVER_PID=""
trap 'rp_stop_pid "$SERVER_PID"' EXIT
trap 'exit 130' INT TERM

TOTAL_PASSED=0; TOTAL_FAILED=0; PROBLEMS=()

# run_pairing NAME SERVER_CMD... -- CLIENT_CMD...
# Starts the server with 127.0.0.1:PORT appended, waits for its "listening" line, runs the client
# with ws://127.0.0.1:PORT appended, echoes the client's lines, adds its "N passed, N failed"
# to the totals, stops the server.
run_pairing() {
    local name="$1"; shift
    local server=() client=() port slog clog rc t0 summary passed failed
    while [ "$1" != "--" ]; do server+=("$1"); shift; done
    shift; client=("$@")
    slog="$OUT/$name.server.log"; clog="$OUT/$name.client.log"
    : >"$clog"
    t0=$SECONDS
    echo "== $RP_TAG: $name"
    port="$(rp_free_port)" || { pairing_failed "$name" "no free port"; return; }
    "${server[@]}" "127.0.0.1:$port" >"$slog" 2>&1 &
    SERVER_PID=$!
    if ! rp_wait_line "$slog" '^listening' "$READY_SECS" "$SERVER_PID" ||
        ! rp_wait_port "$port" 5 "$SERVER_PID"; then
        sed 's/^/   | /' "$slog" | tail -n 20
        pairing_failed "$name" "server '${server[*]} 127.0.0.1:$port' did not print 'listening' and accept connections within ${READY_SECS}s"
        rp_stop_pid "$SERVER_PID"; SERVER_PID=""
        return
    fi
    set +e
    timeout --kill-after=10 "$TIMEOUT" "${client[@]}" "ws://127.0.0.1:$port" </dev/null 2>&1 |
        while IFS= read -r line; do printf '%s\n' "$line" >>"$clog"; printf '   %s\n' "$line"; done
    rc=${PIPESTATUS[0]}
    set -e
    [ "$rc" != 124 ] || echo "   (client timed out after ${TIMEOUT}s)"
    summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$clog" | tail -n 1)" || true
    if [ -n "$summary" ]; then
        read -r passed _ failed _ <<< "${summary//,/}"
        TOTAL_PASSED=$((TOTAL_PASSED + passed)); TOTAL_FAILED=$((TOTAL_FAILED + failed))
        if [ "$failed" = 0 ] && [ "$rc" != 0 ]; then
            pairing_failed "$name" "client reported no failure but exited with status $rc"
        elif [ "$failed" != 0 ]; then
            PROBLEMS+=("$name: $failed check(s) failed")
        fi
    else
        pairing_failed "$name" "client exited with status $rc without a 'N passed, N failed' line"
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        sed 's/^/   | /' "$slog" | tail -n 20
        pairing_failed "$name" "the server exited during the run (log: $slog)"
    fi
    rp_stop_pid "$SERVER_PID"; SERVER_PID=""
    echo "   $RP_TAG: $name: ${summary:-no summary} ($((SECONDS - t0))s; logs: $slog, $clog)"
}

# A problem with a pairing as a whole counts as one failed check.
pairing_failed() {
    echo "   FAIL $1: $2"
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    PROBLEMS+=("$1: $2")
}

run_pairing "py_client-vs-ripple_server" "${RIPPLE_SERVER[@]}" -- "$PY" "$PEERS/py_client.py"
run_pairing "node_client-vs-ripple_server" "${RIPPLE_SERVER[@]}" -- node "$PEERS/node_client.mjs"
run_pairing "ripple_client-vs-py_server" "$PY" "$PEERS/py_server.py" -- "${RIPPLE_CLIENT[@]}"
run_pairing "ripple_client-vs-node_server" node "$PEERS/node_server.mjs" -- "${RIPPLE_CLIENT[@]}"

if [ ${#PROBLEMS[@]} -gt 0 ]; then
    echo "$RP_TAG: failures:"
    printf '  %s\n' "${PROBLEMS[@]}"
fi
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" = 0 ]
