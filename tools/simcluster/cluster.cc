#include "simcluster/cluster.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

namespace sluice::sim {
namespace {
namespace fs = std::filesystem;

constexpr const char* kUnderlayNetns = "underlay";
constexpr const char* kUnderlayBridge = "br0";
constexpr const char* kPodBridge = "cni0";
constexpr const char* kNetworkName = "sluice-sim";

// IPv6 duplicate address detection keeps fresh addresses "tentative" (unusable) for about a
// second; in a simulation every address is unique by construction, so it is switched off in
// every namespace before interfaces appear there.
const std::vector<std::string> kNamespaceSysctls = {
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
};
// A node routes between its pods and the underlay.
const std::vector<std::string> kNodeSysctls = {
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
};

Result<UniqueFd> openPath(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd) return failErrno("open " + path);
  return fd;
}

Status makeCgroup(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return failErrno("mkdir " + path);
  return {};
}

Status addNamedNetns(const std::string& name) {
  return discardValue(runChecked({.argv = {"ip", "netns", "add", name}}));
}

Status sysctlsIn(int netnsFd, const std::vector<std::string>& settings) {
  SpawnOptions options{.argv = {"sysctl", "-q", "-w"}, .netnsFd = netnsFd};
  options.argv.insert(options.argv.end(), settings.begin(), settings.end());
  return discardValue(runChecked(options));
}

}  // namespace

Result<std::unique_ptr<Cluster>> Cluster::create(ClusterOptions options) {
  if (options.nodes < 1 || options.nodes > kMaxNodes) {
    return fail(fmt::format("node count {} out of range 1..{}", options.nodes, kMaxNodes));
  }
  auto paths = detectSimPaths();
  if (!paths) return fail(std::move(paths.error()).context("simulated cluster"));
  auto reaped = reapStaleRuns(*paths);
  if (!reaped) return fail(std::move(reaped.error()));
  for (const auto& prefix : *reaped) {
    fmt::print(stderr, "sluice-sim: removed the leftovers of dead run {}\n", prefix);
  }

  std::unique_ptr<Cluster> cluster(new Cluster());
  cluster->options_ = std::move(options);
  cluster->paths_ = *paths;
  cluster->prefix_ = newRunPrefix();
  SLUICE_TRY(claimRun(cluster->paths_, cluster->prefix_), "simulated cluster");
  // From here on the destructor removes whatever was made if a later step fails.
  std::string runCgroup = cluster->paths_.cgroupRoot + "/" + cluster->prefix_;
  SLUICE_TRY(makeCgroup(runCgroup), "run cgroup");
  SLUICE_TRY(cluster->buildUnderlay(), "underlay");
  for (int i = 0; i < cluster->options_.nodes; ++i) {
    SLUICE_TRY(cluster->buildNode(i), fmt::format("node{}", i));
  }
  return cluster;
}

Cluster::~Cluster() {
  auto done = destroy();
  if (!done) fmt::print(stderr, "sluice-sim: cleanup of run {}: {}\n", prefix_, done.error().message());
}

Status Cluster::ipInNetns(const std::string& netns, std::vector<std::string> args) const {
  SpawnOptions options{.argv = {"ip", "-n", netns}};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  return discardValue(runChecked(options));
}

Status Cluster::buildUnderlay() {
  std::string ns = prefix_ + "-" + kUnderlayNetns;
  SLUICE_TRY(addNamedNetns(ns), "create netns");
  auto fd = openPath(paths_.netnsDir + "/" + ns, O_RDONLY);
  if (!fd) return fail(std::move(fd.error()));
  SLUICE_TRY(sysctlsIn(fd->get(), kNamespaceSysctls), "sysctl");
  SLUICE_TRY(ipInNetns(ns, {"link", "set", "lo", "up"}), "loopback");
  SLUICE_TRY(ipInNetns(ns, {"link", "add", kUnderlayBridge, "type", "bridge"}), "bridge");
  SLUICE_TRY(ipInNetns(ns, {"link", "set", kUnderlayBridge, "up"}), "bridge up");
  return {};
}

