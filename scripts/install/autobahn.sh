#!/usr/bin/env bash
# Idempotent installer for the Autobahn|TestSuite (`wstest`) on Debian 12 (bookworm), no Docker.
#
# usage: scripts/install/autobahn.sh [--quiet] [--force]
#   --quiet   print nothing unless something fails
#   --force   rebuild the Python 2.7 virtualenv even if it is up to date
# env: AUTOBAHN_HOME           install dir (default ~/.cache/autobahn)
#      AUTOBAHN_DEBIAN_MIRROR  mirror for the bullseye packages (default: the one apt already uses)
#      AUTOBAHN_PYTHON3        python3 that runs virtualenv (default: python3 on PATH)
#
# The suite (PyPI autobahntestsuite 25.10.1) is Python 2 code and Debian 12 has no Python 2:
#   1. CPython 2.7.18 (+ libssl1.1, libffi7) comes from Debian 11 "bullseye" on the mirror this
#      machine's apt already uses, through a private apt list under $AUTOBAHN_HOME/apt (the
#      system's sources are not changed); apt installs the .debs system-wide (/usr/bin/python2.7),
#      which needs root or passwordless sudo.
#   2. virtualenv 20.21.1 (the last release that creates 2.7 environments) in a Python 3 venv
#      creates the 2.7 virtualenv $AUTOBAHN_HOME/py27.
#   3. scripts/autobahn/requirements-py27.txt (fully pinned), then the suite with --no-deps.
#   4. A stamp records what was installed; a later run with the same pins returns in ~0.3 s.
# Prints the path of wstest's python on success (unless --quiet). Exit 1 on failure.
set -euo pipefail
RP_TAG="install/autobahn"
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

QUIET=0; FORCE=0
for a in "$@"; do
    case "$a" in
        --quiet) QUIET=1 ;;
        --force) FORCE=1 ;;
        -h|--help) rp_usage "$0" 0 ;;
        *) echo "$RP_TAG: unknown argument '$a'" >&2; rp_usage "$0" ;;
    esac
done

AUTOBAHN_HOME="${AUTOBAHN_HOME:-$HOME/.cache/autobahn}"
AB_ENV27="$AUTOBAHN_HOME/py27"
AB_PY27="$AB_ENV27/bin/python"
SUITE_PIN="autobahntestsuite==25.10.1"
VIRTUALENV_PIN="virtualenv==20.21.1"
REQ="$RP_ROOT/scripts/autobahn/requirements-py27.txt"
STAMP="$AB_ENV27/.ripple-autobahn-stamp"
SYS_PY27=/usr/bin/python2.7          # installed by Debian's python2.7 package
PY27_SUITE="bullseye"                # last Debian release with Python 2.7
PY27_DEBS="python2.7 python2.7-minimal libpython2.7 libpython2.7-minimal libpython2.7-stdlib
           libpython2.7-dev python2.7-dev libssl1.1 libffi7"

STEP="start"
log() { [ "$QUIET" = 1 ] || echo "$RP_TAG: $*" >&2; }
die() { echo "$RP_TAG: ERROR ($STEP): $*" >&2; exit 1; }
trap 'echo "$RP_TAG: ERROR ($STEP): command failed: $BASH_COMMAND" >&2' ERR
T0=$SECONDS

want_stamp() {
    { echo "$SUITE_PIN"; echo "$VIRTUALENV_PIN"; cat "$REQ"; } | rp_hash
}

env_ok() {
    [ -x "$SYS_PY27" ] && [ -x "$AB_PY27" ] && [ -f "$STAMP" ] &&
        [ "$(cat "$STAMP")" = "$(want_stamp)" ] &&
        "$AB_PY27" -c 'import autobahntestsuite.fuzzing, wsaccel' >/dev/null 2>&1
}

if [ "$FORCE" = 0 ] && env_ok; then
    log "already installed ($AB_ENV27, $(( SECONDS - T0 ))s)"
    exit 0
fi

