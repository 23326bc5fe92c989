#!/usr/bin/env bash
# Side-by-side loopback echo benchmark: Ripple, tokio-tungstenite and fastwebsockets servers, and
# Python `websockets` and Node `ws` where their installers succeed, in one run, loaded by
# `ripple bench` (method and latest results: docs/benchmarks.md).
#
# usage: scripts/bench-compare.sh [--quick] [--reps N] [--no-build] [--callgrind]
# Builds   cargo build --release --locked -p ripple-bench-peers -p ripple-cli
# Installs scripts/install/python.sh and scripts/install/node.sh (idempotent; a server whose
#          installer fails is left out, with a note)
# then, REPS times (default 3), for each server in turn (ripple, tungstenite, fastwebsockets,
# python, node, ripple, ... so that slow drifts of a noisy machine hit all of them alike):
#   start it on a free 127.0.0.1 port, run `ripple bench --json` with
#     small  32-byte binary messages, -c 50 -p 16, 200,000 messages in all, after a 1 s warm-up
#     large  64 KiB binary messages,  -c 8 -p 4,   16,000 messages in all
#   stop it; start a fresh one; `ripple bench -m connect` opens 10,000 idle connections and
#   reads its VmRSS growth; stop it.
# Server on CPU 0, load generator on CPU 1 (taskset), when taskset exists and nproc >= 2. The Rust
# servers run tokio's current-thread runtime; Python and Node are single-threaded event loops.
# Prints the median of the REPS runs per server and the ratios Ripple / peer; never compare
# absolute numbers across runs, only ratios within one.
#   --quick     one repetition of tiny runs (small 20,000 messages at -c 10 -p 8; large 1,000 at
#               -c 4 -p 2; 1000 idle), under a minute once built (a smoke test for CI)
#   --reps N    repetitions (default 3; 1 with --quick)
#   --no-build  use the binaries already in target/release (the installers still run)
#   --callgrind instead of timing, count each Rust server's user-space instructions per echoed
#               message under valgrind's callgrind (deterministic where timings are noisy; the
#               kernel's share, most of the CPU time on loopback, is not counted): the
#               difference between a run of (NA) and of (NB) messages per connection, so that
#               start-up and handshakes cancel out; then the top functions of the first server
# Exit status: 0 when every run completed (whether or not Ripple met its targets), 1 when a
# server or a load run failed, 2 when the build failed.
#
# env: BENCH_OUT      directory for logs and raw results (default out/bench)
#      BENCH_SERVERS  servers to run (default "ripple tungstenite fastwebsockets python node";
#                     python and node only when installed)
#      RIPPLE_PY_VENV the Python venv (default ~/.cache/ripple/py, as scripts/install/python.sh)
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
    SMALL=(-c 10 -p 8 -s 32 -n 20000 --warmup 200ms)
    LARGE=(-c 4 -p 2 -s 64k -n 1000)
    IDLE_CONNS=1000
else
    REPS="${REPS:-3}"
    SMALL=(-c 50 -p 16 -s 32 -n $((50 * 4000)) --warmup 1s)
    LARGE=(-c 8 -p 4 -s 64k -n $((8 * 2000)))
    IDLE_CONNS=10000
fi
case "$REPS" in ''|*[!0-9]*|0) rp_die "--reps needs a positive number" ;; esac
read -r -a SERVERS <<< "${BENCH_SERVERS:-ripple tungstenite fastwebsockets python node}"
OUT="${BENCH_OUT:-out/bench}"
RESULTS="$OUT/results.txt"
LOAD_TIMEOUT=180          # seconds for one `ripple bench` run
PY_VENV="${RIPPLE_PY_VENV:-$HOME/.cache/ripple/py}"

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

mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT.install.log" "$RESULTS" "$OUT/results.jsonl"

# --- build -----------------------------------------------------------------------------------
BIN="${CARGO_TARGET_DIR:-target}/release"
if [ "$BUILD" = 1 ]; then
    rp_log "cargo build --release --locked -p ripple-bench-peers -p ripple-cli"
    RP_DIE_STATUS=2 # a failed build
    cargo build --release --locked -p ripple-bench-peers -p ripple-cli ||
        rp_die "building the benchmark failed"
fi
RP_DIE_STATUS=1 # from here on, a failed server or load run
[ -x "$BIN/ripple" ] || rp_die "$BIN/ripple is missing (build it, or drop --no-build)"

# The interpreted peers: installed (idempotently) here, left out with a note when that fails.
# Callgrind counts only the Rust servers (an interpreter's instructions say little).
KEPT=()
for name in "${SERVERS[@]}"; do
    case "$name" in
        python|node)
            if [ "$CALLGRIND" = 1 ]; then
                rp_log "--callgrind: leaving out $name"
            elif "scripts/install/$name.sh" --quiet >>"$OUT.install.log" 2>&1; then
                KEPT+=("$name")
            else
                rp_log "scripts/install/$name.sh failed (see $OUT.install.log): leaving out $name"
            fi
            continue ;;
    esac
    [ -x "$BIN/$name-echo" ] || rp_die "$BIN/$name-echo is missing (build it, or drop --no-build)"
    KEPT+=("$name")
