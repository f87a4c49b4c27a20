// A simulated multi-node cluster on one machine, built the way a real cluster's nodes are:
//
//   underlay netns "<run>-underlay": bridge br0 joining every node
//   node netns "<run>-nodeN": eth0 on the underlay, bridge cni0 for its pods, IP forwarding,
//                             routes to every other node's pod CIDRs via that node
//   pod netns "<run>-nodeN-<pod>": wired by the real CNI reference plugins (loopback, then
//                             bridge with host-local IPAM), invoked like a container runtime does
//   cgroups "<cgroup2>/sluice-sim/<run>/nodeN/{system,pods/<pod>}"
//   pins "<bpffs>/sluice-sim/<run>/nodeN" for the node's agent
//
// The Cluster owns every object it creates and removes them all when destroyed; objects of a
// killed run are removed by the next run (see run_registry.h).
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "simcluster/addressing.h"
#include "simcluster/cni_runtime.h"
#include "simcluster/run_registry.h"
#include "sluice/common/error.h"
#include "sluice/common/process.h"
#include "sluice/common/unique_fd.h"

namespace sluice::sim {

struct Node;

struct ClusterOptions {
  int nodes = 2;
  // CNI_PATH: the reference plugins, plus any folder holding a chained plugin (sluice-cni).
  std::string cniPluginPath = "/usr/lib/cni";
  // Plugins chained after the bridge plugin in every pod's network configuration list, as a
  // cluster chains a mesh's CNI plugin after the primary one.
  std::vector<nlohmann::json> chainedPlugins;
  // The same, per node (e.g. pointing sluice-cni at that node's agent socket).
  std::function<std::vector<nlohmann::json>(const Node&)> chainedPluginsFor;
};

// What the API server knows of a pod beyond its name: the metadata the node agent looks up.
struct PodSpec {
  std::string ns = "default";
  std::string serviceAccount = "default";
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

struct Node {
  int index = 0;
  std::string name;        // "node0"
  std::string netnsName;   // "<run>-node0"
  std::string netnsPath;   // /run/netns/<run>-node0
  std::string cgroupPath;  // the node's cgroup root: cgroup programs of its agent attach here
  std::string podsCgroupPath;
  std::string systemCgroupPath;  // node daemons (agent, tunnel) run here
  std::string bpffsDir;          // the node agent's pin folder
  std::string stateDir;          // node-local files (sockets, agent state)
  NodeAddressing addresses;
  UniqueFd netnsFd;
};

struct Pod {
  std::string name;  // unique in the cluster
  std::string ns;
  std::string serviceAccount;
  std::map<std::string, std::string> labels;
  int node = 0;
  std::string containerId;
  std::string netnsPath;
  std::string cgroupPath;
  std::string ipv4, ipv6;
  nlohmann::json cniResult;
  UniqueFd netnsFd;
  UniqueFd cgroupProcsFd;
};

class Cluster;
// The nodes (underlay and pod ranges) and pods of `cluster`, on stdout.
void printTopology(const Cluster& cluster);

class Cluster {
 public:
  // Removes stale runs, claims a new run and builds the underlay and `options.nodes` nodes.
  static Result<std::unique_ptr<Cluster>> create(ClusterOptions options);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  const std::string& prefix() const { return prefix_; }
  const SimPaths& paths() const { return paths_; }
  // The simulated API server's pod metadata: "<namespace>_<name>.json" per pod.
  std::string registryDir() const { return paths_.stateRoot + "/" + prefix_ + "/registry"; }
  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  const Node& node(int index) const { return *nodes_.at(static_cast<size_t>(index)); }
  const Pod* pod(const std::string& name) const;
  std::vector<const Pod*> pods() const;

  // Creates a pod's netns and cgroup, publishes its metadata in the registry, and runs the
  // CNI ADD chain for it on its node (CNI_ARGS carries K8S_POD_NAMESPACE/NAME/UID).
  Result<const Pod*> addPod(int node, const std::string& name, const PodSpec& spec = {});
  // Runs CNI DEL, kills the pod's processes, removes its netns and cgroup.
  Status removePod(const std::string& name);
  // Runs CNI DEL for the mesh's plugin (the chain's last) only, leaving the pod, its processes
  // and its network as they are: the moment of a real removal after the runtime called the mesh's
  // plugin and before it tore the pod's network down.
  Status delistFromMesh(const std::string& name);

  // Starts a process inside a pod (its netns and cgroup) or on a node (node netns, system cgroup).
  Result<ChildProcess> runInPod(const std::string& pod, SpawnOptions options) const;
  Result<ChildProcess> runOnNode(int node, SpawnOptions options) const;

  // Removes every object of the run. Idempotent; the destructor calls it.
  Status destroy();

 private:
  Cluster() = default;
  Status buildUnderlay();
  Status buildNode(int index);
  CniConfList podNetworkConfig(const Node& node) const;
  CniTarget cniTarget(const Pod& pod, const Node& node) const;
  Status publishPodSpec(const Pod& pod, const PodSpec& spec) const;
  Status ipInNetns(const std::string& netns, std::vector<std::string> args) const;

  ClusterOptions options_;
  SimPaths paths_;
  std::string prefix_;
  bool destroyed_ = false;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<std::string, std::unique_ptr<Pod>> pods_;
};

}  // namespace sluice::sim
