#!/usr/bin/env bash
# Coverage-guided fuzzing of pilogger's parsers with libFuzzer (ASan + UBSan): bench/fuzz/README.md.
#
#   bench/fuzz/run.sh [options] [SECONDS]      SECONDS per target, default 600
#     -t TARGET   only this target (repeatable; default: every tests/fuzz/targets/*.cpp)
#     -j N        N targets at once (default FUZZ_JOBS or 1: the build machines have 2 cores)
#     --merge     afterwards, minimize each target's scratch corpus back into tests/fuzz/corpus
#                 (the hand-made seed-* files always stay)
#     --no-build  use the fuzz build as it is
#
# Builds the clang fuzz build (BUILD_DIR, default build-fuzz), copies each target's checked-in
# corpus and regressions into a scratch corpus BUILD_DIR/corpus/<target> (new inputs go there,
# never into the tree), runs the target for SECONDS, and prints a table of executions, exec/s,
# coverage (cov: edges, ft: features), corpus files and findings. Crash, timeout, leak and OOM
# inputs land in BUILD_DIR/artifacts/<target>/, the log in BUILD_DIR/logs/<target>.log.
# Environment: FUZZ_TIMEOUT (s per input, default 10), FUZZ_RSS_MB (default 2048), FUZZ_EXTRA
# (more libFuzzer flags), PILOGGER_JOBS (build jobs, default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build-fuzz}
JOBS=${FUZZ_JOBS:-1}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}
SECONDS_PER_TARGET=600
TARGETS=()
MERGE=0
BUILD=1

while [ $# -gt 0 ]; do
  case "$1" in
    -t) TARGETS+=("$2"); shift 2 ;;
    -j) JOBS=$2; shift 2 ;;
    --merge) MERGE=1; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) SECONDS_PER_TARGET=$1; shift ;;
  esac
done
if [ ${#TARGETS[@]} -eq 0 ]; then
  for f in tests/fuzz/targets/*.cpp; do TARGETS+=("$(basename "$f" .cpp)"); done
fi

# Longest input libFuzzer makes up per target: a few lines or packets more than the seeds, room
# enough for every bound the parsers enforce below 64 KiB (the nesting limits, the small line and
# body bounds the targets switch on), small enough to stay fast.
max_len() {
  case "$1" in
    psync|sdp|neon_payloads) echo 4096 ;;
    ndjson_framing|module_line|control_request|config_yaml|rtsp|rtp|h264) echo 16384 ;;
    http|websocket) echo 131072 ;;
    *) echo 8192 ;;
  esac
}

if [ "$BUILD" -eq 1 ]; then
  echo "fuzz: building $BUILD_DIR (clang, libFuzzer, ASan, UBSan)"
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPILOGGER_FUZZ=ON -DPILOGGER_GUI=OFF >/dev/null
  cmake --build "$BUILD_DIR" -j "${PILOGGER_JOBS:-2}" --target fuzz_targets
fi

run_target() {
  local t=$1
  local bin="$BUILD_DIR/fuzz/fuzz_$t"
  local corpus="$BUILD_DIR/corpus/$t"
  local artifacts="$BUILD_DIR/artifacts/$t"
  local log="$BUILD_DIR/logs/$t.log"
  mkdir -p "$corpus" "$artifacts" "$BUILD_DIR/logs"
  for dir in "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t"; do
    [ -d "$dir" ] && find "$dir" -type f -exec cp -n {} "$corpus/" \;
  done
  local args=(-max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$t")" -timeout="$TIMEOUT"
              -rss_limit_mb="$RSS_MB" -artifact_prefix="$artifacts/" -print_final_stats=1)
  [ -f "tests/fuzz/dict/$t.dict" ] && args+=(-dict="tests/fuzz/dict/$t.dict")
  # shellcheck disable=SC2206
  args+=(${FUZZ_EXTRA:-})
  touch "$log.start"  # findings newer than this are this run's
  echo "fuzz: $t for ${SECONDS_PER_TARGET}s (log $log)"
  local status=0
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$bin" "${args[@]}" "$corpus" >"$log" 2>&1 || status=$?
  echo "$status" >"$log.status"
  echo "fuzz: $t done (exit $status)"
}

export -f run_target max_len
export BUILD_DIR SECONDS_PER_TARGET TIMEOUT RSS_MB FUZZ_EXTRA
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_target "$@"' _ {}

if [ "$MERGE" -eq 1 ]; then
  for t in "${TARGETS[@]}"; do
    dest="tests/fuzz/corpus/$t"
    fresh="$BUILD_DIR/merge/$t"
    rm -rf "$fresh" && mkdir -p "$fresh" "$dest"
    # The hand-made seeds stay; merge adds the fewest inputs that keep the rest of the coverage.
    find "$dest" -maxdepth 1 -name 'seed-*' -exec cp {} "$fresh/" \;
    "$BUILD_DIR/fuzz/fuzz_$t" -merge=1 -max_len="$(max_len "$t")" -timeout="$TIMEOUT" \
      -rss_limit_mb="$RSS_MB" "$fresh" "$BUILD_DIR/corpus/$t" >"$BUILD_DIR/logs/$t.merge.log" 2>&1
    rm -rf "$dest" && mv "$fresh" "$dest"
    echo "fuzz: merged $t: $(find "$dest" -type f | wc -l) files, $(du -sh "$dest" | cut -f1)"
  done
fi

# One row per target from libFuzzer's final stats and its last status line.
printf '\n%-16s %14s %10s %8s %8s %8s %9s  %s\n' target executions exec/s cov ft corpus findings status
for t in "${TARGETS[@]}"; do
  log="$BUILD_DIR/logs/$t.log"
  [ -f "$log" ] || continue
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  files=$(find "$BUILD_DIR/corpus/$t" -type f | wc -l)
  findings=$(find "$BUILD_DIR/artifacts/$t" -type f -newer "$log.start" \( -name 'crash-*' -o -name 'timeout-*' \
             -o -name 'leak-*' -o -name 'oom-*' \) | wc -l)
  code=$(cat "$log.status" 2>/dev/null || echo "?")
  status=ok
  [ "$code" != 0 ] && status="stopped (exit $code): $(grep -m1 -E 'ERROR: |runtime error|FUZZ_CHECK' "$log" | cut -c1-60)"
  printf '%-16s %14s %10s %8s %8s %8s %9s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
    "$files" "$findings" "$status"
done
