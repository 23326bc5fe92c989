#!/usr/bin/env bash
# Terminal and interop tests of the `ripple` command line (crates/ripple-cli).
#
# usage: scripts/cli.sh [--no-build] [--bench]
# Builds   cargo build --release --locked -p ripple-cli, and -p ripple --examples
#          (echo_server, chat_server)
# then runs, each with bounded waits:
#   terminal  `ripple connect` in a tmux pane (its own tmux server and socket), driven by
#             send-keys and read by capture-pane: typing and editing, a message received while
#             a line is half typed (the chat_server example relays it from a second client),
#             /ping, /binary, /json, history, colours and NO_COLOR, /close 4000 bye, Ctrl-D
#   pipe      `ripple connect` with stdin from a pipe against the Ripple echo_server and the
#             Python `websockets` server of tests/interop (installed by
#             scripts/install/python.sh): echo, binary, fragmented, server ping, server close
#             code, rejected handshake
#   --bench   also a short `ripple bench` against the echo_server (figures printed; only
#             errors fail)
# tmux is installed with apt-get when missing. Prints one line per test and ends with
# "N passed, N failed". Exit status: 0 all passed, 1 a test failed, 2 set-up failed.
#
# env: CLI_OUT  directory for logs (default out/cli)
set -euo pipefail
RP_TAG="cli"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=1
BENCH=0
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --bench) BENCH=1 ;;
        -h|--help) rp_usage "$0" 0 ;;
        *) echo "$RP_TAG: unknown argument '$1'" >&2; rp_usage "$0" ;;
    esac
    shift
done
cd "$RP_ROOT"

OUT="${CLI_OUT:-out/cli}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
BIN="${CARGO_TARGET_DIR:-target}/release"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
RIPPLE="$BIN/ripple"

# --- set-up ----------------------------------------------------------------------------------
if ! command -v tmux >/dev/null; then
    rp_log "installing tmux (apt-get)"
    { apt-get update -qq && apt-get install -y -qq tmux; } >"$OUT/apt.log" 2>&1 ||
        rp_die "could not install tmux (see $OUT/apt.log)"
fi
if [ "$BUILD" = 1 ]; then
    rp_log "cargo build --release --locked -p ripple-cli; -p ripple --examples"
    cargo build --release --locked -p ripple-cli || rp_die "building ripple-cli failed"
    cargo build --release --locked -p ripple --examples || rp_die "building the examples failed"
fi
for b in "$RIPPLE" "$BIN/examples/echo_server" "$BIN/examples/chat_server"; do
    [ -x "$b" ] || rp_die "$b is missing (build it, or drop --no-build)"
done
PY=""
if scripts/install/python.sh --quiet >"$OUT/python-install.log" 2>&1; then
    PY="${RIPPLE_PY_VENV:-$HOME/.cache/ripple/py}/bin/python"
else
    rp_log "Python websockets could not be installed (see $OUT/python-install.log): its tests fail"
fi

PIDS=()
TMUX_SOCKET="ripple-cli-$$"
STATE="$(mktemp -d)"
cleanup() {
    tmux -L "$TMUX_SOCKET" kill-server 2>/dev/null || true
    local pid
    for pid in "${PIDS[@]}"; do rp_stop_pid "$pid"; done
    rm -rf "$STATE"
}
trap cleanup EXIT

# start_server NAME PORT CMD...: starts a server in the background and waits for its port.
start_server() {
    local name="$1" port="$2"
    shift 2
    "$@" >"$OUT/$name.log" 2>&1 &
    PIDS+=("$!")
    rp_wait_port "$port" 15 "$!" || rp_die "$name did not start (see $OUT/$name.log)"
}

