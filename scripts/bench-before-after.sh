#!/usr/bin/env bash
# Fan-out over /ws, /sse and /poll, before and after a change, in one run: two `ripple serve`
# (one from each binary) loaded alternately by the same `ripple bench -m broadcast`, so the
# noise of a shared machine hits both alike. Prints, per transport, the medians of deliveries/s
# and of the server's CPU per delivery, and after/before ratios (never compare absolute figures
# across runs).
#
# usage: scripts/bench-before-after.sh BEFORE_BIN [AFTER_BIN] [--reps N] [--subscribers N]
#   BEFORE_BIN     a `ripple` binary built from the commit before (e.g. in a worktree:
#                  git worktree add /tmp/before REV && (cd /tmp/before &&
#                  CARGO_TARGET_DIR=/tmp/before-target cargo build --release -p ripple-cli))
#   AFTER_BIN      default target/release/ripple (build it first)
#   --reps N       repetitions, interleaved (default 3)
#   --subscribers  subscribers on the channel (default 500)
# Each run: 1 publisher on /ws, 64-byte messages, a window of 64, 5 s after a 1 s warm-up, no
# compression; every delivery checked by `ripple bench` (a run with errors fails the script).
# Servers on CPU 0, the load generator on CPU 1 (taskset), `--publish-rate 0`.
set -euo pipefail
RP_TAG="bench-before-after"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BEFORE=""; AFTER=""; REPS=3; SUBSCRIBERS=500
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS="${2:-}"; shift ;;
        --subscribers) SUBSCRIBERS="${2:-}"; shift ;;
        -h|--help) rp_usage "$0" 0 ;;
        -*) echo "$RP_TAG: unknown argument '$1'" >&2; rp_usage "$0" ;;
        *) if [ -z "$BEFORE" ]; then BEFORE="$1"; else AFTER="$1"; fi ;;
    esac
    shift
done
cd "$RP_ROOT"
AFTER="${AFTER:-${CARGO_TARGET_DIR:-target}/release/ripple}"
[ -x "$BEFORE" ] || rp_die "BEFORE_BIN '$BEFORE' is not an executable (see --help)"
[ -x "$AFTER" ] || rp_die "AFTER_BIN '$AFTER' is missing: cargo build --release -p ripple-cli"
ulimit -n 65536 2>/dev/null || true

PIN_S=(); PIN_C=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_S=(taskset -c 0); PIN_C=(taskset -c 1)
fi
PIDS=()
trap 'for p in "${PIDS[@]}"; do rp_stop_pid "$p"; done' EXIT

# serve BIN: starts a server; prints "PORT PID".
serve() {
    local port pid
    port="$(rp_free_port)" || rp_die "no free port"
    RUST_LOG=warn "${PIN_S[@]}" "$1" serve --bind "127.0.0.1:$port" --publish-rate 0 >/dev/null 2>&1 &
    pid=$!
    rp_wait_port "$port" 20 "$pid" || rp_die "$1 serve did not start"
    echo "$port $pid"
}
read -r PORT_B PID_B < <(serve "$BEFORE"); PIDS+=("$PID_B")
read -r PORT_A PID_A < <(serve "$AFTER"); PIDS+=("$PID_A")

RESULTS="$(mktemp)"
for ((rep = 1; rep <= REPS; rep++)); do
    for transport in ws sse poll; do
        for side in before after; do
            if [ "$side" = before ]; then port=$PORT_B; pid=$PID_B; else port=$PORT_A; pid=$PID_A; fi
            json="$(timeout 120 "${PIN_C[@]}" "$AFTER" bench "ws://127.0.0.1:$port/ws" -m broadcast \
                --channel bench --subscribers "$SUBSCRIBERS" --publishers 1 -p 64 -s 64 -d 5s \
                --warmup 1s --transport "$transport" --no-compress --server-pid "$pid" --json \
                --no-progress 2>/dev/null)" || rp_die "ripple bench ($transport, $side) failed"
            python3 -c '
import json, sys
j = json.loads(sys.argv[3])
if j.get("errors"):
    sys.exit("errors in the " + sys.argv[2] + " run over " + sys.argv[1] + ": " + str(j["errors"]))
print(sys.argv[1], sys.argv[2], j["messages_per_sec"], j["server_cpu_us_per_msg"])
' "$transport" "$side" "$json" | tee -a "$RESULTS"
            sleep 1
        done
    done
done

echo
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
med = lambda t, s, i: statistics.median(float(r[i]) for r in rows if r[0] == t and r[1] == s)
print("%-5s %14s %14s %9s %16s %16s %9s" % ("", "before del/s", "after del/s", "ratio",
      "before us/deliv", "after us/deliv", "ratio"))
for t in ("ws", "sse", "poll"):
    b, a = med(t, "before", 2), med(t, "after", 2)
    cb, ca = med(t, "before", 3), med(t, "after", 3)
    print("%-5s %14.0f %14.0f %9.2f %16.3f %16.3f %9.2f" % (t, b, a, a / b, cb, ca, ca / cb))
PY
rm -f "$RESULTS"
