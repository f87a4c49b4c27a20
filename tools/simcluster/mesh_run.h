// A running mesh in the simulated cluster: the cluster, the controller (with its CA unless
// asked otherwise) on node0, and an agent and a ztunnel on every node holding the controller's
// node credentials. What the demo, the playground, the benchmark and the e2e tests all start.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "simcluster/cluster.h"
#include "simcluster/mesh_controller.h"
#include "simcluster/mesh_node.h"

namespace sluice::sim {

struct MeshRun {
  std::unique_ptr<Cluster> cluster;
  MeshController controller;
  std::vector<std::unique_ptr<MeshNode>> nodes;
};

// `moreTunnelArgs(node)`: arguments each ztunnel gets besides the controller's.
Result<MeshRun> startMeshRun(int nodes = 2, MeshControllerOptions options = {},
                             const std::function<std::vector<std::string>(const Node&)>& moreTunnelArgs = {});

}  // namespace sluice::sim
