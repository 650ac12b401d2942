#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, integration, fuzz corpus replay,
# firmware, GUI) with CTest. Extra arguments go to ctest (e.g. -R integration).
#   --sanitize   the same, built with AddressSanitizer + UBSan into build-asan/ (any report fails the test)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake_args=()
if [ "${1:-}" = "--sanitize" ]; then
  shift
  export BUILD_DIR=build-asan
  cmake_args=(-DPILOGGER_SANITIZE=ON)
  # Every child inherits these: a leak, an overflow or undefined behaviour ends that process with
  # an error the test sees. Leaks in system libraries (fontconfig, X, Qt's plugins) are not ours.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87"
  export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizer/lsan.supp:print_suppressions=0"
fi
./scripts/deps.sh
./scripts/build.sh "${cmake_args[@]}"
# The eye tracker's discovery test browses real mDNS; it is skipped (and says why) without it.
./scripts/mdns-up.sh || true
cd "${BUILD_DIR:-build}"
# One test at a time: several tests measure timing (heartbeats, frame intervals) on a 2-core machine.
ctest --output-on-failure --timeout 600 "$@"
