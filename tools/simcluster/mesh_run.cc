#include "simcluster/mesh_run.h"

namespace sluice::sim {

Result<MeshRun> startMeshRun(int nodes, MeshControllerOptions options,
                             const std::function<std::vector<std::string>(const Node&)>& moreTunnelArgs) {
  MeshRun run;
  SLUICE_TRY_ASSIGN(cluster, createMeshCluster(nodes));
  run.cluster = std::move(cluster);
  SLUICE_TRY_ASSIGN(controller, MeshController::start(*run.cluster, options));
  run.controller = std::move(controller);
  const MeshController& ca = run.controller;
  SLUICE_TRY_ASSIGN(started, startMeshNodes(*run.cluster, MeshNode::Tunnel::kZtunnel, [&](const Node& n) {
                      auto args = ca.tunnelArgs(n).value();
                      if (moreTunnelArgs) {
                        for (auto& a : moreTunnelArgs(n)) args.push_back(std::move(a));
                      }
                      return args;
                    }));
  run.nodes = std::move(started);
  return run;
}

}  // namespace sluice::sim