Status Cluster::buildNode(int index) {
  auto addresses = nodeAddressing(index);
  if (!addresses) return fail(std::move(addresses.error()));
  auto node = std::make_unique<Node>();
  node->index = index;
  node->name = fmt::format("node{}", index);
  node->netnsName = prefix_ + "-" + node->name;
  node->netnsPath = paths_.netnsDir + "/" + node->netnsName;
  node->cgroupPath = paths_.cgroupRoot + "/" + prefix_ + "/" + node->name;
  node->podsCgroupPath = node->cgroupPath + "/pods";
  node->systemCgroupPath = node->cgroupPath + "/system";
  node->bpffsDir = paths_.bpffsRoot + "/" + prefix_ + "/" + node->name;
  node->stateDir = paths_.stateRoot + "/" + prefix_ + "/" + node->name;
  node->addresses = *addresses;

  SLUICE_TRY(makeCgroup(node->cgroupPath), "cgroup");
  SLUICE_TRY(makeCgroup(node->podsCgroupPath), "cgroup");
  SLUICE_TRY(makeCgroup(node->systemCgroupPath), "cgroup");
  std::error_code ec;
  for (const auto& dir : {node->bpffsDir, node->stateDir}) {
    fs::create_directories(dir, ec);
    if (ec) return fail(fmt::format("create {}: {}", dir, ec.message()));
  }

  SLUICE_TRY(addNamedNetns(node->netnsName), "create netns");
  auto fd = openPath(node->netnsPath, O_RDONLY);
  if (!fd) return fail(std::move(fd.error()));
  node->netnsFd = std::move(*fd);
  std::vector<std::string> sysctls = kNamespaceSysctls;
  sysctls.insert(sysctls.end(), kNodeSysctls.begin(), kNodeSysctls.end());
  SLUICE_TRY(sysctlsIn(node->netnsFd.get(), sysctls), "sysctl");

  const std::string& ns = node->netnsName;
  std::string underlay = prefix_ + "-" + kUnderlayNetns;
  SLUICE_TRY(ipInNetns(ns, {"link", "set", "lo", "up"}), "loopback");
  // The veth is created inside the node netns with its peer placed straight into the underlay,
  // so no interface of the run ever appears in the machine's own namespace.
  SLUICE_TRY(ipInNetns(ns, {"link", "add", "eth0", "type", "veth", "peer", "name", node->name,
                            "netns", underlay}),
             "underlay veth");
  SLUICE_TRY(ipInNetns(underlay, {"link", "set", node->name, "master", kUnderlayBridge, "up"}),
             "attach to underlay");
  SLUICE_TRY(ipInNetns(ns, {"addr", "add", fmt::format("{}/{}", addresses->underlayV4, kUnderlayPrefixV4),
                            "dev", "eth0"}),
             "underlay address");
  SLUICE_TRY(ipInNetns(ns, {"-6", "addr", "add",
                            fmt::format("{}/{}", addresses->underlayV6, kUnderlayPrefixV6), "dev",
                            "eth0", "nodad"}),
             "underlay address");
  SLUICE_TRY(ipInNetns(ns, {"link", "set", "eth0", "up"}), "underlay up");
  nodes_.push_back(std::move(node));
  // Routes to earlier nodes can be added now; later nodes add theirs to us when they appear.
  for (const auto& existing : nodes_) {
    for (const auto& route : routesToOtherNodes(existing->index, index + 1)) {
      bool mine = existing->index == index;
      bool toNew = route.via == addresses->underlayV4 || route.via == addresses->underlayV6;
      if (!mine && !toNew) continue;
      SLUICE_TRY(ipInNetns(existing->netnsName, {"route", "replace", route.destination, "via", route.via}),
                 "route to " + route.destination);
    }
  }
  return {};
}

CniConfList Cluster::podNetworkConfig(const Node& node) const {
  CniConfList list;
  list.name = kNetworkName;
  using nlohmann::json;
  json ipam = json::object();
  ipam["type"] = "host-local";
  // Per-run IPAM state, so runs never hand out each other's addresses or leak leases.
  ipam["dataDir"] = fmt::format("{}/{}/ipam/{}", paths_.stateRoot, prefix_, node.name);
  // One range set per family: the pod gets one IPv4 and one IPv6 address.
  ipam["ranges"] = json::array({json::array({json{{"subnet", node.addresses.podCidrV4}}}),
                                json::array({json{{"subnet", node.addresses.podCidrV6}}})});
  ipam["routes"] = json::array({json{{"dst", "0.0.0.0/0"}}, json{{"dst", "::/0"}}});
  json bridge = json::object();
  bridge["type"] = "bridge";
  bridge["bridge"] = kPodBridge;
  bridge["isGateway"] = true;
  bridge["ipam"] = std::move(ipam);
  list.plugins.push_back(std::move(bridge));
  for (const auto& plugin : options_.chainedPlugins) list.plugins.push_back(plugin);
  if (options_.chainedPluginsFor) {
    for (auto& plugin : options_.chainedPluginsFor(node)) list.plugins.push_back(std::move(plugin));
  }
  return list;
}

