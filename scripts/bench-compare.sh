#!/usr/bin/env bash
# Side-by-side loopback echo benchmark: Ripple, tokio-tungstenite and fastwebsockets servers in
# one run (method and latest results: docs/benchmarks.md).
#
# usage: scripts/bench-compare.sh [--quick] [--reps N] [--no-build] [--callgrind]
# Builds   cargo build --release --locked -p ripple-bench-peers -p ripple-bench-load
# then, REPS times (default 3), for each server in turn (ripple, tungstenite, fastwebsockets,
# ripple, ... so that slow drifts of a noisy machine hit all three alike):
#   start it on a free 127.0.0.1 port, run echo-load with
#     small  32-byte binary messages,  C=50 connections, P=16 in flight each, 4000 per connection
#     large  64 KiB binary messages,   C=8 connections,  P=4 in flight each,  2000 per connection
#   stop it; start a fresh one; open 10,000 idle connections and read its VmRSS; stop it.
# Server on CPU 0, load generator on CPU 1 (taskset), when taskset exists and nproc >= 2. Every
# server runs tokio's current-thread runtime. Prints the median of the REPS runs per server and
# the ratios Ripple / peer; never compare absolute numbers across runs, only ratios within one.
#   --quick     one repetition of tiny runs (C=10 P=8 1000/conn; C=4 P=2 100/conn; 1000 idle),
#               under a minute once built (a smoke test for CI)
#   --reps N    repetitions (default 3; 1 with --quick)
#   --no-build  use the binaries already in target/release
#   --callgrind instead of timing, count each server's user-space instructions per echoed
#               message under valgrind's callgrind (deterministic where timings are noisy; the
#               kernel's share, most of the CPU time on loopback, is not counted): the
#               difference between a run of (NA) and of (NB) messages per connection, so that
#               start-up and handshakes cancel out; then the top functions of the first server
# Exit status: 0 when every run completed (whether or not Ripple met its targets), 1 when a
# server or a load run failed, 2 when the build failed.
#
# env: BENCH_OUT      directory for logs and raw results (default out/bench)
#      BENCH_SERVERS  servers to run (default "ripple tungstenite fastwebsockets")
set -euo pipefail
RP_TAG="bench"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

QUICK=0
REPS=""
BUILD=1
CALLGRIND=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --reps) REPS="${2:-}"; shift ;;
        --no-build) BUILD=0 ;;
        --callgrind) CALLGRIND=1 ;;
        -h|--help) rp_usage "$0" 0 ;;
        *) echo "$RP_TAG: unknown argument '$1'" >&2; rp_usage "$0" ;;
    esac
    shift
done
cd "$RP_ROOT"

# --- parameters ------------------------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
    REPS="${REPS:-1}"
    SMALL=(-c 10 -p 8 -s 32 -n 1000)
    LARGE=(-c 4 -p 2 -s 65536 -n 100)
    IDLE_CONNS=1000
else
    REPS="${REPS:-3}"
    SMALL=(-c 50 -p 16 -s 32 -n 4000)
    LARGE=(-c 8 -p 4 -s 65536 -n 2000)
    IDLE_CONNS=10000
fi
case "$REPS" in ''|*[!0-9]*|0) rp_die "--reps needs a positive number" ;; esac
read -r -a SERVERS <<< "${BENCH_SERVERS:-ripple tungstenite fastwebsockets}"
OUT="${BENCH_OUT:-out/bench}"
RESULTS="$OUT/results.txt"
LOAD_TIMEOUT=120          # seconds for one echo-load run (it also bounds itself)
CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"

# Idle connections need a descriptor each, in the server and in the load generator.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT="$(ulimit -n)"
if [ "$FD_LIMIT" != unlimited ] && [ "$FD_LIMIT" -lt $((IDLE_CONNS + 256)) ]; then
    IDLE_CONNS=$((FD_LIMIT - 256))
    rp_log "ulimit -n is $FD_LIMIT: measuring $IDLE_CONNS idle connections instead"
