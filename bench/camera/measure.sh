#!/usr/bin/env bash
# CPU, memory, frames and drops per camera process, standalone (no supervisor).
#   bench/camera/measure.sh [BIN_DIR] [SECONDS] [CAMERAS] [CONFIG]
# Without CONFIG: CAMERAS test-pattern cameras at 1456x1088, 30 fps, recorded at the same time.
# With CONFIG: its camera entries cam0..cam<CAMERAS-1> (e.g. config/pilogger.yaml on a Pi).
set -euo pipefail
BIN=${1:-build/bin}
SECONDS_TO_RUN=${2:-20}
CAMERAS=${3:-2}
CONFIG=${4:-}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ -z "$CONFIG" ]; then
  CONFIG=$WORK/cameras.yaml
  { echo "data_dir: $WORK"; echo "modules:"
    for ((i = 0; i < CAMERAS; i++)); do
      echo "  cam$i: {type: camera, backend: test_pattern, width: 1456, height: 1088, fps: 30}"
    done; } > "$CONFIG"
fi

for ((i = 0; i < CAMERAS; i++)); do
  /usr/bin/time -f "%U %S %M" -o "$WORK/cam$i.time" \
    "$BIN/pilogger-camera" --config "$CONFIG" --camera "cam$i" --output "$WORK/out" --duration "$SECONDS_TO_RUN" \
    < /dev/null > /dev/null 2> "$WORK/cam$i.log" &
done
wait

printf "%-6s %8s %8s %8s %10s %8s %10s\n" camera "cpu %" "rows" "dropped" "max queue" "RSS MB" "MB/min"
for ((i = 0; i < CAMERAS; i++)); do
  read -r user sys rss < "$WORK/cam$i.time"
  csv=$WORK/out/camera/cam$i/trial_001_frames.csv
  mp4=$WORK/out/camera/cam$i/trial_001.mp4
  rows=$(($(wc -l < "$csv") - 1))
  read -r dropped depth < <(awk -F, 'NR > 1 { d += $6; if ($8 > m) m = $8 } END { print d + 0, m + 0 }' "$csv")
  bytes=$(stat -c %s "$mp4")
  awk -v u="$user" -v s="$sys" -v t="$SECONDS_TO_RUN" -v r="$rss" -v b="$bytes" -v n="cam$i" -v rows="$rows" \
      -v d="$dropped" -v q="$depth" \
      'BEGIN { printf "%-6s %8.1f %8d %8d %10d %8.0f %10.1f\n", n, 100 * (u + s) / t, rows, d, q, r / 1024, b / 1048576 * 60 / t }'
done