Result<const Pod*> Cluster::addPod(int nodeIndex, const std::string& name, const PodSpec& spec) {
  if (nodeIndex < 0 || nodeIndex >= static_cast<int>(nodes_.size())) {
    return fail(fmt::format("add pod {}: no node {} (cluster has {})", name, nodeIndex, nodes_.size()));
  }
  if (name.empty() || name.size() > 40 ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos) {
    return fail(fmt::format("add pod '{}': names are 1-40 characters of a-z, 0-9 and '-'", name));
  }
  if (pods_.contains(name)) return fail(fmt::format("add pod {}: a pod of that name exists", name));
  const Node& node = *nodes_[static_cast<size_t>(nodeIndex)];

  auto pod = std::make_unique<Pod>();
  pod->name = name;
  pod->ns = spec.ns;
  pod->serviceAccount = spec.serviceAccount;
  pod->labels = spec.labels;
  pod->node = nodeIndex;
  pod->containerId = fmt::format("{}-{}", prefix_, name);
  std::string netnsName = fmt::format("{}-{}-{}", prefix_, node.name, name);
  pod->netnsPath = paths_.netnsDir + "/" + netnsName;
  pod->cgroupPath = node.podsCgroupPath + "/" + name;
  // Registered before its objects exist, so removePod() cleans up a half-made pod.
  Pod& ref = *pod;
  pods_[name] = std::move(pod);
  auto built = [&]() -> Status {
    SLUICE_TRY(makeCgroup(ref.cgroupPath), "cgroup");
    auto procs = openPath(ref.cgroupPath + "/cgroup.procs", O_WRONLY);
    if (!procs) return fail(std::move(procs.error()));
    ref.cgroupProcsFd = std::move(*procs);
    SLUICE_TRY(addNamedNetns(netnsName), "create netns");
    auto fd = openPath(ref.netnsPath, O_RDONLY);
    if (!fd) return fail(std::move(fd.error()));
    ref.netnsFd = std::move(*fd);
    SLUICE_TRY(sysctlsIn(ref.netnsFd.get(), kNamespaceSysctls), "sysctl");
    SLUICE_TRY(publishPodSpec(ref, spec), "pod registry");
    CniTarget target = cniTarget(ref, node);
    // The runtime brings up the sandbox's loopback with its own one-plugin network.
    CniTarget loopback = target;
    loopback.ifName = "lo";
    CniConfList lo{.name = "loopback", .plugins = {nlohmann::json{{"type", "loopback"}}}};
    auto loResult = cniAdd(lo, loopback);
    if (!loResult) return fail(std::move(loResult.error()));
    auto result = cniAdd(podNetworkConfig(node), target);
    if (!result) return fail(std::move(result.error()));
    ref.cniResult = *result;
    auto addresses = addressesFromResult(*result, target.ifName);
    if (!addresses) return fail(std::move(addresses.error()));
    ref.ipv4 = addresses->ipv4;
    ref.ipv6 = addresses->ipv6;
    return {};
  }();
  if (!built) {
    auto error = std::move(built.error()).context(fmt::format("add pod {} on {}", name, node.name));
    (void)removePod(name);
    return fail(std::move(error));
  }
  return &ref;
}

Status Cluster::removePod(const std::string& name) {
  auto it = pods_.find(name);
  if (it == pods_.end()) return fail(fmt::format("remove pod {}: no such pod", name));
  Pod& pod = *it->second;
  const Node& node = *nodes_[static_cast<size_t>(pod.node)];
  Status first;
  if (!pod.cniResult.is_null()) first = cniDel(podNetworkConfig(node), cniTarget(pod, node), pod.cniResult);
  std::error_code ec;
  fs::remove(fmt::format("{}/{}_{}.json", registryDir(), pod.ns, pod.name), ec);
  pod.netnsFd.reset();
  pod.cgroupProcsFd.reset();
  // Killing the pod's processes (via its cgroup) lets its namespace go away with the file.
  if (auto removed = removeCgroupTree(pod.cgroupPath); !removed && first) first = std::move(removed);
  if (auto removed = removeNamedNetns(pod.netnsPath); !removed && first) first = std::move(removed);
  pods_.erase(it);
  if (!first) return fail(std::move(first.error()).context("remove pod " + name));
  return {};
}

