#!/usr/bin/env bash
# Smoke-runs every cargo-fuzz target of fuzz/ (ripple-proto's public API) for a few seconds each.
#
# usage: scripts/fuzz-smoke.sh [SECONDS]      (default 10 per target)
# Installs what is missing (the nightly toolchain, `cargo install cargo-fuzz --locked`), builds
# all targets with `cargo +nightly fuzz build`, then runs them one at a time from the committed
# seeds (fuzz/corpus/<target>/seed-*) plus whatever earlier runs left in fuzz/corpus/<target>.
# New corpus entries go to fuzz/corpus/<target> (git-ignored except seed-*); a crashing input
# goes to fuzz/artifacts/<target>/ and is named in the output, with the command that replays it.
# Exit status: 0 when every target ran clean, 1 if any crashed (or timed out, or ran out of
# memory), 2 when the tools cannot be installed or the build fails.
set -euo pipefail
RP_TAG="fuzz-smoke"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

case "${1:-}" in
    -h|--help) rp_usage "$0" 0 ;;
esac
SECS="${1:-10}"
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || { echo "$RP_TAG: SECONDS must be a positive integer, not '$SECS'" >&2; rp_usage "$0"; }

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || rp_die "cargo not found"
cd "$RP_ROOT"
[ -f fuzz/Cargo.toml ] || rp_die "no fuzz/Cargo.toml"

if ! cargo +nightly --version >/dev/null 2>&1; then
    rp_log "nightly toolchain missing; rustup toolchain install nightly --profile minimal"
    rustup toolchain install nightly --profile minimal || rp_die "cannot install nightly"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    rp_log "cargo-fuzz missing; cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked || rp_die "cannot install cargo-fuzz"
fi

T0=$SECONDS
rp_log "building: cargo +nightly fuzz build"
cargo +nightly fuzz build || rp_die "fuzz build failed"
mapfile -t TARGETS < <(cargo +nightly fuzz list)
[ ${#TARGETS[@]} -gt 0 ] || rp_die "cargo fuzz list found no targets"

FAILED=()
for target in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    log="$(mktemp)"
    rp_log "$target: ${SECS}s"
    # -timeout: one input running this long is a hang; -rss_limit_mb bounds memory.
    if cargo +nightly fuzz run "$target" -- \
        -max_total_time="$SECS" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        execs="$(awk '/stat::number_of_executed_units:/ { print $2 }' "$log")"
        rp_log "$target: ok (${execs:-?} executions)"
    else
        FAILED+=("$target")
        tail -n 60 "$log" >&2
        artifact="$(grep -o "fuzz/artifacts/$target/[^ ]*" "$log" | tail -n 1 || true)"
        rp_log "$target: FAILED${artifact:+; input: $artifact}"
        [ -z "$artifact" ] || rp_log "replay: cargo +nightly fuzz run $target $artifact"
    fi
    rm -f "$log"
done

rp_log "${#TARGETS[@]} targets, ${SECS}s each, $(rp_fmt_secs $((SECONDS - T0))) in all"
if [ ${#FAILED[@]} -gt 0 ]; then
    rp_log "FAILED: ${FAILED[*]}"
    exit 1
fi
rp_log "all targets ran clean"
