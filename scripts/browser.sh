#!/usr/bin/env bash
# Browser suite: headless Chromium against Ripple, plus the Node unit tests of ripple.js.
#   tests/browser/compression.test.mjs  Chromium's native WebSocket against the interop_server
#                                       (permessage-deflate both ways, echoes, close, subprotocols)
#   tests/browser/chat.test.mjs         the chat page (/): a room, history, presence, a page offline
#                                       while 50 messages are sent, a server restart, JWT tokens
#   tests/browser/dashboard.test.mjs    /dashboard and its stats feed (/api/stats)
#   tests/browser/fallback.test.mjs     the chat page without WebSocket (SSE) and without
#                                       EventSource (long-polling), offline and back, fallback
#   tests/js/ripple.test.mjs            ripple.js in Node against a real server: backoff, state
#                                       events, recovery, duplicates, ping, getToken
#   tests/js/transports.test.mjs        ripple.js over /sse and /poll with /rpc, and the choice
#                                       of transport
#   tests/js/types.test.mjs             ripple.js against ripple.d.ts (tsc --strict)
# The tests are specified in tests/browser/README.md.
#
# usage: scripts/browser.sh
# Installs Debian's Chromium (scripts/install/chromium.sh: installed or the script fails, never
# skipped) and the suites' npm packages (`npm ci` in tests/browser: playwright-core; in tests/js:
# ws; each pinned by its package-lock.json and skipped when a stamp shows the same lock file and
# Node), builds
#   cargo build --release --locked -p ripple --example interop_server
#   cargo build --release --locked -p ripple-server --example serve
# and runs every test file with one Node test runner, one file at a time (TAP, then
# "N passed, N failed"). Screenshots of the pages go to target/screenshots/.
# Exit 1 if a test failed or the runner ended without its summary; 2 if the setup failed.
#
# env: RIPPLE_INTEROP_SERVER  the echo server binary (default target/release/examples/interop_server)
#      RIPPLE_SERVE           the Ripple server binary (default target/release/examples/serve);
#                             when both are set, nothing is built
#      RIPPLE_CHROMIUM        the browser (default /usr/bin/chromium)
#      RIPPLE_SCREENSHOTS     where the screenshots go (default target/screenshots)
#      BROWSER_TIMEOUT        seconds for the whole test run (default 300)
#      BROWSER_OUT            log directory (default out/browser)
set -euo pipefail
RP_TAG="browser"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
case "${1:-}" in
    "") ;;
    -h|--help) rp_usage "$0" 0 ;;
    *) echo "$RP_TAG: unknown argument '$1'" >&2; rp_usage "$0" ;;
esac
cd "$RP_ROOT"

TIMEOUT="${BROWSER_TIMEOUT:-300}"
OUT="${BROWSER_OUT:-out/browser}"
SUITE="$RP_ROOT/tests/browser"
JS_SUITE="$RP_ROOT/tests/js"
T0=$SECONDS

# --- Chromium, Node packages, the server -------------------------------------------------------
scripts/install/chromium.sh || rp_die "installing Chromium failed"
CHROMIUM="${RIPPLE_CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || rp_die "$CHROMIUM is missing after scripts/install/chromium.sh"
export RIPPLE_CHROMIUM="$CHROMIUM"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    rp_die "node and npm are needed (Node.js >= 20, for playwright-core and the test runner)"
fi
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 20 ] || rp_die "Node.js $(node --version) is too old: playwright-core needs >= 20"

