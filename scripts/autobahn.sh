#!/usr/bin/env bash
# Autobahn|TestSuite conformance run for Ripple, judged against a committed baseline.
#
# usage: scripts/autobahn.sh [server|client|all] [--cases PATTERN] [--exclude PATTERN] [--update-baseline]
#   server   wstest fuzzingclient against target/release/examples/echo_server 127.0.0.1:PORT
#   client   wstest fuzzingserver on 127.0.0.1:PORT, walked by target/release/examples/autobahn_client
#            (env AUTOBAHN_URL=ws://127.0.0.1:PORT, AUTOBAHN_AGENT=ripple, AUTOBAHN_CASE_COUNT)
#   all      both (the default)
#   --cases PATTERN    case patterns, comma or space separated (default "*")
#   --exclude PATTERN  patterns to skip (default: none; every case runs, permessage-deflate's
#                      12.* and 13.* included)
#   --update-baseline  write this run's verdicts into the baseline (the role(s) run; a run with
#                      --cases/--exclude merges its cases in, a default run replaces the role)
# Builds the examples first (cargo build --release --locked -p ripple --example echo_server
# --example autobahn_client). Reports: out/autobahn/{server,client}/ (index.html to browse).
# For each role prints "autobahn ROLE: N cases, OK=… NON-STRICT=… INFORMATIONAL=… UNIMPLEMENTED=…
# FAILED=…", then compares every case's behavior and behaviorClose with
# tests/autobahn/expected-results.json and prints each difference.
# exit: 0 all good; 1 a FAILED case, a difference from the baseline, a missing baseline, or an
#       incomplete run; 2 usage, install or build error.
#
# env: RIPPLE_ECHO_SERVER_CMD      server under test (default target/release/examples/echo_server);
#                                  the listen address is appended; split on whitespace
#      RIPPLE_AUTOBAHN_CLIENT_CMD  client under test (default target/release/examples/autobahn_client)
#      (what is overridden is not built: e.g. to check this script against another peer)
#      AUTOBAHN_BASELINE  baseline file (default tests/autobahn/expected-results.json)
#      AUTOBAHN_OUT       report root (default out/autobahn)
#      AUTOBAHN_AGENT     agent name in the reports (default ripple)
#      AUTOBAHN_TIMEOUT   seconds for one role's run (default 1800)
#      AUTOBAHN_HOME      where scripts/install/autobahn.sh installed wstest (default ~/.cache/autobahn)
set -euo pipefail
RP_TAG="autobahn"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# Every case runs, permessage-deflate (RFC 7692, 12.* and 13.*) included.
DEFAULT_EXCLUDE=""

ROLE_ARG=""; CASES="*"; EXCLUDE="$DEFAULT_EXCLUDE"; UPDATE=0; PARTIAL=""
while [ $# -gt 0 ]; do
    case "$1" in
        server|client|all) [ -z "$ROLE_ARG" ] || rp_usage "$0"; ROLE_ARG="$1"; shift ;;
        --cases) [ $# -ge 2 ] || rp_usage "$0"; CASES="$2"; PARTIAL="--partial"; shift 2 ;;
        --exclude) [ $# -ge 2 ] || rp_usage "$0"; EXCLUDE="$2"; PARTIAL="--partial"; shift 2 ;;
        --cases=*) CASES="${1#*=}"; PARTIAL="--partial"; shift ;;
        --exclude=*) EXCLUDE="${1#*=}"; PARTIAL="--partial"; shift ;;
        --update-baseline) UPDATE=1; shift ;;
        -h|--help) rp_usage "$0" 0 ;;
        *) echo "$RP_TAG: unknown argument '$1'" >&2; rp_usage "$0" ;;
    esac
done
case "${ROLE_ARG:-all}" in
    all) ROLES=(server client) ;;
    *) ROLES=("$ROLE_ARG") ;;
esac
cd "$RP_ROOT"

AGENT="${AUTOBAHN_AGENT:-ripple}"
[[ "$AGENT" =~ ^[A-Za-z0-9._-]+$ ]] || rp_die "AUTOBAHN_AGENT may only use letters, digits, . _ -"
BASELINE="${AUTOBAHN_BASELINE:-tests/autobahn/expected-results.json}"
OUTROOT="${AUTOBAHN_OUT:-out/autobahn}"
TIMEOUT="${AUTOBAHN_TIMEOUT:-1800}"
AUTOBAHN_HOME="${AUTOBAHN_HOME:-$HOME/.cache/autobahn}"
export AUTOBAHN_HOME
AB_PY27="$AUTOBAHN_HOME/py27/bin/python"
AB="$RP_ROOT/scripts/autobahn"
# A custom selection is judged on the cases it ran; a default run on the whole baseline.
[ -z "$PARTIAL" ] || rp_log "custom selection (cases: $CASES; excluded: ${EXCLUDE:-none}): only the selected cases are compared with the baseline"

