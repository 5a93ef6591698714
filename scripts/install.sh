#!/usr/bin/env bash
# Install what softphone needs on a Debian machine: system packages (when root), a virtualenv
# in .venv and the pinned Python packages. Safe to run again: it does nothing when up to date.
#   scripts/install.sh          runtime only
#   scripts/install.sh --test   plus what the test suite needs
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

# System packages. Kept in one list so CI and a new machine install the same things.
# libportaudio2: sounddevice's native library (without it `import sounddevice` raises OSError).
# The PulseAudio packages give the tests a real virtual sound card (a null sink).
# chromium: the browser the page tests (tests/web) drive through Playwright's driver.
APT_RUNTIME=(libportaudio2)
APT_PYTHON=(python3 python3-venv python3-pip)
APT_TEST=(pulseaudio pulseaudio-utils libasound2-plugins alsa-utils chromium)

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        echo "install.sh: missing Debian packages: ${missing[*]}" >&2
        echo "install.sh: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
        return 1
    fi
    echo "install.sh: apt-get install ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

if command -v dpkg-query >/dev/null; then
    # A python3 that already has venv (e.g. pyenv) needs no Debian python packages.
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        apt_install "${APT_PYTHON[@]}" || exit 1
    fi
    apt_install "${APT_RUNTIME[@]}" || exit 1
    if [[ $want_test -eq 1 && ${#APT_TEST[@]} -gt 0 ]]; then
        apt_install "${APT_TEST[@]}" || exit 1
    fi
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi

extras=""
[[ $want_test -eq 1 ]] && extras="[test]"
digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
installed() { [[ -f "$1" && "$(cat "$1")" == "$digest" ]]; }
# A test install includes everything the runtime needs.
if ! installed ".venv/.installed[test]" && ! { [[ -z "$extras" ]] && installed .venv/.installed; }
then
    log=$(mktemp)
    if ! { .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip &&
           .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
         } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "install.sh: pip install failed (output above)" >&2
        exit 1
    fi
    rm -f "$log"
    echo "$digest" > ".venv/.installed${extras}"
fi
