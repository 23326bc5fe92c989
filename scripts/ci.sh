#!/usr/bin/env bash
# The project's one test command; CI runs it as `bash .ci/run` in a fresh clone (CI=true, no stdin).
#
# usage: scripts/ci.sh            (from any directory)
# Steps, cheapest first, failing fast:
#   fmt         cargo fmt --all -- --check
#   clippy      cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
#   boundary    ripple-proto's normal dependencies include none of tokio, futures, futures-util,
#               hyper, axum, mio (cargo tree -p ripple-proto -e normal --all-features)
#   nextest     installs cargo-nextest if missing (cargo install cargo-nextest --locked)
#   tests       cargo nextest run --workspace --all-features --locked
#   doctests    cargo test --doc --workspace --all-features --locked
#   fuzz-build  cargo check --manifest-path fuzz/Cargo.toml   (only if fuzz/Cargo.toml exists)
#   autobahn    scripts/autobahn.sh all      (Autobahn|TestSuite, both roles, against the baseline)
#   interop     scripts/interop.sh           (Python websockets and Node ws peers)
#   browser     scripts/browser.sh           (headless Chromium: chat page, dashboard, ripple.js)
#   channels-py scripts/channels-py.sh       (Python clients: channels and recovery on /ws; SSE,
#                                            long-polling and /rpc with httpx and curl)
#   cli         scripts/cli.sh               (ripple connect in tmux, pipe mode against peers)
#   abuse       scripts/abuse.sh --quick     (hostile clients against a real ripple serve: memory
#                                            bounds, deadlines, shutdown; a bystander loses nothing)
#   bench-smoke scripts/bench-compare.sh --quick (Ripple beside peer servers, one short run)
#   fallback-smoke scripts/bench-fallback.sh --quick (fan-out over /ws, /sse and /poll, one short run)
# Each step prints a header and its duration; the end is a table of step timings. Exit status:
# that of the first failing step (named in the last lines), 0 when all pass.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "${1:-}" in
    "") ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "ci: unknown argument '$1' (usage: scripts/ci.sh)" >&2; exit 2 ;;
esac
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || { echo "ci: cargo not found" >&2; exit 2; }

FORBIDDEN_IN_PROTO=(tokio futures futures-util hyper axum mio)

NAMES=(); SECS=(); RESULTS=()
T_ALL=$SECONDS

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

summary() {
    local i
    echo
    echo "ci: step timings"
    for i in "${!NAMES[@]}"; do
        printf '  %-12s %7s  %s\n' "${NAMES[$i]}" "$(fmt_secs "${SECS[$i]}")" "${RESULTS[$i]}"
    done
    printf '  %-12s %7s\n' "total" "$(fmt_secs $((SECONDS - T_ALL)))"
}

# step NAME COMMAND...: run one step; on failure print the summary and exit with its status.
step() {
    local name="$1" t0=$SECONDS rc=0
    shift
    echo
    echo "==> ci: $name: $*"
    "$@" || rc=$?
    NAMES+=("$name"); SECS+=($((SECONDS - t0)))
    if [ "$rc" = 0 ]; then
        RESULTS+=("ok")
        echo "<== ci: $name: ok ($(fmt_secs $((SECONDS - t0))))"
    else
        RESULTS+=("FAILED (exit $rc)")
        echo "<== ci: $name: FAILED with exit status $rc ($(fmt_secs $((SECONDS - t0))))"
        summary
        echo "ci: FAILED at step '$name'"
        exit "$rc"
    fi
}

# The sans-I/O core must not pull in a runtime or an HTTP stack, under any feature.
check_boundary() {
    local tree bad=() dep
    tree="$(cargo tree -p ripple-proto -e normal --all-features --prefix none --locked)" || return 1
    for dep in "${FORBIDDEN_IN_PROTO[@]}"; do
        if awk -v d="$dep" '$1 == d { found = 1 } END { exit !found }' <<< "$tree"; then bad+=("$dep"); fi
    done
    if [ ${#bad[@]} -gt 0 ]; then
        echo "ci: dependency boundary violated: ripple-proto (the sans-I/O core) depends on: ${bad[*]}" >&2
        echo "ci: ripple-proto must not depend on ${FORBIDDEN_IN_PROTO[*]} (the layering rule of the house style)." >&2
        for dep in "${bad[@]}"; do
            echo "ci: how $dep gets in:" >&2
            cargo tree -p ripple-proto -e normal --all-features --locked -i "$dep" >&2 || true
        done
        return 1
    fi
    echo "ci: ripple-proto's $(tail -n +2 <<< "$tree" | sort -u | grep -c .) normal dependencies (all features) include none of: ${FORBIDDEN_IN_PROTO[*]}"
}

ensure_nextest() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest --version | head -n 1
        return 0
    fi
    echo "ci: cargo-nextest not found; cargo install cargo-nextest --locked"
    cargo install cargo-nextest --locked
}

fuzz_build() {
    if [ -f fuzz/Cargo.toml ]; then
        cargo check --manifest-path fuzz/Cargo.toml
    else
        echo "ci: no fuzz/Cargo.toml yet: nothing to build"
    fi
}

step fmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
step boundary check_boundary
step nextest ensure_nextest
step tests cargo nextest run --workspace --all-features --locked
step doctests cargo test --doc --workspace --all-features --locked
step fuzz-build fuzz_build
step autobahn bash scripts/autobahn.sh all
step interop bash scripts/interop.sh
step browser bash scripts/browser.sh
step channels-py bash scripts/channels-py.sh
step cli bash scripts/cli.sh
step abuse bash scripts/abuse.sh --quick
step bench-smoke bash scripts/bench-compare.sh --quick
step fallback-smoke bash scripts/bench-fallback.sh --quick
summary
echo "ci: all ${#NAMES[@]} steps passed"
