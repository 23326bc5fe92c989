#!/usr/bin/env bash
# Ripple nodes on one Redis (docs/scale-out.md): the README's two-node demo, checked, and the
# scale-out benchmark.
#
# usage: scripts/cluster.sh demo           two `ripple serve` nodes on one redis-server: a
#                                          client subscribed on node A receives what is
#                                          published on node B (WebSocket and HTTP API)
#        scripts/cluster.sh bench [ARGS]   scale-bench: one node in memory, one node on Redis,
#                                          three nodes on Redis, side by side (ARGS go to it:
#                                          --quick, --seconds S, --rate R, --window W,
#                                          --subscribers N, --publishers P, --only SETUP)
# Both install redis-server first if needed (scripts/install/redis.sh), start it on a free
# 127.0.0.1 port without persistence, and stop everything they started by PID.
# env: BENCH_OUT  where `bench` writes its report (default out/bench; file scale-out.md)
# Exit status: 0 on success, 1 when the demo's message did not cross or the bench failed,
# 2 on a usage or build error.
set -euo pipefail
RP_TAG="cluster"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$RP_ROOT"

MODE="${1:-}"
[ $# -gt 0 ] && shift
case "$MODE" in
    demo|bench) ;;
    -h|--help) rp_usage "$0" 0 ;;
    *) echo "$RP_TAG: expected 'demo' or 'bench'" >&2; rp_usage "$0" ;;
esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ripple-cluster.XXXXXX")"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do rp_stop_pid "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT

bash scripts/install/redis.sh --quiet || rp_die "redis-server is not installed"

# start_redis: a redis-server on a free port, without persistence; sets REDIS_PORT.
start_redis() {
    REDIS_PORT="$(rp_free_port)" || rp_die "no free port"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$WORK" --loglevel warning > "$WORK/redis.log" 2>&1 &
    PIDS+=($!)
    rp_wait_port "$REDIS_PORT" 10 "$!" || rp_die "redis-server did not start: $(cat "$WORK/redis.log")"
}

if [ "$MODE" = bench ]; then
    OUT="${BENCH_OUT:-out/bench}"
    mkdir -p "$OUT"
    cargo build --release --locked -p ripple-bench-scale >&2 || exit 2
    rp_log "running target/release/scale-bench $*"
    if ! target/release/scale-bench "$@" | tee "$OUT/scale-out.md"; then
        rp_log "scale-bench failed"
        exit 1
    fi
    rp_log "report: $OUT/scale-out.md"
    exit 0
fi

# demo: what README.md's "Two nodes on one Redis" does, by hand.
cargo build --locked -p ripple-cli >&2 || exit 2
RIPPLE=target/debug/ripple
start_redis
BROKER="redis://127.0.0.1:$REDIS_PORT/0"
PORT_A="$(rp_free_port)"
PORT_B="$(rp_free_port)"
for node in A B; do
    port_var="PORT_$node"
    "$RIPPLE" serve --bind "127.0.0.1:${!port_var}" --broker "$BROKER" --api-key k --publish-rate 0 \
        > "$WORK/node-$node.log" 2>&1 &
    PIDS+=($!)
    rp_wait_port "${!port_var}" 20 "$!" || rp_die "node $node did not start: $(cat "$WORK/node-$node.log")"
done
rp_log "node A on 127.0.0.1:$PORT_A, node B on 127.0.0.1:$PORT_B, both on $BROKER"

# A subscriber on node A: its stdin stays open (a fifo) while B publishes.
mkfifo "$WORK/in"
"$RIPPLE" connect "ws://127.0.0.1:$PORT_A/ws" < "$WORK/in" > "$WORK/a.out" 2> "$WORK/a.err" &
PIDS+=($!)
exec 3> "$WORK/in"
echo '{"type":"subscribe","channel":"lobby","id":1}' >&3
rp_wait_line "$WORK/a.out" '"type":"subscribed"' 10 || rp_die "no subscribed reply on node A"

printf '%s\n' '{"type":"publish","channel":"lobby","data":"hello from B over WebSocket"}' |
    "$RIPPLE" connect "ws://127.0.0.1:$PORT_B/ws" > "$WORK/b.out"
curl -sS -H 'Authorization: Bearer k' -d '{"channel":"lobby","data":"hello from B over HTTP"}' \
    "http://127.0.0.1:$PORT_B/api/publish" > "$WORK/curl.out"
echo >> "$WORK/curl.out"

ok=1
for text in "hello from B over WebSocket" "hello from B over HTTP"; do
    if rp_wait_line "$WORK/a.out" "$text" 10; then
        rp_log "node A received: $(grep -F "$text" "$WORK/a.out")"
    else
        rp_log "node A did not receive \"$text\""
        ok=0
    fi
done
exec 3>&-
rp_log "node B's API answered: $(cat "$WORK/curl.out")"
[ "$ok" = 1 ] || { sed 's/^/  a.out: /' "$WORK/a.out" >&2; exit 1; }
rp_log "ok: messages published on node B crossed to node A through Redis"