# --- install, build ------------------------------------------------------------------------------
scripts/install/autobahn.sh --quiet || rp_die "installing the Autobahn|TestSuite failed"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
read -r -a SERVER_CMD <<< "${RIPPLE_ECHO_SERVER_CMD:-$TARGET_DIR/release/examples/echo_server}"
read -r -a CLIENT_CMD <<< "${RIPPLE_AUTOBAHN_CLIENT_CMD:-$TARGET_DIR/release/examples/autobahn_client}"
NEED_BUILD=0
for role in "${ROLES[@]}"; do
    if [ "$role" = server ] && [ -z "${RIPPLE_ECHO_SERVER_CMD:-}" ]; then NEED_BUILD=1; fi
    if [ "$role" = client ] && [ -z "${RIPPLE_AUTOBAHN_CLIENT_CMD:-}" ]; then NEED_BUILD=1; fi
done
if [ "$NEED_BUILD" = 1 ]; then
    rp_log "cargo build --release --locked -p ripple --example echo_server --example autobahn_client"
    cargo build --release --locked -p ripple --example echo_server --example autobahn_client ||
        rp_die "building the Autobahn examples failed"
fi
if [ ${#SERVER_CMD[@]} = 0 ] || [ ${#CLIENT_CMD[@]} = 0 ]; then rp_die "empty RIPPLE_*_CMD"; fi

PIDS=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { local p; for p in ${PIDS[@]+"${PIDS[@]}"}; do rp_stop_pid "$p"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# make_spec ROLE URL DIR: write DIR/fuzzing{client,server}.json from the committed template.
make_spec() {
    local role="$1" url="$2" dir="$3" name
    if [ "$role" = server ]; then name=fuzzingclient; else name=fuzzingserver; fi
    "$AB_PY27" "$AB/make_spec.py" "tests/autobahn/$name.json" "$dir/$name.json" \
        --url "$url" --outdir "$dir" --agent "$AGENT" --cases "$CASES" --exclude "$EXCLUDE" ||
        rp_die "cannot write $dir/$name.json"
    echo "$dir/$name.json"
}

# Tee wstest's output to LOG, with a progress line every 100 cases.
progress() {
    local role="$1" log="$2" t0="$3" n=0 line
    while IFS= read -r line; do
        printf '%s\n' "$line" >>"$log"
        case "$line" in
            *"will run "*" test cases"*) echo "$RP_TAG $role: $line" ;;
            "Running test case ID"*)
                n=$((n + 1))
                [ $((n % 100)) != 0 ] || echo "$RP_TAG $role: $n cases run ($((SECONDS - t0))s)" ;;
        esac
    done
}

# run_server_role DIR: start the echo server, run fuzzingclient against it. Return 0, or 1 when
# the run itself went wrong (the report is judged afterwards either way).
run_server_role() {
    local dir="$1" port pid spec rc=0 t0=$SECONDS
    port="$(rp_free_port)" || rp_die "no free port"
    "${SERVER_CMD[@]}" "127.0.0.1:$port" >"$dir/server.log" 2>&1 &
    pid=$!; PIDS+=("$pid")
    if ! rp_wait_port "$port" 30 "$pid"; then
        tail -n 20 "$dir/server.log" >&2
        echo "$RP_TAG server: '${SERVER_CMD[*]} 127.0.0.1:$port' $(kill -0 "$pid" 2>/dev/null &&
            echo "did not accept connections within 30s" || echo "exited before accepting connections") (log: $dir/server.log)" >&2
        rp_stop_pid "$pid"
        return 1
    fi
    spec="$(make_spec server "ws://127.0.0.1:$port" "$dir")"
    echo "$RP_TAG server: wstest fuzzingclient against ${SERVER_CMD[*]} on ws://127.0.0.1:$port (cases: $CASES; excluded: ${EXCLUDE:-none}); log: $dir/wstest.log"
    set +e
    timeout --kill-after=15 "$TIMEOUT" "$AB_PY27" -u "$AB/wstest_loopback.py" -m fuzzingclient -s "$spec" </dev/null 2>&1 |
        progress server "$dir/wstest.log" "$t0"
    rc=${PIPESTATUS[0]}
    set -e
    if [ "$rc" != 0 ]; then
        tail -n 15 "$dir/wstest.log" >&2
        echo "$RP_TAG server: wstest exited with status $rc$([ "$rc" = 124 ] && echo " (timed out after ${TIMEOUT}s)")" >&2
    fi
    grep -m 3 '^Connection to .* failed' "$dir/wstest.log" >&2 && rc=1
    if ! kill -0 "$pid" 2>/dev/null; then
        tail -n 20 "$dir/server.log" >&2
        echo "$RP_TAG server: the server under test exited during the run (log: $dir/server.log)" >&2
        rc=1
    fi
    rp_stop_pid "$pid"
    echo "$RP_TAG server: wstest finished in $(rp_fmt_secs $((SECONDS - t0)))"
    [ "$rc" = 0 ]
}

