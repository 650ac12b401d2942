#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, integration, fuzz corpus replay,
# firmware, GUI) with CTest. Extra arguments go to ctest (e.g. -R integration).
#   --sanitize   the same, built with AddressSanitizer + UBSan into build-asan/ (any report fails the test)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake_args=()
reports=""
if [ "${1:-}" = "--sanitize" ]; then
  shift
  export BUILD_DIR=build-asan
  cmake_args=(-DPILOGGER_SANITIZE=ON)
  # Every child inherits these. A report from any process (a module the supervisor restarted
  # too) lands in $reports/, and any file there fails the run. Leaks in system libraries
  # (fontconfig, X, Qt's plugins) are not ours: tests/sanitizer/lsan.supp.
  reports="$PWD/$BUILD_DIR/sanitizer-reports"
  rm -rf "$reports" && mkdir -p "$reports"
  export ASAN_OPTIONS="detect_leaks=1:log_path=$reports/asan"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
  export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizer/lsan.supp:print_suppressions=0"
fi
./scripts/deps.sh
./scripts/build.sh "${cmake_args[@]}"
# The eye tracker's discovery test browses real mDNS; it is skipped (and says why) without it.
./scripts/mdns-up.sh || true
cd "${BUILD_DIR:-build}"
# One test at a time: several tests measure timing (heartbeats, frame intervals) on a 2-core machine.
status=0
ctest --output-on-failure --timeout 600 "$@" || status=$?
if [ -n "$reports" ] && [ -n "$(ls -A "$reports")" ]; then
  echo "sanitizer reports (each a failure):" >&2
  for f in "$reports"/*; do echo "== $f" >&2; head -n 40 "$f" >&2; done
  status=1
fi
exit $status
