// The container-runtime side of CNI (what containerd's libcni does), for the simulated cluster:
// run a network configuration list's plugins in order on ADD (each plugin gets the previous
// one's result as "prevResult") and in reverse on DEL, with the standard CNI_* environment and
// the plugin's netconf on stdin. Sluice's own CNI plugin is later chained exactly this way.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "sluice/common/error.h"

namespace sluice::sim {

// A network configuration list (.conflist): name, cniVersion and the plugins' configs.
struct CniConfList {
  std::string name;
  std::string cniVersion = "1.0.0";
  std::vector<nlohmann::json> plugins;  // each has at least "type"
};

struct CniTarget {
  std::string containerId;
  std::string netnsPath;  // /run/netns/...
  std::string ifName = "eth0";
  std::string pluginPath = "/usr/lib/cni";  // CNI_PATH: folders searched for plugins, ':'-separated
  std::string args;                         // CNI_ARGS: "K8S_POD_NAMESPACE=..;K8S_POD_NAME=.."
  int runInNetnsFd = -1;  // the namespace the plugin runs in (the node's), -1 for ours
};

// The config one plugin receives on stdin: its own config plus the list's name and version,
// and the previous plugin's result when there is one (CNI spec, "Section 4: Plugin Delegation").
nlohmann::json pluginNetconf(const CniConfList& list, size_t pluginIndex,
                             const nlohmann::json* prevResult);

// The CNI_* environment for one invocation.
std::vector<std::string> cniEnvironment(std::string_view command, const CniTarget& target);

// Turns a plugin's output into an error message when it failed: CNI error JSON
// ({"code","msg","details"}) if it printed one, else its stderr.
std::string describePluginFailure(std::string_view plugin, int exitCode, std::string_view out,
                                  std::string_view err);

// Addresses a successful ADD assigned to `ifName` (inside the sandbox), without prefix length.
struct AssignedAddresses {
  std::string ipv4;
  std::string ipv6;
};
Result<AssignedAddresses> addressesFromResult(const nlohmann::json& result, std::string_view ifName);

// The first executable "<folder>/<type>" along `pluginPath`, or an error naming the path.
Result<std::string> findPlugin(const std::string& pluginPath, const std::string& type);

// Runs the list's ADD chain; returns the final result.
Result<nlohmann::json> cniAdd(const CniConfList& list, const CniTarget& target);

// Runs DEL in reverse order, each plugin given `lastResult` as prevResult. Runs every plugin
// even when one fails (DEL must release what it can) and reports the first failure.
// `plugins`: how many of the chain's plugins, from its end, get the DEL (all by default; 1: only
// the last, the mesh's, which a runtime calls first).
Status cniDel(const CniConfList& list, const CniTarget& target, const nlohmann::json& lastResult,
              size_t plugins = static_cast<size_t>(-1));

}  // namespace sluice::sim
