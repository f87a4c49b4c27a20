// sluice-bench's memory rows (--memory), measured on fresh tunnels before any traffic:
//   - node0's tunnel RSS idle with 100 enrolled pods on its node (pods added for it, removed
//     after: each is a real pod, network namespace, veth and capture), all of it and its
//     anonymous part, and the anonymous memory each enrolled pod adds;
//   - bytes of RSS per idle relayed connection on each tunnel, for 1,000 connections held
//     open (one byte echoed each) over plain TCP (c-mesh -> s-mesh) and over HBONE (c-mesh ->
//     s-mtls), measured once a warm-up round has brought the tunnels' tables to size.
#pragma once

#include <memory>
#include <vector>

#include "bench_report.h"
#include "simcluster/cluster.h"
#include "simcluster/mesh_node.h"
#include "sluice/common/error.h"

namespace sluice::bench {

Result<std::vector<Row>> runMemoryRows(sim::Cluster& cluster, std::vector<std::unique_ptr<sim::MeshNode>>& mesh,
                                       int enrolledPods = 100, int connections = 1000);

}  // namespace sluice::bench