CAN_ROOT=1
if [ "$(id -u)" = 0 ]; then SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=(sudo -n)
else SUDO=(); CAN_ROOT=0; fi

# --- 1. CPython 2.7 from Debian 11 ---------------------------------------------------------
STEP="python2.7 from Debian $PY27_SUITE"

py27_installed() {
    [ -x "$SYS_PY27" ] &&
        dpkg-query -W -f='${Status}\n' python2.7-dev 2>/dev/null | grep -q '^install ok installed' &&
        "$SYS_PY27" -c 'import ssl, ctypes, zlib, bz2, sqlite3' >/dev/null 2>&1
}

# First URI of an enabled apt source that serves Debian's main archive (not -security).
debian_mirror() {
    if [ -n "${AUTOBAHN_DEBIAN_MIRROR:-}" ]; then echo "$AUTOBAHN_DEBIAN_MIRROR"; return; fi
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            function flush() {
                if (uris != "" && enabled != "no" && types ~ /(^| )deb( |$)/ && suites !~ /-security/) {
                    n = split(uris, u, " ")
                    for (i = 1; i <= n; i++) if (u[i] ~ /\/debian\/?$/) { print u[i]; found = 1; exit }
                }
                uris = ""; suites = ""; types = ""; enabled = ""
            }
            /^[ \t]*$/ { flush(); next }
            /^URIs:/    { sub(/^URIs:[ \t]*/, "");    uris = $0 }
            /^Suites:/  { sub(/^Suites:[ \t]*/, "");  suites = $0 }
            /^Types:/   { sub(/^Types:[ \t]*/, "");   types = $0 }
            /^Enabled:/ { sub(/^Enabled:[ \t]*/, ""); enabled = tolower($0) }
            END { if (!found) flush() }
        ' "$f" | head -n1
    done | head -n1 | grep . && return
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -E -n 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+([^[:space:]]+).*/\2 \3/p' "$f"
    done | awk '$2 !~ /-security/ && $1 ~ /\/debian\/?$/ { print $1; exit }' | grep . && return
    return 1
}

install_py27() {
    command -v apt-get >/dev/null || die "apt-get not found: this installer supports Debian 12 only"
    [ "$CAN_ROOT" = 1 ] || die "installing Python 2.7 needs root (or passwordless sudo)"
    local mirror apt keyring
    mirror="$(debian_mirror)" || die "no Debian mirror found in /etc/apt/sources.list*; set AUTOBAHN_DEBIAN_MIRROR"
    apt="$AUTOBAHN_HOME/apt"
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/empty.d" "$apt/debs"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    if [ -f "$keyring" ]; then
        echo "deb [signed-by=$keyring] $mirror $PY27_SUITE main" > "$apt/sources.list"
    else
        echo "deb $mirror $PY27_SUITE main" > "$apt/sources.list"
    fi
    local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o "Dir::Etc::sourceparts=$apt/empty.d"
                -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "APT::Sandbox::User=root")
    log "fetching the Debian $PY27_SUITE package index (private list under $apt)"
    timeout 600 apt-get "${opts[@]}" -q update >"$apt/update.log" 2>&1 ||
        { cat "$apt/update.log" >&2; die "apt-get update for $PY27_SUITE failed"; }
    rm -f "$apt/debs/"*.deb
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    (cd "$apt/debs" && timeout 600 apt-get "${opts[@]}" -q download $PY27_DEBS) >"$apt/download.log" 2>&1 ||
        { cat "$apt/download.log" >&2; die "downloading the $PY27_SUITE packages failed"; }
    log "installing $(cd "$apt/debs" && echo *.deb)"
    local inst=(${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive timeout 900
                apt-get install -y -q --no-install-recommends)
    if ! "${inst[@]}" "$apt/debs/"*.deb >"$apt/install.log" 2>&1; then
        log "apt-get install failed; refreshing the system package lists and retrying"
        ${SUDO[@]+"${SUDO[@]}"} timeout 600 apt-get -q update >>"$apt/install.log" 2>&1 || true
        "${inst[@]}" "$apt/debs/"*.deb >>"$apt/install.log" 2>&1 ||
            { tail -n 30 "$apt/install.log" >&2; die "apt-get install of the $PY27_SUITE debs failed"; }
    fi
}