done
SERVERS=("${KEPT[@]}")
[ "${#SERVERS[@]}" -gt 0 ] || rp_die "no server to run"

SERVER_PID=""
trap 'rp_stop_pid "$SERVER_PID"' EXIT

# --- one server, one load run ----------------------------------------------------------------
# server_cmd NAME: sets SERVER_CMD (the command, without its address argument) and SERVER_PATH.
server_cmd() {
    case "$1" in
        python) SERVER_CMD=("$PY_VENV/bin/python" -u tests/interop/py_server.py); SERVER_PATH=/echo ;;
        node) SERVER_CMD=(node tests/interop/node_server.mjs); SERVER_PATH=/echo ;;
        *) SERVER_CMD=("$BIN/$1-echo"); SERVER_PATH=/ ;;
    esac
}

# start_server NAME LOGTAG: sets SERVER_PID, SERVER_PORT and URL.
start_server() {
    local name="$1" log="$OUT/$1.$2.log"
    server_cmd "$name"
    SERVER_PORT="$(rp_free_port)" || rp_die "no free port"
    # Emptied here, not by the background redirection: that one may run only after the wait
    # below has read an old "listening".
    : >"$log"
    "${SERVER_PIN[@]}" "${SERVER_CMD[@]}" "127.0.0.1:$SERVER_PORT" >"$log" 2>&1 &
    SERVER_PID=$!
    rp_wait_line "$log" "listening" 20 "$SERVER_PID" ||
        rp_die "the $name server did not start (see $log)"
    URL="ws://127.0.0.1:$SERVER_PORT$SERVER_PATH"
}

stop_server() {
    rp_stop_pid "$SERVER_PID"
    SERVER_PID=""
}

# load NAME KIND ARGS...: one `ripple bench --json` run against the running server (URL); its
# JSON goes to results.jsonl, and a RESULT line of the figures used here, tagged with the server
# and the kind of run, to $RESULTS. No compression offered: the Rust peers do not implement it,
# and Ripple's, Python's and Node's servers would compress if offered.
load() {
    local name="$1" kind="$2" json line
    shift 2
    json="$(timeout "$LOAD_TIMEOUT" "${CLIENT_PIN[@]}" "$BIN/ripple" bench "$URL" "$@" \
        --no-compress --server-pid "$SERVER_PID" --json --no-progress 2>>"$OUT/ripple-bench.log")" ||
        rp_die "ripple bench ($kind) against $name failed (see $OUT/ripple-bench.log)"
    kill -0 "$SERVER_PID" 2>/dev/null || rp_die "the $name server died during the $kind run"
    echo "$json" >>"$OUT/results.jsonl"
    line="$(python3 -c '
import json, sys
j = json.loads(sys.argv[3])
lat = j.get("latency_us") or {}
f = {"label": sys.argv[1], "kind": sys.argv[2], "errors": j.get("errors")}
for k in ("messages_per_sec", "mb_per_sec", "server_cpu_us_per_msg", "client_cpu_us_per_msg",
          "cpu_ratio", "server_rss_kib_per_conn", "handshakes_per_sec"):
    if j.get(k) is not None:
        f[k] = j[k]
for k in ("p50", "p99"):
    if lat.get(k) is not None:
        f[k] = lat[k]
print("RESULT " + " ".join("%s=%s" % kv for kv in f.items()))
' "$name" "$kind" "$json")" || rp_die "cannot read the JSON of ripple bench: $json"
    echo "$line" | tee -a "$RESULTS"
}

python_ver() {
    [ -x "$PY_VENV/bin/python" ] && "$PY_VENV/bin/python" -c 'import websockets; print(websockets.__version__)' 2>/dev/null
}

machine() {
    local cpu
    cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine:  $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r)"
    echo "pinning:  $PINNING"
    echo "servers:  ${SERVERS[*]}"
    echo "runtime:  tokio current_thread in the Rust servers; Python websockets $(python_ver) and Node $(node --version 2>/dev/null) ws single-threaded; the load generator is \`ripple bench\`, one current_thread runtime"
    if [ "$CALLGRIND" = 1 ]; then
        echo "runs:     callgrind, one server at a time; small ${CG_SMALL[*]}; large ${CG_LARGE[*]} (conns pipeline size NA NB)"
    else
        echo "runs:     $REPS repetition(s), interleaved; small ${SMALL[*]}; large ${LARGE[*]}; idle -m connect -c $IDLE_CONNS -p 128 --settle 1s"
    fi
}