ECHO_PORT="$(rp_free_port)"
start_server echo_server "$ECHO_PORT" "$BIN/examples/echo_server" "127.0.0.1:$ECHO_PORT"
CHAT_PORT="$(rp_free_port)"
start_server chat_server "$CHAT_PORT" "$BIN/examples/chat_server" "127.0.0.1:$CHAT_PORT"
ECHO="ws://127.0.0.1:$ECHO_PORT/"
CHAT="ws://127.0.0.1:$CHAT_PORT/"
PY_URL=""
if [ -n "$PY" ]; then
    PY_PORT="$(rp_free_port)"
    "$PY" tests/interop/py_server.py "127.0.0.1:$PY_PORT" >"$OUT/py_server.log" 2>&1 &
    PIDS+=("$!")
    if rp_wait_line "$OUT/py_server.log" "listening" 15 "$!"; then
        PY_URL="ws://127.0.0.1:$PY_PORT"
    else
        rp_log "the Python server did not start (see $OUT/py_server.log): its tests fail"
    fi
fi

# --- test bookkeeping ------------------------------------------------------------------------
PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok    $1"; }
fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL  $1: $2"
    local line
    if [ -n "${3:-}" ]; then
        while IFS= read -r line; do echo "      | $line"; done <<<"$3"
    fi
    return 0
}

# --- tmux helpers ----------------------------------------------------------------------------
SESSION=""
tm() { tmux -L "$TMUX_SOCKET" "$@"; }

# open_client NAME URL [ENV...]: runs `ripple connect URL` in a fresh pane; the pane's shell
# prints EXIT=status when it ends, then the terminal's line mode (icanon, or -icanon if the
# client left it raw).
open_client() {
    local name="$1" url="$2"
    shift 2
    SESSION="$name"
    tm new-session -d -s "$name" -x 120 -y 40 \
        "env XDG_STATE_HOME='$STATE' $* '$RIPPLE' connect '$url'; echo EXIT=\$?; \
         stty -a | tr ' ;' '\\n\\n' | grep -x -- '-\\?icanon'; sleep 120"
    wait_pane "connected to" 10
}

pane() { tm capture-pane -p -t "$SESSION" -S -300; }
pane_escaped() { tm capture-pane -p -e -t "$SESSION" -S -300; }

# wait_pane REGEX SECS: until the pane shows REGEX (grep -E).
wait_pane() {
    local re="$1" secs="$2" i
    for ((i = 0; i < secs * 20; i++)); do
        pane | grep -Eq -- "$re" && return 0
        sleep 0.05
    done
    return 1
}

