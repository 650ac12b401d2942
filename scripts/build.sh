#!/usr/bin/env bash
# Configures and builds pilogger into build/ (Release with debug info). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
# Two jobs: the Pi and this project's build machines have little memory per core.
cmake --build "$BUILD_DIR" -j "${PILOGGER_JOBS:-2}"
