#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, integration, firmware) with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh
# The eye tracker's discovery test browses real mDNS; it is skipped (and says why) without it.
./scripts/mdns-up.sh || true
cd build
# One test at a time: several tests measure timing (heartbeats, frame intervals) on a 2-core machine.
ctest --output-on-failure --timeout 600 "$@"
