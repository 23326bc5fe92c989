#!/usr/bin/env bash
# Fan-out to one channel over the fallback transports beside WebSocket: `ripple serve` started
# once, then 1,000 subscribers receiving over WebSocket (/ws), Server-Sent Events (/sse) and
# long-polling (/poll), one transport after another in the same run, loaded by
# `ripple bench -m broadcast --transport T` (method and latest results: docs/benchmarks.md,
# "Fallback transports").
#
# usage: scripts/bench-fallback.sh [--quick] [--reps N] [--rate R] [--no-build]
# Builds   cargo build --release --locked -p ripple-cli
# then starts `ripple serve` on a free 127.0.0.1 port and, REPS times (default 3), for each
# transport in turn (ws, sse, poll, ws, ... so that slow drifts of a noisy machine hit all
# three alike), runs on channel `bench`, 1 publisher on /ws, 64-byte messages, a window of 64:
#   fixed      --rate R messages/s (default 100, i.e. 100,000 deliveries/s to 1,000
#              subscribers), 10 s after a 2 s warm-up: latency at a load all three sustain
#   unbounded  as fast as the window allows, 10 s after a 2 s warm-up: the most deliveries
#              per second
# and stops the server. Every delivery is checked (order, no loss, no repeat: the channel's
# offsets follow each other); a run with errors fails the script. Server on CPU 0, load
# generator on CPU 1 (taskset), when taskset exists and nproc >= 2.
# Prints the medians per transport and run: deliveries/s, p50 and p99 latency (publish to
# receive), server and generator CPU per delivery (utime+stime from /proc/PID/stat over the
# measured window), and the ratios to WebSocket; never compare absolute numbers across runs,
# only ratios within one.
#   --quick     one repetition with 100 subscribers, 2 s runs after a 0.5 s warm-up, under a
#               minute once built (a smoke test for CI)
#   --reps N    repetitions (default 3; 1 with --quick)
#   --rate R    the fixed run's publish rate, messages/s (default 100)
#   --no-build  use target/release/ripple as it is
# Exit status: 0 when every run completed without error, 1 when the server or a run failed
# (or reported errors), 2 when the build failed.
#
# env: BENCH_OUT  directory for logs and raw results (default out/bench-fallback)
set -euo pipefail
RP_TAG="bench-fallback"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

QUICK=0
REPS=""
RATE=100
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --reps) REPS="${2:-}"; shift ;;
        --rate) RATE="${2:-}"; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) rp_usage "$0" 0 ;;
        *) echo "$RP_TAG: unknown argument '$1'" >&2; rp_usage "$0" ;;
    esac
    shift
done
cd "$RP_ROOT"

# --- parameters ------------------------------------------------------------------------------
TRANSPORTS=(ws sse poll)
if [ "$QUICK" = 1 ]; then
    REPS="${REPS:-1}"
    SUBSCRIBERS=100
    TIMES=(-d 2s --warmup 500ms)
else
    REPS="${REPS:-3}"
    SUBSCRIBERS=1000
    TIMES=(-d 10s --warmup 2s)
fi
case "$REPS" in ''|*[!0-9]*|0) rp_die "--reps needs a positive number" ;; esac
case "$RATE" in ''|*[!0-9]*|0) rp_die "--rate needs a positive whole number of messages/s" ;; esac
# One publisher, 64-byte messages, a window of 64 messages not yet received by everyone: below
# the server's history_size (100), so that a long-polling client never falls out of history.
COMMON=(-m broadcast --channel bench --subscribers "$SUBSCRIBERS" --publishers 1 -p 64 -s 64
        "${TIMES[@]}")
OUT="${BENCH_OUT:-out/bench-fallback}"
RESULTS="$OUT/results.txt"
LOAD_TIMEOUT=120          # seconds for one `ripple bench` run

# A connection each, in the server and in the load generator.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT="$(ulimit -n)"
if [ "$FD_LIMIT" != unlimited ] && [ "$FD_LIMIT" -lt $((SUBSCRIBERS + 256)) ]; then
    rp_die "ulimit -n is $FD_LIMIT: $SUBSCRIBERS subscribers need more descriptors"
fi

SERVER_PIN=(); CLIENT_PIN=(); PINNING="none (taskset missing or fewer than 2 CPUs)"
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    SERVER_PIN=(taskset -c 0); CLIENT_PIN=(taskset -c 1)
    PINNING="server on CPU 0, load generator on CPU 1 (taskset)"