# type_keys TEXT: types TEXT a key at a time, as a person would.
type_keys() {
    local text="$1" i
    for ((i = 0; i < ${#text}; i++)); do
        tm send-keys -t "$SESSION" -l -- "${text:i:1}"
        sleep 0.01
    done
}
key() { tm send-keys -t "$SESSION" "$@"; }

# The last non-empty line of the pane.
last_line() { pane | awk 'NF { line = $0 } END { print line }'; }

close_session() { tm kill-session -t "$SESSION" 2>/dev/null || true; }

# --- terminal tests --------------------------------------------------------------------------
t_type_and_edit() {
    open_client edit "$ECHO" NO_COLOR=1 || return 0
    type_keys "hello wrold"
    key BSpace BSpace BSpace BSpace BSpace
    type_keys "world"
    key Left Left Left Left Left C-k
    type_keys "there"
    key Enter
    if wait_pane "^< hello there$" 5 && pane | grep -q "^> hello there$"; then
        pass "terminal: type, edit (backspace, arrows, Ctrl-K), send, echo shown with < marker"
    else
        fail "terminal: type and edit" "expected '> hello there' and '< hello there'" "$(pane)"
    fi
}

t_receive_while_typing() {
    open_client chat "$CHAT" NO_COLOR=1 || return 0
    type_keys "half a li"
    sleep 0.2
    printf 'pushed by a peer\n' | "$RIPPLE" connect "$CHAT" >/dev/null 2>&1 || true
    if wait_pane "^< \[[0-9:]{8}\] pushed by a peer$" 5 && [ "$(last_line)" = "> half a li" ]; then
        pass "terminal: message received while typing is printed above the prompt"
    else
        fail "terminal: receive while typing" "the half-typed line must stay '> half a li'" "$(pane)"
        return 0
    fi
    type_keys "ne"
    key Enter
    if wait_pane "^< \[[0-9:]{8}\] half a line$" 5; then
        pass "terminal: the interrupted line is still complete when sent"
    else
        fail "terminal: interrupted line" "expected '< [..] half a line'" "$(pane)"
    fi
    close_session
}

t_commands() {
    open_client cmds "$ECHO" NO_COLOR=1 || return 0
    type_keys "/ping"; key Enter
    if wait_pane "^pong: [0-9.]+ (µs|ms)$" 5; then
        pass "terminal: /ping prints the round-trip time"
    else
        fail "terminal: /ping" "no 'pong: N µs'" "$(pane)"
    fi
    type_keys "/binary 68 65 6c 6c 6f"; key Enter
    if wait_pane "^< \[binary, 5 bytes\] 68656c6c6f$" 5; then
        pass "terminal: /binary sends hex, binary echo shown as hex"
    else
        fail "terminal: /binary" "no '< [binary, 5 bytes] 68656c6c6f'" "$(pane)"
    fi
    type_keys "/json"; key Enter
    type_keys '{"name":"ripple","n":[1,2]}'; key Enter
    if wait_pane '^< \{$' 5 && pane | grep -q '^  "name": "ripple",$' && pane | grep -q '^    1,$'; then
        pass "terminal: /json pretty-prints JSON messages"
    else
        fail "terminal: /json" "no pretty-printed JSON" "$(pane)"
    fi
    type_keys "/nope"; key Enter
    if wait_pane "^unknown command /nope" 5; then
        pass "terminal: unknown commands are explained"
    else
        fail "terminal: unknown command" "no explanation" "$(pane)"
    fi
    key Up Up
    if wait_pane '^> \{"name":"ripple","n":\[1,2\]\}$' 5; then
        pass "terminal: history (Up recalls earlier lines)"
    else
        fail "terminal: history" "Up Up did not recall the JSON line" "$(pane)"
    fi
    key C-u
    type_keys "/close 4000 bye"; key Enter
    if wait_pane 'connection closed \(server answered 4000' 5 && wait_pane "^EXIT=0$" 5; then
        pass "terminal: /close 4000 bye closes (server echoes 4000) and exits 0"
    else
        fail "terminal: /close 4000 bye" "no close report or exit status 0" "$(pane)"
    fi
    if grep -q '^/close 4000 bye$' "$STATE/ripple/history" 2>/dev/null; then
        pass "terminal: history file under \$XDG_STATE_HOME/ripple/history"
    else
        fail "terminal: history file" "$STATE/ripple/history lacks the last command" \
            "$(cat "$STATE/ripple/history" 2>/dev/null)"
    fi
    close_session
}

t_server_closes() {
    open_client closes "$CHAT" NO_COLOR=1 || return 0
    # The chat_server example ends a connection that sends a binary message (with 1000); the
    # close arrives while the editor waits at a fresh prompt, in raw mode.
    type_keys "/binary 00"; key Enter
    if wait_pane "^closed by the server: 1000" 5 && wait_pane "^EXIT=0$" 5 &&
        wait_pane "^icanon$" 5; then
        pass "terminal: server close at the prompt: reason shown, exit 0, terminal restored"
    else
        fail "terminal: server close" "want the close reason, EXIT=0 and icanon" "$(pane)"
    fi
    close_session
}

t_colours() {
    open_client colour "$ECHO" || return 0
    type_keys "tint"; key Enter
    wait_pane "^< tint$" 5 || true
    # The `<` marker is green on a terminal...
    if pane_escaped | grep -q $'\e\[32m<'; then
        pass "terminal: markers coloured on a terminal"
    else
        fail "terminal: colours" "no green < marker" "$(pane_escaped | cat -v)"
    fi
    key C-d
    if wait_pane "^EXIT=0$" 5; then
        pass "terminal: Ctrl-D closes and exits 0"
    else
        fail "terminal: Ctrl-D" "no EXIT=0" "$(pane)"
    fi
    close_session
    # ... and plain with NO_COLOR.
    open_client nocolour "$ECHO" NO_COLOR=1 || return 0
    type_keys "tint"; key Enter
    wait_pane "^< tint$" 5 || true
    if pane_escaped | grep -q $'\e\[32m<'; then
        fail "terminal: NO_COLOR" "colour codes despite NO_COLOR" "$(pane_escaped | cat -v)"
    else
        pass "terminal: NO_COLOR turns colours off"
    fi
    close_session
}

# --- pipe tests ------------------------------------------------------------------------------
# pipe_case NAME WANT_STATUS WANT_STDOUT STDERR_REGEX INPUT ARGS...: INPUT and WANT_STDOUT are
# printf %b strings; STDERR_REGEX is matched against the whole of stderr (grep -Ez).
pipe_case() {
    local name="$1" want_status="$2" want_out="$3" err_re="$4" input="$5" out err status
    shift 5
    out="$(mktemp)"; err="$(mktemp)"
    status=0
    printf '%b' "$input" | timeout 30 "$RIPPLE" connect "$@" >"$out" 2>"$err" || status=$?
    if [ "$status" != "$want_status" ]; then
        fail "$name" "exit status $status, want $want_status" "$(cat "$out" "$err")"
    elif [ "$(cat "$out")" != "$(printf '%b' "$want_out")" ]; then
        fail "$name" "unexpected output" "$(cat "$out" "$err")"
    elif [ -n "$err_re" ] && ! grep -Ezq -- "$err_re" "$err"; then
        fail "$name" "stderr lacks /$err_re/" "$(cat "$err")"
    else
        pass "$name"
    fi
    rm -f "$out" "$err"
}

t_pipes() {
    pipe_case "pipe: ripple echo_server, lines in order" 0 'one\ntwo\n\nthree' "" \
        'one\ntwo\n\nthree\n' "$ECHO"
    pipe_case "pipe: ripple echo_server, --binary as hex" 0 '6869\n00ff' "" \
        'hi\n\x00\xff\n' "$ECHO" --binary
    if [ -z "$PY_URL" ]; then
        fail "pipe: Python websockets" "server not available"
        return 0
    fi
    pipe_case "pipe: python /echo, lines in order" 0 'a\nbb\nccc' "" 'a\nbb\nccc\n' "$PY_URL/echo"
    pipe_case "pipe: python /echo, --binary as hex" 0 '616263' "" 'abc\n' "$PY_URL/echo" --binary
    local big
    big="$(head -c 5000 /dev/zero | tr '\0' 'x')"
    pipe_case "pipe: python /echo-fragmented, 5000-byte line" 0 "$big" "" "$big\n" \
        "$PY_URL/echo-fragmented"
    pipe_case "pipe: python server ping answered" 0 'pong-received' "" 'ping-me\n' "$PY_URL/echo"
    pipe_case "pipe: python closes with 4000 -> status 3" 3 '' 'closed by the server: 4000 "bye"' \
        '' "$PY_URL/close?code=4000&reason=bye"
    pipe_case "pipe: python closes with 1000 -> status 0" 0 '' 'closed by the server: 1000' \
        '' "$PY_URL/close?code=1000"
    pipe_case "pipe: python rejects -> status 1, status and body shown" 1 '' \
        'HTTP 403 Forbidden.*response body: forbidden' 'x\n' "$PY_URL/reject"
    pipe_case "pipe: refused connection -> status 1" 1 '' 'connection refused by 127.0.0.1:' \
        'x\n' "ws://127.0.0.1:$(rp_free_port)/"
}

t_bench() {
    local json status=0
    json="$("$RIPPLE" bench "$ECHO" --json -d 2 -c 50 -p 16 -s 32 \
        --server-pid "${PIDS[0]}" 2>"$OUT/bench.err")" || status=$?
    echo "      bench 32 B echo: $json"
    if [ "$status" = 0 ] && grep -q '"errors":0' <<<"$json"; then
        pass "bench: 2 s of 32-byte echo, no errors"
    else
        fail "bench: 32-byte echo" "status $status" "$(cat "$OUT/bench.err")"
    fi
}

T0=$SECONDS
# An idle session keeps the tmux server up between tests (the server exits with its last
# session, and a test starting just then would find it gone).
tm new-session -d -s keep -x 80 -y 10 "sleep 3600" || rp_die "tmux does not start"
t_type_and_edit
close_session
t_receive_while_typing
t_commands
t_server_closes
t_colours
t_pipes
[ "$BENCH" = 1 ] && t_bench
rp_log "took $(rp_fmt_secs $((SECONDS - T0)))"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