if py27_installed; then
    log "python2.7 present: $("$SYS_PY27" -V 2>&1)"
else
    install_py27
    py27_installed || die "python2.7 still not usable after installing it"
    log "installed $("$SYS_PY27" -V 2>&1) ($("$SYS_PY27" -c 'import ssl; print(ssl.OPENSSL_VERSION)'))"
fi

# --- 2. virtualenv (Python 3) able to create 2.7 environments ------------------------------
STEP="virtualenv tool"
TOOLS="$AUTOBAHN_HOME/venv-tools"
PY3="${AUTOBAHN_PYTHON3:-python3}"
if ! "$TOOLS/bin/python" -m virtualenv --version 2>/dev/null | grep -q "${VIRTUALENV_PIN#*==}"; then
    command -v "$PY3" >/dev/null || die "python3 not found (set AUTOBAHN_PYTHON3)"
    rm -rf "$TOOLS"
    if ! "$PY3" -m venv "$TOOLS" >/dev/null 2>&1; then
        [ "$CAN_ROOT" = 1 ] || die "'$PY3 -m venv' failed (install python3-venv)"
        log "'$PY3 -m venv' failed; installing python3-venv"
        ${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive timeout 600 \
            apt-get install -y -q python3-venv >/dev/null 2>&1 || true
        rm -rf "$TOOLS"
        "$PY3" -m venv "$TOOLS" || die "'$PY3 -m venv' failed (install python3-venv)"
    fi
    log "installing $VIRTUALENV_PIN into $TOOLS"
    timeout 600 "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check "$VIRTUALENV_PIN" ||
        die "pip install $VIRTUALENV_PIN failed"
fi

# --- 3. Python 2.7 virtualenv with the suite -----------------------------------------------
STEP="python2.7 virtualenv"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1
unset PYTHONPATH PYTHONHOME PIP_REQUIRE_VIRTUALENV || true
rm -rf "$AB_ENV27"
log "creating $AB_ENV27"
timeout 600 "$TOOLS/bin/python" -m virtualenv -q --no-periodic-update \
    --app-data "$AUTOBAHN_HOME/virtualenv-appdata" -p "$SYS_PY27" "$AB_ENV27" ||
    die "virtualenv -p $SYS_PY27 failed"
PIP=(timeout 900 "$AB_PY27" -m pip install -q --no-warn-script-location)

STEP="pip install (py2.7)"
log "installing the pinned Python 2.7 packages (scripts/autobahn/requirements-py27.txt)"
# Order matters (as in the suite's own docker image): incremental before Twisted, and
# Twisted 19.10.0 built without build isolation so its setup_requires does not fetch a newer one.
"${PIP[@]}" -c "$REQ" incremental pyOpenSSL cryptography || die "pip: incremental/pyOpenSSL/cryptography"
"${PIP[@]}" -c "$REQ" --no-build-isolation Twisted || die "pip: Twisted"
"${PIP[@]}" -r "$REQ" || die "pip: requirements-py27.txt"
STEP="pip install $SUITE_PIN"
# Its metadata pins setuptools==44.0.0 and more; every dependency is already installed above.
"${PIP[@]}" --no-deps "$SUITE_PIN" || die "pip: $SUITE_PIN"

# --- 4. verify -------------------------------------------------------------------------------
STEP="verify"
"$AB_PY27" -c 'import autobahntestsuite.fuzzing, wsaccel, twisted, autobahn' ||
    die "the installed suite does not import"
VERS="$("$AB_ENV27/bin/wstest" --autobahnversion 2>&1 | tr '\n' ' ')" || die "wstest --autobahnversion failed"
want_stamp > "$STAMP"
log "ok in $(rp_fmt_secs $(( SECONDS - T0 ))): $VERS(python: $("$AB_PY27" -V 2>&1), $AB_ENV27)"