# run_client_role DIR: start fuzzingserver, run the client under test against it.
run_client_role() {
    local dir="$1" port pid spec count rc=0 t0=$SECONDS url log="$1/wstest.log"
    port="$(rp_free_port)" || rp_die "no free port"
    url="ws://127.0.0.1:$port"
    spec="$(make_spec client "$url" "$dir")"
    # -u 0: no embedded web server; wstest_loopback.py binds the fuzzing server to 127.0.0.1
    "$AB_PY27" -u "$AB/wstest_loopback.py" -m fuzzingserver -u 0 -s "$spec" </dev/null >"$log" 2>&1 &
    pid=$!; PIDS+=("$pid")
    if ! rp_wait_port "$port" 30 "$pid"; then
        tail -n 20 "$log" >&2
        echo "$RP_TAG client: the fuzzingserver did not listen on $url within 30s (log: $log)" >&2
        rp_stop_pid "$pid"
        return 1
    fi
    count="$(sed -n -E 's/.*will run ([0-9]+) test cases.*/\1/p' "$log" | head -n1)" || count=""
    echo "$RP_TAG client: wstest fuzzingserver on $url with ${count:-?} cases (cases: $CASES; excluded: ${EXCLUDE:-none}); log: $log"
    echo "$RP_TAG client: running ${CLIENT_CMD[*]} (AUTOBAHN_URL=$url AUTOBAHN_AGENT=$AGENT)"
    set +e
    AUTOBAHN_URL="$url" AUTOBAHN_AGENT="$AGENT" AUTOBAHN_CASE_COUNT="${count:-}" \
        timeout --kill-after=15 "$TIMEOUT" "${CLIENT_CMD[@]}" </dev/null >"$dir/client.log" 2>&1
    rc=$?
    set -e
    if [ "$rc" != 0 ]; then
        tail -n 20 "$dir/client.log" >&2
        echo "$RP_TAG client: the client under test exited with status $rc$([ "$rc" = 124 ] && echo " (timed out after ${TIMEOUT}s)") (log: $dir/client.log)" >&2
    fi
    if ! grep -q 'Report generation complete' "$log"; then
        echo "$RP_TAG client: the client did not call updateReports; asking the fuzzingserver for the reports" >&2
        if kill -0 "$pid" 2>/dev/null; then
            timeout 300 "$AB_PY27" "$AB/update_reports.py" "$url" "$AGENT" || true
        fi
        rc=1
    fi
    rp_stop_pid "$pid"
    echo "$RP_TAG client: finished in $(rp_fmt_secs $((SECONDS - t0)))"
    [ "$rc" = 0 ]
}

STATUS=0
BASELINE_HINT=0
for role in "${ROLES[@]}"; do
    dir="$OUTROOT/$role"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    rm -f "$dir"/index.json "$dir"/index.html "$dir"/*_case_*.json "$dir"/*_case_*.html "$dir"/*.log
    RUN_OK=1
    if [ "$role" = server ]; then run_server_role "$dir" || RUN_OK=0
    else run_client_role "$dir" || RUN_OK=0; fi
    expect="$(sed -n -E 's/.*will run ([0-9]+) test cases.*/\1/p' "$dir/wstest.log" 2>/dev/null | head -n1)" || expect=""
    set +e
    "$AB_PY27" "$AB/summarize.py" "$dir/index.json" --role "$role" --agent "$AGENT" ${expect:+--expect "$expect"}
    SUM=$?
    set -e
    echo "$RP_TAG $role: reports in $dir (open index.html)"
    if [ ! -f "$dir/index.json" ]; then
        echo "$RP_TAG $role: FAILED: no report"
        STATUS=1
        continue
    fi
    [ "$SUM" = 0 ] && [ "$RUN_OK" = 1 ] || STATUS=1
    if [ "$UPDATE" = 1 ]; then
        if [ "$SUM" = 2 ] || [ "$RUN_OK" = 0 ]; then
            echo "$RP_TAG $role: the run went wrong (see above): the baseline is NOT updated"
        else
            "$AB_PY27" "$AB/baseline.py" update "$role" "$dir/index.json" "$BASELINE" --agent "$AGENT" $PARTIAL ||
                rp_die "cannot update $BASELINE"
        fi
    elif [ "$SUM" = 2 ]; then
        echo "$RP_TAG $role: incomplete report: not compared with the baseline"
    else
        set +e
        "$AB_PY27" "$AB/baseline.py" compare "$role" "$dir/index.json" "$BASELINE" --agent "$AGENT" $PARTIAL
        CMP=$?
        set -e
        [ "$CMP" = 0 ] || STATUS=1
        if [ "$CMP" = 1 ] || [ "$CMP" = 2 ]; then BASELINE_HINT=1; fi
    fi
done

if [ "$BASELINE_HINT" = 1 ]; then
    echo "$RP_TAG: the results differ from $BASELINE (or it has none for this role): either a regression" \
        "(fix it), or an intended change (rerun with --update-baseline, review the diff and commit it)"
fi
[ "$STATUS" = 0 ] && echo "$RP_TAG: ok" || echo "$RP_TAG: FAILED"
exit "$STATUS"
