#!/usr/bin/env bash
# The main job: a local simulated multi-node cluster running the mesh (sluice-agent and ztunnel
# on every node), with real traffic between pods on different nodes through both tunnels.
# From a fresh machine: installs dependencies, builds, runs `sluice-sim demo` (as root).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SLUICE_BUILD_DIR:-$root/build}

bash "$root/tools/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j "$(nproc)" --target sluice-sim sluice-tcpcheck sluice-agent sluice-cni sluicectl ztunnel sluice-controller
exec "$build/bin/sluice-sim" demo "$@"
