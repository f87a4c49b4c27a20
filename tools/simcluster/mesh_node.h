// The mesh's node-local processes on a simulated node (its netns and system cgroup), for the
// demo, tests and benchmarks: the real sluice-agent and a tunnel: the real ztunnel, or the
// tests' stand-in (sluice-test-ztunnel, built only with the tests), whose JSON event lines on
// stdout are collected.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "simcluster/cluster.h"
#include "sluice/common/process.h"

namespace sluice::sim {

// The chained plugin entry for `node`: sluice-cni pointed at that node's agent socket.
nlohmann::json sluiceCniPlugin(const Node& node);
// CNI_PATH holding the reference plugins and sluice-cni.
std::string cniPluginPathWithSluice();

// A simulated cluster whose pods' CNI chain ends with sluice-cni (pointed at each node's agent).
Result<std::unique_ptr<Cluster>> createMeshCluster(int nodes);

// "ip:port", or "[ip]:port" for IPv6.
std::string withPort(const std::string& ip, int port);

class MeshNode {
 public:
  MeshNode(const Cluster& cluster, int node);
  ~MeshNode();

  std::string agentSocket() const;
  std::string zdsSocket() const;

  Status startAgent();
  Status stopAgent();  // SIGTERM, as an orchestrator stops it
  Status killAgent();  // SIGKILL
  // The tunnel: the real ztunnel, or the stand-in (whose accepted connections become events).
  enum class Tunnel { kTestStandin, kZtunnel };
  Status startTunnel(Tunnel kind = Tunnel::kZtunnel, std::vector<std::string> extraArgs = {});
  Status stopTunnel();
  Status killTunnel();
  // An upgrade as a DaemonSet with maxSurge makes it: a new ztunnel with the same arguments
  // starts beside the running one; once the agent reports that the new one has every pod and the
  // old one handed over, the old one gets SIGTERM and must exit within `exitWithin` (its drain
  // deadline and a margin). Fails if any step does not happen; when the new one never takes
  // over (10 s), it is stopped and the old one keeps running.
  Status upgradeTunnel(std::chrono::milliseconds exitWithin);
  // The agent's status (sluicectl -o json status).
  Result<nlohmann::json> agentStatus() const;
  pid_t tunnelPid() const { return tunnel_.pid(); }
  // GET http://<address><path> from inside the node (ztunnel's admin is on the node's loopback).
  Result<std::string> httpGet(const std::string& address, const std::string& path) const;
  Result<nlohmann::json> configDump() const;
  // The sum of the tunnel's Prometheus samples of `family` carrying every label in `labels`.
  Result<double> metricSum(const std::string& family, const std::map<std::string, std::string>& labels) const;

  // Runs sluicectl against this node's agent; returns its exit code and output.
  Result<RunOutput> sluicectl(std::vector<std::string> args) const;

  std::vector<nlohmann::json> events() const;
  // Waits up to `timeout` for an event at index >= `from` for which `match` is true.
  std::optional<nlohmann::json> waitForEvent(const std::function<bool(const nlohmann::json&)>& match,
                                             size_t from = 0,
                                             std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  size_t eventCount() const;

 private:
  const Cluster& cluster_;
  int node_;
  ChildProcess agent_, tunnel_;
  std::vector<std::string> tunnelArgv_;  // the real ztunnel's, for upgrades
  std::thread reader_;
  mutable std::mutex mutex_;
  std::vector<nlohmann::json> events_;
};

// Starts the agent and a tunnel of `kind` on every node of `cluster`; `tunnelArgs(node)` gives
// each tunnel's extra arguments (may be empty). Fails naming the node that could not start.
Result<std::vector<std::unique_ptr<MeshNode>>> startMeshNodes(
    const Cluster& cluster, MeshNode::Tunnel kind,
    const std::function<std::vector<std::string>(const Node&)>& tunnelArgs = {});

}  // namespace sluice::sim