fi

SERVER_PIN=(); CLIENT_PIN=(); PINNING="none (taskset missing or fewer than 2 CPUs)"
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    SERVER_PIN=(taskset -c 0); CLIENT_PIN=(taskset -c 1)
    PINNING="server on CPU 0, load generator on CPU 1 (taskset)"
fi

# --- build -----------------------------------------------------------------------------------
BIN="${CARGO_TARGET_DIR:-target}/release"
if [ "$BUILD" = 1 ]; then
    rp_log "cargo build --release --locked -p ripple-bench-peers -p ripple-bench-load"
    RP_DIE_STATUS=2 # a failed build
    cargo build --release --locked -p ripple-bench-peers -p ripple-bench-load ||
        rp_die "building the benchmark failed"
fi
RP_DIE_STATUS=1 # from here on, a failed server or load run
for b in echo-load "${SERVERS[@]/%/-echo}"; do
    [ -x "$BIN/$b" ] || rp_die "$BIN/$b is missing (build it, or drop --no-build)"
done

mkdir -p "$OUT"
rm -f "$OUT"/*.log "$RESULTS"
SERVER_PID=""
trap 'rp_stop_pid "$SERVER_PID"' EXIT

# --- one server, one load run ----------------------------------------------------------------
# start_server NAME LOGTAG: sets SERVER_PID and SERVER_PORT.
start_server() {
    local name="$1" log="$OUT/$1-echo.$2.log"
    SERVER_PORT="$(rp_free_port)" || rp_die "no free port"
    # Emptied here, not by the background redirection: that one may run only after the wait
    # below has read an old "listening".
    : >"$log"
    "${SERVER_PIN[@]}" "$BIN/$name-echo" "127.0.0.1:$SERVER_PORT" >"$log" 2>&1 &
    SERVER_PID=$!
    rp_wait_line "$log" "listening" 10 "$SERVER_PID" ||
        rp_die "$name-echo did not start (see $log)"
}

stop_server() {
    rp_stop_pid "$SERVER_PID"
    SERVER_PID=""
}

# load NAME KIND ARGS...: one echo-load run against the running server; its RESULT line, tagged
# with the server and the kind of run, goes to $RESULTS.
load() {
    local name="$1" kind="$2" line
    shift 2
    line="$(timeout $((LOAD_TIMEOUT + 10)) "${CLIENT_PIN[@]}" "$BIN/echo-load" "$@" \
        --server-pid "$SERVER_PID" --clk-tck "$CLK_TCK" --timeout "$LOAD_TIMEOUT" \
        --label "$name" 2>>"$OUT/echo-load.log" | grep '^RESULT ')" ||
        rp_die "echo-load $kind against $name-echo failed (see $OUT/echo-load.log)"
    kill -0 "$SERVER_PID" 2>/dev/null || rp_die "$name-echo died during the $kind run"
    echo "${line/RESULT /RESULT kind=$kind }" | tee -a "$RESULTS"
}

machine() {
    local cpu
    cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine:  $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r)"
    echo "pinning:  $PINNING"
    echo "runtime:  tokio current_thread in every server; the load generator is Ripple's client, current_thread"
    if [ "$CALLGRIND" = 1 ]; then
        echo "runs:     callgrind, one server at a time; small ${CG_SMALL[*]}; large ${CG_LARGE[*]} (conns pipeline size NA NB)"
    else
        echo "runs:     $REPS repetition(s), interleaved; small ${SMALL[*]}; large ${LARGE[*]}; idle $IDLE_CONNS connections"
    fi
}

# --- callgrind: instructions per message ----------------------------------------------------
# callgrind_run NAME KIND CONNS PIPELINE SIZE NA NB: prints "NAME KIND IR_PER_MESSAGE"; the two
# dumps stay in $OUT/cg.NAME.KIND.out.{1,2}.
callgrind_run() {
    local name="$1" kind="$2" c="$3" p="$4" size="$5" na="$6" nb="$7" log ir_a ir_b n
    local cg="$OUT/cg.$name.$kind.out" url
    log="$OUT/$name-echo.callgrind.$kind.log"
    SERVER_PORT="$(rp_free_port)" || rp_die "no free port"
    : >"$log"
    valgrind --tool=callgrind --dump-instr=no --compress-strings=no --compress-pos=no \
        --callgrind-out-file="$cg" "$BIN/$name-echo" "127.0.0.1:$SERVER_PORT" >"$log" 2>&1 &
    SERVER_PID=$!
    rp_wait_line "$log" "listening" 60 "$SERVER_PID" || rp_die "$name-echo did not start under valgrind"
    url="ws://127.0.0.1:$SERVER_PORT/"
    cg_load() {
        timeout $((LOAD_TIMEOUT + 10)) "$BIN/echo-load" echo "$url" -c "$c" -p "$p" -s "$size" \
            -n "$1" -w 0 --binary --timeout "$LOAD_TIMEOUT" --label "$name" \
            >>"$OUT/echo-load.log" 2>&1 || rp_die "echo-load against $name-echo under callgrind failed"
    }
    cg_load 2
    timeout 60 callgrind_control -z "$SERVER_PID" >/dev/null || rp_die "callgrind_control -z failed"
    cg_load "$na"
    timeout 60 callgrind_control -d A "$SERVER_PID" >/dev/null || rp_die "callgrind_control -d failed"
    cg_load "$nb"
    timeout 60 callgrind_control -d B "$SERVER_PID" >/dev/null || rp_die "callgrind_control -d failed"
    stop_server
    ir_a="$(awk '/^summary:/ { print $2 }' "$cg.1")"
    ir_b="$(awk '/^summary:/ { print $2 }' "$cg.2")"
    n=$(((nb - na) * c))
    echo "$name $kind $(((ir_b - ir_a) / n))"
}

# callgrind_top NAME KIND MESSAGES: the functions with the highest self cost, per message.
callgrind_top() {
    local cg="$OUT/cg.$1.$2.out"
    awk -v n="$3" '
        FNR == 1 { sign = (FILENAME ~ /\.1$/) ? -1 : 1 }
        /^fn=/ { fn = substr($0, 4); after = 0; next }
        /^calls=/ { after = 1; next }
        /^[0-9]/ { if (after) { after = 0; next } if (fn != "" && NF >= 2) cost[fn] += sign * $2 }
        END {
            for (f in cost) {
                name = f
                for (i = 0; i < 4; i++) gsub(/<[^<>]*>/, "<>", name)
                printf "%10.1f  %s\n", cost[f] / n, substr(name, 1, 110)
            }
        }' "$cg.1" "$cg.2" | sort -rn >"$cg.top"
    head -n 15 "$cg.top"    # not piped: head would end sort with SIGPIPE, fatal under pipefail
}

if [ "$CALLGRIND" = 1 ]; then
    if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
        rp_die "--callgrind needs valgrind (apt-get install valgrind)"
    fi
    CG_SMALL=(50 16 32 40 240)      # connections, pipeline, size, NA, NB: 10,000 messages
    CG_LARGE=(8 4 65536 10 60)      # 400 messages
    machine | tee "$OUT/machine.txt"
    for name in "${SERVERS[@]}"; do
        rp_log "callgrind: $name"
        callgrind_run "$name" small "${CG_SMALL[@]}" | tee -a "$OUT/callgrind.txt"
        callgrind_run "$name" large "${CG_LARGE[@]}" | tee -a "$OUT/callgrind.txt"
    done
    echo
    echo "user-space instructions (callgrind Ir) per echoed message; the kernel is not counted"
    awk -v servers="${SERVERS[*]}" '
        { ir[$1, $2] = $3 }
        END {
            ns = split(servers, names, " ")
            printf "%-16s %14s %14s %16s %16s\n", "server", "32B Ir/msg", "64K Ir/msg", "32B vs " names[1], "64K vs " names[1]
            for (i = 1; i <= ns; i++) {
                s = names[i]
                printf "%-16s %14d %14d %16.2f %16.2f\n", s, ir[s, "small"], ir[s, "large"], \
                    ir[names[1], "small"] / ir[s, "small"], ir[names[1], "large"] / ir[s, "large"]
            }
            printf "(the last two columns: %s / server; < 1 means %s executes fewer instructions)\n", names[1], names[1]
        }' "$OUT/callgrind.txt" | tee "$OUT/callgrind-summary.txt"
    for kind in small large; do
        echo
        echo "${SERVERS[0]}, $kind messages: top functions by self cost, Ir per message"
        if [ "$kind" = small ]; then n=$(((CG_SMALL[4] - CG_SMALL[3]) * CG_SMALL[0])); else n=$(((CG_LARGE[4] - CG_LARGE[3]) * CG_LARGE[0])); fi
        callgrind_top "${SERVERS[0]}" "$kind" "$n"
    done | tee -a "$OUT/callgrind-summary.txt"
    exit 0
fi

# --- the runs --------------------------------------------------------------------------------
T0=$SECONDS
machine | tee "$OUT/machine.txt"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (load average before the runs)" | tee -a "$OUT/machine.txt"
for ((rep = 1; rep <= REPS; rep++)); do
    for name in "${SERVERS[@]}"; do
        rp_log "repetition $rep/$REPS: $name"
        start_server "$name" "echo.$rep"
        url="ws://127.0.0.1:$SERVER_PORT/"
        load "$name" small echo "$url" "${SMALL[@]}" --binary
        load "$name" large echo "$url" "${LARGE[@]}" --binary
        stop_server
        # A fresh process, so that buffers freed by the echo runs do not hide idle memory.
        start_server "$name" "idle.$rep"
        load "$name" idle idle "ws://127.0.0.1:$SERVER_PORT/" -c "$IDLE_CONNS" --concurrency 128
        stop_server
    done
done
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (load average after the runs)" | tee -a "$OUT/machine.txt"
rp_log "runs took $(rp_fmt_secs $((SECONDS - T0))); raw results in $RESULTS"

# --- summary: medians per server, ratios Ripple / peer ---------------------------------------
# Ratios are of the medians; the bracket gives the lowest and highest ratio of single
# repetitions (server runs of the same repetition are neighbours in time).
echo
awk -v servers="${SERVERS[*]}" -v quick="$QUICK" '
function median(list,    n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    if (n == 0) return ""
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function fmt(v, d) { return v == "" ? "-" : sprintf("%." d "f", v) }
function ratio(metric, peer,    r, lo, hi, i, q, n) {
    if (med[S0, metric] == "" || med[peer, metric] == "" || med[peer, metric] == 0) return "-"
    r = sprintf("%.2f", med[S0, metric] / med[peer, metric])
    lo = ""; hi = ""
    for (i = 1; i <= reps; i++) {
        if (!((S0, metric, i) in val) || !((peer, metric, i) in val) || val[peer, metric, i] == 0) continue
        q = val[S0, metric, i] / val[peer, metric, i]
        if (lo == "" || q < lo) lo = q
        if (hi == "" || q > hi) hi = q
    }
    if (reps > 1 && lo != "") r = r sprintf(" [%.2f-%.2f]", lo, hi)
    return r
}
/^RESULT / {
    delete kv
    for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
    s = kv["label"]; k = kv["kind"]; n = ++count[s, k]; if (n > reps) reps = n
    if (k == "idle") add(s, "idle_kib", kv["kib_per_conn"], n)
    else {
        add(s, k "_rate", kv["msgs_per_s"], n)
        # --quick: runs too short for 10 ms ticks; schedstat (ns) stands in where there is one.
        cpu = (quick && kv["server_sched_us_per_msg"] > 0) ? kv["server_sched_us_per_msg"] : kv["server_cpu_us_per_msg"]
        add(s, k "_cpu", cpu, n)
        add(s, k "_mbs", kv["mb_per_s"], n)
        add(s, k "_user", kv["server_user_us_per_msg"], n)
        add(s, k "_sys", kv["server_sys_us_per_msg"], n)
    }
}
function add(s, metric, v, n) { list[s, metric] = list[s, metric] " " v; val[s, metric, n] = v }
END {
    ns = split(servers, names, " "); S0 = names[1]
    split("small_rate small_cpu small_user small_sys large_rate large_mbs large_cpu large_user large_sys idle_kib", metrics, " ")
    for (i = 1; i <= ns; i++) for (m in metrics) med[names[i], metrics[m]] = median(list[names[i], metrics[m]])
    printf "medians of %d repetition(s); CPU = server utime+stime per echoed message\n", reps
    if (quick) print "(--quick: a smoke test; CPU from /proc/PID/schedstat, as these runs are too short for 10 ms ticks)"
    printf "%-16s %12s %12s %12s %10s %12s %12s\n", "server", "32B msgs/s", "32B CPU us", "64K msgs/s", "64K MB/s", "64K CPU us", "KiB/idle"
    for (i = 1; i <= ns; i++) {
        s = names[i]
        printf "%-16s %12s %12s %12s %10s %12s %12s\n", s, fmt(med[s, "small_rate"], 0), fmt(med[s, "small_cpu"], 3), \
            fmt(med[s, "large_rate"], 0), fmt(med[s, "large_mbs"], 1), fmt(med[s, "large_cpu"], 2), fmt(med[s, "idle_kib"], 2)
    }
    print ""
    print "server CPU per message split into user and system (kernel) time, us"
    printf "%-16s %12s %12s %12s %12s\n", "server", "32B user", "32B system", "64K user", "64K system"
    for (i = 1; i <= ns; i++) {
        s = names[i]
        printf "%-16s %12s %12s %12s %12s\n", s, fmt(med[s, "small_user"], 3), fmt(med[s, "small_sys"], 3), \
            fmt(med[s, "large_user"], 2), fmt(med[s, "large_sys"], 2)
    }
    if (ns < 2) exit
    print ""
    printf "ratios %s / peer (CPU and KiB: < 1 means %s uses less; msgs/s: > 1 means %s is faster)\n", S0, S0, S0
    printf "%-20s %18s %18s %18s %18s %18s\n", "", "32B CPU/msg", "64K CPU/msg", "32B msgs/s", "64K msgs/s", "KiB/idle conn"
    for (i = 2; i <= ns; i++) {
        s = names[i]
        printf "%-20s %18s %18s %18s %18s %18s\n", "vs " s, ratio("small_cpu", s), ratio("large_cpu", s), \
            ratio("small_rate", s), ratio("large_rate", s), ratio("idle_kib", s)
    }
    if (S0 != "ripple" || quick) exit
    print ""
    print "targets (from the issue):"
    target("32-byte echo CPU/msg <= fastwebsockets", med["fastwebsockets", "small_cpu"] != "", med[S0, "small_cpu"] <= med["fastwebsockets", "small_cpu"], ratio("small_cpu", "fastwebsockets"))
    target("64 KiB echo CPU/msg <= tokio-tungstenite", med["tungstenite", "large_cpu"] != "", med[S0, "large_cpu"] <= med["tungstenite", "large_cpu"], ratio("large_cpu", "tungstenite"))
    target("idle connection <= 2 KiB", 1, med[S0, "idle_kib"] <= 2, fmt(med[S0, "idle_kib"], 2) " KiB")
}
function target(what, known, ok, detail) {
    printf "  %-42s %s (%s)\n", what, !known ? "not measured" : ok ? "met" : "MISSED", detail
}
' "$RESULTS" | tee "$OUT/summary.txt"
