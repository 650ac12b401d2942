#!/usr/bin/env bash
# Takes docs/images/gui.png: the main window during a demo recording (config/demo.yaml, simulated
# devices), under Xvfb. Usage: bench/gui/screenshot.sh [WxH] [OUTPUT.png]   (default 1280x800)
# Needs a build with the GUI (PILOGGER_BIN, default build/bin).
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE=${1:-1280x800}
OUT=$(realpath -m "${2:-docs/images/gui.png}")
BIN=$(realpath "${PILOGGER_BIN:-build/bin}")
TMP=$(mktemp -d)
trap 'XDG_RUNTIME_DIR=$TMP/run "$BIN/pilogger" shutdown >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
mkdir -m 700 "$TMP/run"
# A home of its own: the data folder reads ~/pilogger-data as in the demo, and no QSettings leak in.
export XDG_RUNTIME_DIR=$TMP/run XDG_CONFIG_HOME=$TMP/config HOME=$TMP/home
mkdir -p "$HOME"
cp config/demo.yaml "$TMP/demo.yaml"

"$BIN/pilogger" run --config "$TMP/demo.yaml" --label participant07 --record --trial-label baseline \
  > "$TMP/supervisor.out" 2>&1 &
for _ in $(seq 100); do "$BIN/pilogger" status >/dev/null 2>&1 && break; sleep 0.1; done
sleep 3
"$BIN/pilogger" note "participant adjusted the seat" >/dev/null
sleep 1
"$BIN/pilogger" note "$(printf 'light rain started\nwipers on')" >/dev/null
mkdir -p "$(dirname "$OUT")"
xvfb-run -a -s "-screen 0 1920x1080x24" "$BIN/pilogger-gui" --no-start --size "$SIZE" \
  --screenshot "$OUT" --screenshot-after 6
