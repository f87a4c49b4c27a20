#!/usr/bin/env bash
# Builds the libFuzzer targets (clang 16, ASan+UBSan) and runs each for SLUICE_FUZZ_SECONDS
# (default 20) from its seed corpus in tests/fuzz/corpus/. A crash fails the script and leaves
# the reproducer (crash-*) in the build folder. Called by tools/test.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SLUICE_BUILD_DIR:-$root/build}-fuzz
seconds=${SLUICE_FUZZ_SECONDS:-20}
targets=(fuzz_cni_invocation fuzz_pod_capture_plan fuzz_socket_address fuzz_hbone_session fuzz_authorization_policy
         fuzz_http1_request fuzz_http2_request fuzz_kube_watch_event fuzz_node_revocations)

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang-16 -DCMAKE_CXX_COMPILER=clang++-16 \
      -DSLUICE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
for target in "${targets[@]}"; do
  corpus="$root/tests/fuzz/corpus/${target#fuzz_}"
  work="$build/corpus/${target#fuzz_}"
  mkdir -p "$work"
  echo "== $target for ${seconds}s"
  # pipefail: a crash (non-zero exit of the fuzzer) fails the pipeline and, with -e, the script.
  if ! (cd "$build" && "./bin/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
          "$work" "$corpus" 2>&1 | tail -n 2); then
    echo "fuzz: $target found a failure; reproducer in $build" >&2
    exit 1
  fi
done
