#!/usr/bin/env bash
# Browser suite: headless Chromium's native WebSocket against Ripple's interop_server
# (permessage-deflate used both ways, text and binary echoes, clean close, subprotocols).
# The tests are specified in tests/browser/README.md.
#
# usage: scripts/browser.sh
# Installs Debian's Chromium (scripts/install/chromium.sh: installed or the script fails, never
# skipped) and the suite's npm packages (`npm ci` in tests/browser: playwright-core, pinned by
# package-lock.json; skipped when a stamp shows the same lock file and Node), builds
#   cargo build --release --locked -p ripple --example interop_server
# and runs tests/browser/*.test.mjs with Node's test runner (TAP, then "N passed, N failed").
# Exit 1 if a test failed or the runner ended without its summary; 2 if the setup failed.
#
# env: RIPPLE_INTEROP_SERVER  the server binary (default target/release/examples/interop_server,
#                             built here; when set, nothing is built)
#      RIPPLE_CHROMIUM        the browser (default /usr/bin/chromium)
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
T0=$SECONDS

# --- Chromium, Node packages, the server -------------------------------------------------------
scripts/install/chromium.sh || rp_die "installing Chromium failed"
CHROMIUM="${RIPPLE_CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || rp_die "$CHROMIUM is missing after scripts/install/chromium.sh"
export RIPPLE_CHROMIUM="$CHROMIUM"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    rp_die "node and npm are needed (Node.js >= 20, for playwright-core)"
fi
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 20 ] || rp_die "Node.js $(node --version) is too old: playwright-core needs >= 20"

STAMP="$SUITE/node_modules/.ripple-stamp"
want_stamp() { { node --version; cat "$SUITE/package.json" "$SUITE/package-lock.json"; } | rp_hash; }
pw_version() { (cd "$SUITE" && node -p 'require("playwright-core/package.json").version' 2>/dev/null); }
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(want_stamp)" ] && [ -n "$(pw_version)" ]; then
    rp_log "playwright-core $(pw_version) already installed"
else
    rp_log "npm ci in tests/browser (node $(node --version), npm $(npm --version))"
    (cd "$SUITE" && timeout 600 npm ci --no-audit --no-fund --loglevel=error) ||
        rp_die "npm ci in tests/browser failed"
    [ -n "$(pw_version)" ] || rp_die "playwright-core does not load after npm ci"
    want_stamp > "$STAMP"
    rp_log "playwright-core $(pw_version) installed"
fi

if [ -z "${RIPPLE_INTEROP_SERVER:-}" ]; then
    rp_log "cargo build --release --locked -p ripple --example interop_server"
    cargo build --release --locked -p ripple --example interop_server ||
        rp_die "building the Ripple interop_server failed"
    RIPPLE_INTEROP_SERVER="$RP_ROOT/${CARGO_TARGET_DIR:-target}/release/examples/interop_server"
fi
case "$RIPPLE_INTEROP_SERVER" in /*) ;; *) RIPPLE_INTEROP_SERVER="$RP_ROOT/$RIPPLE_INTEROP_SERVER" ;; esac
[ -x "$RIPPLE_INTEROP_SERVER" ] || rp_die "$RIPPLE_INTEROP_SERVER is not an executable"
export RIPPLE_INTEROP_SERVER
rp_log "setup done in $(rp_fmt_secs $((SECONDS - T0)))"

# --- the tests ---------------------------------------------------------------------------------
mkdir -p "$OUT"
LOG="$RP_ROOT/$OUT/tests.log"
case "$OUT" in /*) LOG="$OUT/tests.log" ;; esac
shopt -s nullglob
TESTS=("$SUITE"/*.test.mjs)
[ ${#TESTS[@]} -gt 0 ] || rp_die "no tests/browser/*.test.mjs"
T1=$SECONDS
set +e
(cd "$SUITE" && timeout --kill-after=10 "$TIMEOUT" node --test \
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
