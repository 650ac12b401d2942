#!/usr/bin/env bash
# Installs what pilogger needs to build, run and test, from Debian's packages, only when missing.
# Works on Debian 12 (bookworm) and Raspberry Pi OS (bookworm). Needs root or sudo for apt-get.
set -euo pipefail

PACKAGES=(
  # toolchain
  g++ cmake ninja-build pkg-config git python3
  # foundation
  libuv1-dev nlohmann-json3-dev libcli11-dev libyaml-cpp-dev doctest-dev
  # media: in-process encoding, ffprobe/ffmpeg for the eye tracker's scene video and the tests
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev ffmpeg
  # cameras
  libcamera-dev
  # the eye tracker: finding the Neon by mDNS (avahi-browse; the daemon runs on every Pi)
  avahi-utils dbus
  # GUI and its tests
  qt6-base-dev libxcb1-dev xvfb xauth
  # hardening: coverage-guided fuzzing (clang's libFuzzer with ASan/UBSan), syscall traces of the
  # sync schedule in the power-cut test
  clang libclang-rt-14-dev strace
)

missing=()
for p in "${PACKAGES[@]}"; do
  # "install ok installed" only; a removed package still has a status line.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: everything is installed"
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