# npm ci in DIR unless its stamp (Node version, package.json, package-lock.json) is current and
# PACKAGE loads.
npm_install() {
    local dir="$1" package="$2" stamp="$1/node_modules/.ripple-stamp" want version
    want="$({ node --version; cat "$dir/package.json" "$dir/package-lock.json"; } | rp_hash)"
    version="$(cd "$dir" && node -p "require('$package/package.json').version" 2>/dev/null)" || version=""
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -n "$version" ]; then
        rp_log "$package $version already installed in ${dir#"$RP_ROOT"/}"
        return
    fi
    rp_log "npm ci in ${dir#"$RP_ROOT"/} (node $(node --version), npm $(npm --version))"
    (cd "$dir" && timeout 600 npm ci --no-audit --no-fund --loglevel=error) ||
        rp_die "npm ci in $dir failed"
    version="$(cd "$dir" && node -p "require('$package/package.json').version" 2>/dev/null)" ||
        rp_die "$package does not load after npm ci in $dir"
    echo "$want" > "$stamp"
    rp_log "$package $version installed in ${dir#"$RP_ROOT"/}"
}
npm_install "$SUITE" playwright-core
npm_install "$JS_SUITE" ws

build() { # build PACKAGE EXAMPLE: the release example binary's path
    rp_log "cargo build --release --locked -p $1 --example $2" >&2
    cargo build --release --locked -p "$1" --example "$2" >&2 ||
        rp_die "building $1's example $2 failed"
    echo "$RP_ROOT/${CARGO_TARGET_DIR:-target}/release/examples/$2"
}
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$RP_ROOT/$1" ;; esac; }
[ -n "${RIPPLE_INTEROP_SERVER:-}" ] || RIPPLE_INTEROP_SERVER="$(build ripple interop_server)"
[ -n "${RIPPLE_SERVE:-}" ] || RIPPLE_SERVE="$(build ripple-server serve)"
RIPPLE_INTEROP_SERVER="$(absolute "$RIPPLE_INTEROP_SERVER")"
RIPPLE_SERVE="$(absolute "$RIPPLE_SERVE")"
[ -x "$RIPPLE_INTEROP_SERVER" ] || rp_die "$RIPPLE_INTEROP_SERVER is not an executable"
[ -x "$RIPPLE_SERVE" ] || rp_die "$RIPPLE_SERVE is not an executable"
export RIPPLE_INTEROP_SERVER RIPPLE_SERVE
rp_log "setup done in $(rp_fmt_secs $((SECONDS - T0)))"

# --- the tests ---------------------------------------------------------------------------------
mkdir -p "$OUT"
LOG="$RP_ROOT/$OUT/tests.log"
case "$OUT" in /*) LOG="$OUT/tests.log" ;; esac
shopt -s nullglob
TESTS=("$SUITE"/*.test.mjs "$JS_SUITE"/*.test.mjs)
[ ${#TESTS[@]} -gt 0 ] || rp_die "no tests/browser/*.test.mjs or tests/js/*.test.mjs"
rp_log "${#TESTS[@]} test files: ${TESTS[*]##*/}"
T1=$SECONDS
set +e
(cd "$SUITE" && timeout --kill-after=10 "$TIMEOUT" node --test --test-concurrency=1 \
    --test-reporter=./reporter.mjs --test-reporter-destination=stdout "${TESTS[@]}" </dev/null 2>&1) |
    tee "$LOG"
RC=${PIPESTATUS[0]}
set -e
[ "$RC" != 124 ] || echo "$RP_TAG: the test run timed out after ${TIMEOUT}s"
SUMMARY="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOG" | tail -n 1)" || true
rp_log "tests ran in $(rp_fmt_secs $((SECONDS - T1))) (log: $LOG)"
if [ -z "$SUMMARY" ]; then
    echo "$RP_TAG: the test runner (exit status $RC) ended without its summary"
    echo "0 passed, 1 failed"
    exit 1
fi
read -r _ _ FAILED _ <<< "${SUMMARY//,/}"
if [ "$FAILED" = 0 ] && [ "$RC" != 0 ]; then
    echo "$RP_TAG: no test failed, but the test runner exited with status $RC"
    echo "${SUMMARY%%,*}, 1 failed"
    exit 1
fi
echo "$SUMMARY"
[ "$FAILED" = 0 ] && [ "$RC" = 0 ]