fi

mkdir -p "$OUT"
rm -f "$OUT"/*.log "$RESULTS" "$OUT/results.jsonl"

# --- build -----------------------------------------------------------------------------------
BIN="${CARGO_TARGET_DIR:-target}/release"
if [ "$BUILD" = 1 ]; then
    rp_log "cargo build --release --locked -p ripple-cli"
    RP_DIE_STATUS=2 # a failed build
    cargo build --release --locked -p ripple-cli || rp_die "building ripple failed"
fi
RP_DIE_STATUS=1 # from here on, a failed server or load run
[ -x "$BIN/ripple" ] || rp_die "$BIN/ripple is missing (build it, or drop --no-build)"

SERVER_PID=""
trap 'rp_stop_pid "$SERVER_PID"' EXIT

# --- the server, once ------------------------------------------------------------------------
start_server() {
    local log="$OUT/server.log"
    SERVER_PORT="$(rp_free_port)" || rp_die "no free port"
    : >"$log"
    RUST_LOG=warn "${SERVER_PIN[@]}" "$BIN/ripple" serve --bind "127.0.0.1:$SERVER_PORT" --publish-rate 0 >"$log" 2>&1 &
    SERVER_PID=$!
    rp_wait_port "$SERVER_PORT" 20 "$SERVER_PID" || rp_die "ripple serve did not start (see $log)"
    URL="ws://127.0.0.1:$SERVER_PORT/ws"
}

# load TRANSPORT KIND ARGS...: one `ripple bench --json` run; its JSON goes to results.jsonl and
# a RESULT line of the figures used here to $RESULTS.
load() {
    local transport="$1" kind="$2" json line
    shift 2
    json="$(timeout "$LOAD_TIMEOUT" "${CLIENT_PIN[@]}" "$BIN/ripple" bench "$URL" "${COMMON[@]}" \
        --transport "$transport" "$@" --no-compress --server-pid "$SERVER_PID" --json \
        --no-progress 2>>"$OUT/ripple-bench.log")" || {
        [ -n "$json" ] && echo "$json" >>"$OUT/results.jsonl"
        rp_die "ripple bench ($kind over $transport) failed: ${json:-see $OUT/ripple-bench.log}"
    }
    kill -0 "$SERVER_PID" 2>/dev/null || rp_die "the server died during the $kind run over $transport"
    echo "$json" >>"$OUT/results.jsonl"
    line="$(python3 -c '
import json, sys
j = json.loads(sys.argv[3])
lat = j.get("latency_us") or {}
f = {"transport": sys.argv[1], "kind": sys.argv[2], "errors": j.get("errors"),
     "published": j.get("published"), "deliveries": j.get("messages")}
for k in ("messages_per_sec", "server_cpu_us_per_msg", "client_cpu_us_per_msg"):
    if j.get(k) is not None:
        f[k] = j[k]
for k in ("p50", "p99"):
    if lat.get(k) is not None:
        f[k] = lat[k]
print("RESULT " + " ".join("%s=%s" % kv for kv in f.items()))
' "$transport" "$kind" "$json")" || rp_die "cannot read the JSON of ripple bench: $json"
    echo "$line" | tee -a "$RESULTS"
    # Let the server finish with the departed subscribers (leave pushes, closes) first.
    sleep 1
}

machine() {
    local cpu
    cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "machine:  $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r)"
    echo "pinning:  $PINNING"
    echo "server:   ripple serve, defaults but --publish-rate 0 (anonymous, in-memory broker, presence on, history 100)"
    echo "runs:     $REPS repetition(s), interleaved; ${COMMON[*]}; fixed --rate $RATE; unbounded"
}

# --- the runs --------------------------------------------------------------------------------
T0=$SECONDS
machine | tee "$OUT/machine.txt"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (load average before the runs)" | tee -a "$OUT/machine.txt"
start_server
for ((rep = 1; rep <= REPS; rep++)); do
    for kind in fixed unbounded; do
        for transport in "${TRANSPORTS[@]}"; do
            rp_log "repetition $rep/$REPS: $kind over $transport"
            if [ "$kind" = fixed ]; then
                load "$transport" "$kind" --rate "$RATE"
            else
                load "$transport" "$kind"
            fi
        done
    done
done
rp_stop_pid "$SERVER_PID"
SERVER_PID=""
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (load average after the runs)" | tee -a "$OUT/machine.txt"
rp_log "runs took $(rp_fmt_secs $((SECONDS - T0))); raw results in $RESULTS"

# --- summary: medians per transport and run, ratios to WebSocket -----------------------------
echo
awk -v quick="$QUICK" -v subs="$SUBSCRIBERS" -v rate="$RATE" '
function median(list,    n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    if (n == 0) return ""
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function fmt(v, d) { return v == "" ? "-" : sprintf("%." d "f", v) }
function ms(us) { return us == "" ? "-" : sprintf("%.1f", us / 1000) }
# The ratio of the medians to WebSocket'"'"'s, and in brackets the lowest and highest ratio of
# single repetitions (the runs of one repetition are neighbours in time).
function ratio(k, t, m,    r, lo, hi, i, q) {
    if (med[k, "ws", m] == "" || med[k, t, m] == "" || med[k, "ws", m] == 0) return "-"
    r = sprintf("%.2f", med[k, t, m] / med[k, "ws", m])
    if (t == "ws" || reps < 2) return r
    lo = ""; hi = ""
    for (i = 1; i <= reps; i++) {
        if (!((k, t, m, i) in val) || !((k, "ws", m, i) in val) || val[k, "ws", m, i] == 0) continue
        q = val[k, t, m, i] / val[k, "ws", m, i]
        if (lo == "" || q < lo) lo = q
        if (hi == "" || q > hi) hi = q
    }
    return lo == "" ? r : r sprintf(" [%.2f-%.2f]", lo, hi)
}
/^RESULT / {
    delete kv
    for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
    k = kv["kind"]; t = kv["transport"]; n = ++count[k, t]; if (n > reps) reps = n
    add(k, t, "rate", kv["messages_per_sec"], n); add(k, t, "p50", kv["p50"], n); add(k, t, "p99", kv["p99"], n)
    add(k, t, "cpu", kv["server_cpu_us_per_msg"], n); add(k, t, "gen", kv["client_cpu_us_per_msg"], n)
    errors += kv["errors"]
}
function add(k, t, m, v, n) { if (v == "") return; list[k, t, m] = list[k, t, m] " " v; val[k, t, m, n] = v }
END {
    split("ws sse poll", ts, " ")
    split("rate p50 p99 cpu gen", metrics, " ")
    split("fixed unbounded", kinds, " ")
    for (a = 1; a <= 2; a++) for (b = 1; b <= 3; b++) for (c = 1; c <= 5; c++)
        med[kinds[a], ts[b], metrics[c]] = median(list[kinds[a], ts[b], metrics[c]])
    printf "medians of %d repetition(s); %d subscribers on one channel, 1 publisher on /ws, 64 B messages\n", reps, subs
    print "latency: publish to receive (ms); CPU: utime+stime per delivery (us), of the server (/proc/PID/stat) and of the generator"
    print "ratios: transport / ws, median [lowest-highest of single repetitions]"
    if (quick) print "(--quick: a smoke test; its runs are too short for CPU figures in 10 ms ticks to mean much)"
    for (a = 1; a <= 2; a++) {
        k = kinds[a]
        print ""
        if (k == "fixed") printf "fixed rate: %d messages/s published, %d deliveries/s expected\n", rate, rate * subs
        else print "unbounded: as fast as a window of 64 messages allows"
        printf "%-9s %12s %7s %7s %10s %9s %18s %18s %18s\n", "transport", "deliveries/s", "p50", "p99", "server CPU", "gen CPU", "deliveries/s vs ws", "p99 vs ws", "server CPU vs ws"
        for (b = 1; b <= 3; b++) {
            t = ts[b]
            printf "%-9s %12s %7s %7s %10s %9s %18s %18s %18s\n", t, fmt(med[k, t, "rate"], 0), ms(med[k, t, "p50"]), \
                ms(med[k, t, "p99"]), fmt(med[k, t, "cpu"], 3), fmt(med[k, t, "gen"], 3), \
                ratio(k, t, "rate"), ratio(k, t, "p99"), ratio(k, t, "cpu")
        }
    }
    print ""
    printf "errors in all runs: %d\n", errors
}
' "$RESULTS" | tee "$OUT/summary.txt"
