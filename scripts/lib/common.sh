# shellcheck shell=bash disable=SC2034
# Helpers shared by the scripts under scripts/ (sourced, not run). Bash only, no other tools.
#
# A script sets RP_TAG (its name in messages) before using rp_log/rp_die.

RP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"   # repository root
RP_TAG="${RP_TAG:-ripple}"

rp_log() { echo "$RP_TAG: $*" >&2; }
rp_die() { echo "$RP_TAG: ERROR: $*" >&2; exit "${RP_DIE_STATUS:-2}"; }

# Seconds -> "1m05s"
rp_fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# True when something accepts TCP connections on 127.0.0.1:PORT (bash's /dev/tcp, no tools).
rp_port_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# Print a port on 127.0.0.1 that nothing listens on. Picks from 20000-32767, below Linux's
# ephemeral range, so it does not collide with the source ports of outgoing connections.
# Bounded: 100 tries.
rp_free_port() {
    local i p
    for ((i = 0; i < 100; i++)); do
        p=$((20000 + (RANDOM % 12768)))
        rp_port_open "$p" || { echo "$p"; return 0; }
    done
    return 1
}

# rp_wait_port PORT SECS [PID]: wait until 127.0.0.1:PORT accepts connections; fail early if
# PID (the process that should listen there) has exited.
rp_wait_port() {
    local port="$1" secs="$2" pid="${3:-}" i
    for ((i = 0; i < secs * 10; i++)); do
        rp_port_open "$port" && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        sleep 0.1
    done
    return 1
}

# rp_wait_line FILE REGEX SECS [PID]: wait until a line of FILE matches REGEX (grep -E).
rp_wait_line() {
    local file="$1" re="$2" secs="$3" pid="${4:-}" i
    for ((i = 0; i < secs * 10; i++)); do
        grep -Eq "$re" "$file" 2>/dev/null && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            grep -Eq "$re" "$file" 2>/dev/null && return 0
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# rp_stop_pid PID: stop a process this script started: SIGTERM, up to 5 s, then SIGKILL.
rp_stop_pid() {
    local pid="$1" i
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null || true
}

# sha256 of files and strings, for "already installed" stamps.
rp_hash() { sha256sum | cut -d' ' -f1; }

# Print the leading comment block of script $1 (its usage text) and exit with $2 (default 2).
rp_usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1" >&2; exit "${2:-2}"; }
