#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs dependencies, builds with warnings as
# errors, runs every test (unit, privileged, e2e), then rebuilds with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the unit tests again under them.
#
# Run as root: privileged tests need network namespaces, cgroups and BPF. Without root they skip
# with a reason; SLUICE_REQUIRE_PRIVILEGED=1 (set by CI) turns any such skip into a failure.
# Last, a short libFuzzer run of every fuzz target (tools/fuzz.sh).
# SLUICE_SKIP_SANITIZERS=1 / SLUICE_SKIP_FUZZ=1 skip those passes (quicker local runs).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SLUICE_BUILD_DIR:-$root/build}
jobs=$(nproc)

bash "$root/tools/install-deps.sh"

echo "== build ($build)"
cmake -S "$root" -B "$build" -G Ninja -DSLUICE_WERROR=ON >/dev/null
cmake --build "$build" -j "$jobs"

echo "== tests"
(cd "$build" && ctest --output-on-failure -j "$jobs" --timeout 600)

if [[ ${SLUICE_SKIP_SANITIZERS:-0} != 1 ]]; then
  echo "== unit tests under ASan+UBSan ($build-asan)"
  cmake -S "$root" -B "$build-asan" -G Ninja -DSLUICE_WERROR=ON -DSLUICE_SANITIZE=ON \
        -DCMAKE_BUILD_TYPE=Debug >/dev/null
  # Only what the unit tests run (target sluice_unit_tests: their executables and what they
  # depend on): the e2e binaries, the simulator and the benchmarks are not run under the
  # sanitizers, and building them a second time only lengthened CI.
  cmake --build "$build-asan" -j "$jobs" --target sluice_unit_tests
  (cd "$build-asan" && ctest --output-on-failure -j "$jobs" -L unit)
fi
if [[ ${SLUICE_SKIP_FUZZ:-0} != 1 ]]; then
  echo "== fuzzing (libFuzzer, ${SLUICE_FUZZ_SECONDS:-20}s per target)"
  bash "$root/tools/fuzz.sh"
fi
echo "== all tests passed"
