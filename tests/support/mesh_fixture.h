// The start every HBONE e2e test shares: a 2-node mesh cluster, the controller (with its CA)
// on node0, both nodes' agents and ztunnels holding the controller's node credentials, and an
// echo app in a pod.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "simcluster/cluster.h"
#include "simcluster/mesh_controller.h"
#include "simcluster/mesh_node.h"
#include "simcluster/mesh_run.h"
#include "sluice/common/process.h"

namespace sluice {

// The repository's own file at `relative` (interop scripts).
inline std::string sourceFile(const std::string& relative) { return std::string(SLUICE_SOURCE_DIR) + "/" + relative; }

using Mesh = sim::MeshRun;

// `moreTunnelArgs(node)`: arguments each ztunnel gets besides the controller's.
inline Result<Mesh> startMesh(sim::MeshControllerOptions options = {},
                              std::function<std::vector<std::string>(const sim::Node&)> moreTunnelArgs = {}) {
  return sim::startMeshRun(2, options, moreTunnelArgs);
}

// `sluice-tcpcheck serve` on [::]:8080 in `pod`, returned once it listens.
inline Result<ChildProcess> startEcho(const sim::Cluster& cluster, const std::string& pod) {
  SLUICE_TRY_ASSIGN(echo, cluster.runInPod(pod, {.argv = {siblingProgram("sluice-tcpcheck"), "serve", "--listen", "[::]:8080"},
                                                 .captureOutput = true}));
  SLUICE_TRY(readLine(echo.stdoutPipe(), std::chrono::seconds(10)), "echo server in " + pod);
  return echo;
}

}  // namespace sluice