# --- callgrind: instructions per message ----------------------------------------------------
# callgrind_run NAME KIND CONNS PIPELINE SIZE NA NB: prints "NAME KIND IR_PER_MESSAGE"; the two
# dumps stay in $OUT/cg.NAME.KIND.out.{1,2}.
callgrind_run() {
    local name="$1" kind="$2" c="$3" p="$4" size="$5" na="$6" nb="$7" log ir_a ir_b n
    local cg="$OUT/cg.$name.$kind.out"
    log="$OUT/$name-echo.callgrind.$kind.log"
    SERVER_PORT="$(rp_free_port)" || rp_die "no free port"
    : >"$log"
    valgrind --tool=callgrind --dump-instr=no --compress-strings=no --compress-pos=no \
        --callgrind-out-file="$cg" "$BIN/$name-echo" "127.0.0.1:$SERVER_PORT" >"$log" 2>&1 &
    SERVER_PID=$!
    rp_wait_line "$log" "listening" 60 "$SERVER_PID" || rp_die "$name-echo did not start under valgrind"
    URL="ws://127.0.0.1:$SERVER_PORT/"
    cg_load() {  # MESSAGES_PER_CONNECTION
        timeout "$LOAD_TIMEOUT" "$BIN/ripple" bench "$URL" -c "$c" -p "$p" -s "$size" \
            -n $(($1 * c)) --binary --no-compress --json --no-progress \
            >>"$OUT/ripple-bench.log" 2>&1 || rp_die "ripple bench against $name-echo under callgrind failed"
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
        load "$name" small "${SMALL[@]}" --binary
        load "$name" large "${LARGE[@]}" --binary
        stop_server
        # A fresh process, so that buffers freed by the echo runs do not hide idle memory.
        start_server "$name" "idle.$rep"
        load "$name" idle -m connect -c "$IDLE_CONNS" -p 128 --settle 1s
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
    if (k == "idle") add(s, "idle_kib", kv["server_rss_kib_per_conn"], n)
    else {
        add(s, k "_rate", kv["messages_per_sec"], n)
        add(s, k "_cpu", kv["server_cpu_us_per_msg"], n)
        add(s, k "_mbs", kv["mb_per_sec"], n)
        add(s, k "_gen", kv["client_cpu_us_per_msg"], n)
        add(s, k "_genratio", kv["cpu_ratio"], n)
        add(s, k "_p50", kv["p50"], n)
        add(s, k "_p99", kv["p99"], n)
    }
}
function add(s, metric, v, n) { if (v == "") return; list[s, metric] = list[s, metric] " " v; val[s, metric, n] = v }
END {
    ns = split(servers, names, " "); S0 = names[1]
    split("small_rate small_cpu small_gen small_genratio small_p50 small_p99 large_rate large_mbs large_cpu large_gen large_genratio large_p50 large_p99 idle_kib", metrics, " ")
    for (i = 1; i <= ns; i++) for (m in metrics) med[names[i], metrics[m]] = median(list[names[i], metrics[m]])
    printf "medians of %d repetition(s); CPU = server utime+stime per echoed message (ripple bench --server-pid)\n", reps
    if (quick) print "(--quick: a smoke test; its runs are too short for CPU figures in 10 ms ticks to mean much)"
    printf "%-16s %12s %12s %12s %10s %12s %12s\n", "server", "32B msgs/s", "32B CPU us", "64K msgs/s", "64K MB/s", "64K CPU us", "KiB/idle"
    for (i = 1; i <= ns; i++) {
        s = names[i]
        printf "%-16s %12s %12s %12s %10s %12s %12s\n", s, fmt(med[s, "small_rate"], 0), fmt(med[s, "small_cpu"], 3), \
            fmt(med[s, "large_rate"], 0), fmt(med[s, "large_mbs"], 1), fmt(med[s, "large_cpu"], 2), fmt(med[s, "idle_kib"], 2)
    }
    print ""
    print "latency (send to echo, us) and the load generator'"'"'s own CPU per message (us, and over the server'"'"'s)"
    printf "%-16s %12s %12s %12s %12s %12s %12s %12s %12s\n", "server", "32B p50", "32B p99", "64K p50", "64K p99", "32B gen CPU", "64K gen CPU", "32B gen/srv", "64K gen/srv"
    for (i = 1; i <= ns; i++) {
        s = names[i]
        printf "%-16s %12s %12s %12s %12s %12s %12s %12s %12s\n", s, fmt(med[s, "small_p50"], 0), fmt(med[s, "small_p99"], 0), \
            fmt(med[s, "large_p50"], 0), fmt(med[s, "large_p99"], 0), fmt(med[s, "small_gen"], 3), fmt(med[s, "large_gen"], 2), \
            fmt(med[s, "small_genratio"], 2), fmt(med[s, "large_genratio"], 2)
    }
    print "(gen/srv: the generator'"'"'s CPU over the server'"'"'s in the same window, ripple bench cpu_ratio; above 1 the generator costs more)"
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
