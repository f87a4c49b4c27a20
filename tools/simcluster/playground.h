// The playground: a simulated mesh kept running for people to try things in.
//
//   sluice-sim up --mesh [--nodes N] [--pods P]   controller, agents and tunnels on every node,
//                                                 P pods per node enrolled with their Workloads;
//                                                 prints where things are; Ctrl-C removes it
//   sluice-sim exec POD -- CMD...                 CMD inside POD (its netns and cgroup: captured)
//   sluice-sim apply FILE                         FILE into the controller's configuration
//
// `up --mesh` writes what the other two need to its run's state folder (playground.json); they
// act on the live run that has one (the newest, or --run PREFIX).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/common/error.h"

namespace sluice::sim {

int playgroundUp(int nodes, int podsPerNode);
int playgroundExec(const std::optional<std::string>& run, const std::string& pod, const std::vector<std::string>& argv);
int playgroundApply(const std::optional<std::string>& run, const std::string& file);

// The pod named `name` in a playground description (null when absent). Pure.
const nlohmann::json* playgroundPod(const nlohmann::json& playground, const std::string& name);

}  // namespace sluice::sim
