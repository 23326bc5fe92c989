#!/usr/bin/env bash
# Hostile clients against a real `ripple serve` (tests/abuse/abuse.py). Each attack runs against
# a fresh server on a free port of 127.0.0.1 (with an --api-key, so /api works) while a bystander
# uses the same server: a /ws subscriber on a channel a /ws publisher feeds every 100 ms, and an
# /echo round trip every 100 ms (tests/abuse/monitor.py, a process of its own).
#   1 unread answers     300 x POST /rpc history + 100 x GET /poll since=EPOCH:0 on a channel
#                        holding 100 x 60 KiB, answers never read
#   2 publish, no cap    one anonymous /ws client: 5,000 x 60 KiB publishes, each to a new
#                        channel; then 200,000 subscribe/unsubscribe pairs on fresh names
#   3 pongs              pings as fast as possible, pongs never read (and one client reading
#                        4 KiB every 5 s)
#   4 slowloris          2,000 connections sending a header byte every 2 s: /healthz must still
#                        answer; then SIGTERM with one partial header open: exit within
#                        shutdown_timeout_secs + 2 s
#   5 recovery > queue   subscribe with since (offsets 0 and 80) over 100 x 60 KiB of history:
#                        every missed message, recovered: true
#   6 deep JSON          a 258-byte publish nested 129 deep: refused, nothing dropped
#   7 shutdown/publish   SIGTERM while the API publishes to 1,000 subscribers: every publish
#                        answered 200 reaches every subscriber before its close 1001
#   8 small holes        endless empty continuation frames (close 1009); API history with a
#                        300-byte channel name and with %00 (400); /chat without a token on a
#                        server with a JWT secret (401)
# Per attack: the server's RSS before / peak / after (VmRSS every 100 ms, and VmHWM), the
# bystander's lost messages and worst latencies, what the attacker got, and PASS or FAIL:
# peak RSS under ABUSE_MAX_RSS_MB, nothing lost by the bystander, and the attack's own
# expectation. Last line "N passed, N failed"; exit 1 if an attack failed, 2 if the setup
# (install, build) failed, 124 if the run outlived ABUSE_TIMEOUT.
#
# usage: scripts/abuse.sh [--quick] [--only N[,N...]]...
#   --quick     smaller counts and shorter holds, for CI (well under 2 minutes)
#   --only N    run only these attacks (repeatable: --only 3 --only 5, or --only 3,5)
# Installs the Python peer (scripts/install/python.sh: websockets for the bystander; the
# attacks use raw sockets) and builds `cargo build --release -p ripple-cli --locked`.
# Raises the open-files limit (up to the hard limit) for the 2,000 slowloris connections.
# Every attack is bounded in count and in time and is cancelled if the server's RSS passes
# ABUSE_ABORT_RSS_MB; every server is stopped by PID at the end, also on failure.
#
# env: RIPPLE_ABUSE_BIN        the ripple binary (default: built, $CARGO_TARGET_DIR/release/ripple)
#      ABUSE_MAX_RSS_MB        the peak RSS bound (default 150)
#      ABUSE_ABORT_RSS_MB      cancel an attack when the server's RSS passes this (default 1024)
#      ABUSE_MAX_LATENCY_MS    also fail an attack when the bystander's worst latency (delivery
#                              or echo) reaches this (default 0: reported, not judged)
#      ABUSE_SHUTDOWN_TIMEOUT  the servers' shutdown_timeout_secs (default 5)
#      ABUSE_RUST_LOG          the servers' RUST_LOG (default info)
#      ABUSE_SERVER_ARGS       extra `ripple serve` flags for every server, e.g. "--publish-rate 100"
#      ABUSE_TIMEOUT           seconds for the whole run (default 1200; 300 with --quick)
#      ABUSE_OUT               logs and results.json (default out/abuse)
#      RIPPLE_PY_VENV          the Python peer's venv (default ~/.cache/ripple/py)
set -euo pipefail
RP_TAG="abuse"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ARGS=()
QUICK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; ARGS+=(--quick) ;;
        --only)
            [ $# -ge 2 ] || { echo "$RP_TAG: --only needs attack numbers" >&2; rp_usage "$0"; }
            ARGS+=(--only "$2"); shift ;;
        --only=*) ARGS+=(--only "${1#--only=}") ;;
        -h|--help) rp_usage "$0" 0 ;;
        *) echo "$RP_TAG: unknown argument '$1'" >&2; rp_usage "$0" ;;
    esac
    shift
done
cd "$RP_ROOT"

if [ "$QUICK" = 1 ]; then TIMEOUT="${ABUSE_TIMEOUT:-300}"; else TIMEOUT="${ABUSE_TIMEOUT:-1200}"; fi
OUT="${ABUSE_OUT:-out/abuse}"
VENV="${RIPPLE_PY_VENV:-$HOME/.cache/ripple/py}"

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
scripts/install/python.sh --quiet || rp_die "installing the Python peer failed"
PY="$VENV/bin/python"

BIN="${RIPPLE_ABUSE_BIN:-${CARGO_TARGET_DIR:-target}/release/ripple}"
if [ -z "${RIPPLE_ABUSE_BIN:-}" ]; then
    rp_log "cargo build --release -p ripple-cli --locked"
    cargo build --release -p ripple-cli --locked || rp_die "building ripple-cli failed"
fi
[ -x "$BIN" ] || rp_die "no ripple binary at $BIN"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

# The slowloris attack holds 2,000 connections: raise the soft open-files limit to the hard one.
HARD="$(ulimit -Hn)"
if [ "$HARD" = unlimited ]; then ulimit -n 65536 2>/dev/null || true
elif [ "$(ulimit -n)" -lt "$HARD" ]; then ulimit -n "$HARD" 2>/dev/null || true; fi

mkdir -p "$OUT"
: >"$OUT/pids"
DRIVER_PID=""
# On any exit: stop the driver, then any server it started that is still there (its PIDs are
# in $OUT/pids; a PID is only killed while it is still this ripple binary).
cleanup() {
    rp_stop_pid "$DRIVER_PID"
    local pid exe
    while read -r pid; do
        [ -n "$pid" ] || continue
        exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || continue
        case "$exe" in "$BIN"|"$BIN (deleted)") kill -KILL "$pid" 2>/dev/null || true ;; esac
    done <"$OUT/pids"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

T0=$SECONDS
set +e
timeout --kill-after=10 "$TIMEOUT" "$PY" tests/abuse/abuse.py --binary "$BIN" --out "$OUT" \
    "${ARGS[@]}" </dev/null &
DRIVER_PID=$!
wait "$DRIVER_PID"
RC=$?
set -e
DRIVER_PID=""
if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
    echo "$RP_TAG: the run did not finish within ${TIMEOUT}s (ABUSE_TIMEOUT); killed"
    echo "0 passed, 1 failed"
    RC=124
fi
rp_log "$(rp_fmt_secs $((SECONDS - T0))) (exit status $RC); logs: $OUT"
exit "$RC"
