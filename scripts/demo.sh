#!/usr/bin/env bash
# Installs what is missing, builds, and records a 10-second demo session with simulated devices.
# Prints where the session is and what it holds.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh

echo
echo "Recording a 10 s demo session (config/demo.yaml, simulated devices)..."
# A note typed during the recording, as a researcher would with 'pilogger note'.
( sleep 4 && ./build/bin/pilogger note "demo note from scripts/demo.sh: all good, \"quoted\", with a comma" >/dev/null 2>&1 ) &
./build/bin/pilogger run --config config/demo.yaml --record --duration 10 "$@"
wait
echo
echo "Next: read README.md (Files of a session) or run ./scripts/test.sh"