Status Cluster::delistFromMesh(const std::string& name) {
  auto it = pods_.find(name);
  if (it == pods_.end()) return fail(fmt::format("delist pod {}: no such pod", name));
  const Pod& pod = *it->second;
  const Node& node = *nodes_[static_cast<size_t>(pod.node)];
  if (pod.cniResult.is_null()) return fail(fmt::format("delist pod {}: it was never added by CNI", name));
  return cniDel(podNetworkConfig(node), cniTarget(pod, node), pod.cniResult, 1);
}

CniTarget Cluster::cniTarget(const Pod& pod, const Node& node) const {
  return {.containerId = pod.containerId,
          .netnsPath = pod.netnsPath,
          .pluginPath = options_.cniPluginPath,
          // IgnoreUnknown=1 as kubelet/containerd send it: plugins that know no K8S_* keys skip them.
          .args = fmt::format("IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_UID={}", pod.ns, pod.name,
                              pod.containerId),
          .runInNetnsFd = node.netnsFd.get()};
}

Status Cluster::publishPodSpec(const Pod& pod, const PodSpec& spec) const {
  std::error_code ec;
  fs::create_directories(registryDir(), ec);
  if (ec) return fail(fmt::format("create {}: {}", registryDir(), ec.message()));
  nlohmann::json j{{"namespace", spec.ns}, {"name", pod.name}, {"uid", pod.containerId},
                   {"serviceAccount", spec.serviceAccount}, {"labels", spec.labels},
                   {"annotations", spec.annotations}};
  std::string path = fmt::format("{}/{}_{}.json", registryDir(), pod.ns, pod.name);
  std::ofstream out(path);
  out << j.dump(2) << '\n';
  if (!out) return fail("write " + path);
  return {};
}

const Pod* Cluster::pod(const std::string& name) const {
  auto it = pods_.find(name);
  return it == pods_.end() ? nullptr : it->second.get();
}

std::vector<const Pod*> Cluster::pods() const {
  std::vector<const Pod*> out;
  for (const auto& [_, pod] : pods_) out.push_back(pod.get());
  return out;
}

Result<ChildProcess> Cluster::runInPod(const std::string& name, SpawnOptions options) const {
  const Pod* p = pod(name);
  if (p == nullptr) return fail(fmt::format("run in pod {}: no such pod", name));
  options.netnsFd = p->netnsFd.get();
  options.cgroupProcsFd = p->cgroupProcsFd.get();
  auto child = spawn(options);
  if (!child) return fail(std::move(child.error()).context("run in pod " + name));
  return child;
}

Result<ChildProcess> Cluster::runOnNode(int index, SpawnOptions options) const {
  if (index < 0 || index >= static_cast<int>(nodes_.size())) {
    return fail(fmt::format("run on node {}: no such node", index));
  }
  const Node& n = *nodes_[static_cast<size_t>(index)];
  auto procs = openPath(n.systemCgroupPath + "/cgroup.procs", O_WRONLY);
  if (!procs) return fail(std::move(procs.error()));
  options.netnsFd = n.netnsFd.get();
  options.cgroupProcsFd = procs->get();
  auto child = spawn(options);
  if (!child) return fail(std::move(child.error()).context("run on " + n.name));
  return child;
}

Status Cluster::destroy() {
  if (destroyed_ || prefix_.empty()) return {};
  destroyed_ = true;
  // Descriptors first: an open netns fd would keep a namespace alive after its file is gone.
  for (auto& [_, pod] : pods_) {
    pod->netnsFd.reset();
    pod->cgroupProcsFd.reset();
  }
  for (auto& node : nodes_) node->netnsFd.reset();
  pods_.clear();
  nodes_.clear();
  return removeRun(paths_, prefix_);
}

void printTopology(const Cluster& cluster) {
  fmt::print("cluster {} ({} nodes)\n", cluster.prefix(), cluster.nodes().size());
  for (const auto& node : cluster.nodes()) {
    fmt::print("  {:<8} underlay {:<14} {:<20} pods {} {}\n", node->name, node->addresses.underlayV4,
               node->addresses.underlayV6, node->addresses.podCidrV4, node->addresses.podCidrV6);
  }
  for (const Pod* pod : cluster.pods()) {
    fmt::print("  pod {:<12} on {:<8} {:<14} {}\n", pod->name, cluster.node(pod->node).name,
               pod->ipv4, pod->ipv6);
  }
}

}  // namespace sluice::sim
