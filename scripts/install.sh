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
# The video window: the opencv-python wheel bundles Qt 5 and most X libraries, but its cv2 module
# and Qt's xcb plugin still load these from the system (from `ldd` on cv2.abi3.so,
# cv2/qt/plugins/platforms/libqxcb.so and opencv_python.libs/*): libGL.so.1 (libgl1),
# libglib-2.0 and libgthread-2.0 (libglib2.0-0), libSM and libICE (libsm6, libice6), libX11
# (libx11-6, also used through ctypes by softphone/media/viewer.py), libXext (libxext6) and
# libxcb (libxcb1). Without one, the viewer shows a notice instead of the window.
# The PulseAudio packages give the tests a real virtual sound card (a null sink).
# chromium: the browser the page tests (tests/web) drive through Playwright's driver.
# xvfb, x11-utils (xwininfo), x11-apps (xwd): tests/media/test_viewer_window.py opens the real
# video window on a private X server and reads the window's pixels back.
# libopus0: the Opus decoder of our audio receive path (through opuslib-next, which loads it).
APT_RUNTIME=(libportaudio2 libopus0 libpulse0 libgl1 libglib2.0-0 libsm6 libice6 libx11-6 libxext6 libxcb1)
APT_PYTHON=(python3 python3-venv python3-pip)
# tmux: tests/tui/test_terminal.py runs the installed softphone in a real terminal.
# postgresql, redis-server, haproxy: the server suites on PostgreSQL and tests/cluster start
# their own instances on loopback (nothing system-wide is started: no service manager runs).
# tests/interop, peers that are not aiortc or Chromium: firefox-esr (driven by puppeteer-core
# under node, installed below; Debian's nodejs/npm only when there is no npm, since
# NodeSource's nodejs carries its own npm and conflicts with Debian's), GStreamer's webrtcbin
# with libnice run by Debian's python3 (python3-gi, the gir packages), coturn's turnserver.
APT_TEST=(pulseaudio pulseaudio-utils libasound2-plugins alsa-utils chromium
          xvfb x11-utils x11-apps tmux postgresql redis-server haproxy
          firefox-esr coturn python3-gi gir1.2-gstreamer-1.0
          gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 gir1.2-nice-0.1
          gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
          gstreamer1.0-nice gstreamer1.0-libav espeak-ng)

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
        if ! command -v npm >/dev/null; then
            apt_install nodejs npm || exit 1
        fi
    fi
fi

# puppeteer-core for tests/interop, from its package-lock.json into tests/interop/node_modules
# (ignored by git). PUPPETEER_SKIP_DOWNLOAD: it drives Debian's firefox-esr, never a download.
if [[ $want_test -eq 1 ]]; then
    lock_digest=$(sha256sum tests/interop/package-lock.json | cut -d' ' -f1)
    stamp=tests/interop/node_modules/.installed
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_digest" ]]; then
        if ! command -v npm >/dev/null; then
            echo "install.sh: npm is missing (apt-get install nodejs npm)" >&2
            exit 1
        fi
        log=$(mktemp)
        if ! (cd tests/interop && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund) \
                >"$log" 2>&1; then
            cat "$log" >&2
            rm -f "$log"
            echo "install.sh: npm ci in tests/interop failed (output above)" >&2
            exit 1
        fi
        rm -f "$log"
        echo "$lock_digest" > "$stamp"
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
    # Both OpenCV wheels install cv2/: an older venv's headless one would shadow the GUI one.
    if .venv/bin/python -m pip show --quiet opencv-python-headless >/dev/null 2>&1; then
        .venv/bin/python -m pip uninstall --quiet --yes opencv-python-headless >/dev/null
    fi
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
