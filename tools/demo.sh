#!/usr/bin/env bash
# The main job: a local simulated multi-node cluster with real traffic between its pods.
# From a fresh machine: installs dependencies, builds, runs `sluice-sim demo` (as root).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SLUICE_BUILD_DIR:-$root/build}

bash "$root/tools/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j "$(nproc)" --target sluice-sim sluice-tcpcheck
exec "$build/bin/sluice-sim" demo "$@"
