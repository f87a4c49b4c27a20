#include "simcluster/mesh_node.h"

#include <signal.h>
#include <unistd.h>
#include <sys/socket.h>

#include <cstdlib>
#include <sstream>

#include "simcluster/least_privilege.h"
#include "sluice/common/unix_socket.h"

namespace sluice::sim {
using nlohmann::json;

json sluiceCniPlugin(const Node& node) {
  return json{{"type", "sluice-cni"}, {"agentSocket", node.stateDir + "/agent.sock"}, {"timeoutSeconds", 20}};
}

std::string cniPluginPathWithSluice() {
  std::string cni = siblingProgram("sluice-cni");
  return "/usr/lib/cni:" + cni.substr(0, cni.rfind('/'));
}

Result<std::unique_ptr<Cluster>> createMeshCluster(int nodes) {
  return Cluster::create({.nodes = nodes,
                               .cniPluginPath = cniPluginPathWithSluice(),
                               .chainedPluginsFor = [](const Node& n) { return std::vector<json>{sluiceCniPlugin(n)}; }});
}

std::string withPort(const std::string& ip, int port) {
  return ip.find(':') == std::string::npos ? ip + ":" + std::to_string(port) : "[" + ip + "]:" + std::to_string(port);
}

Result<std::vector<std::unique_ptr<MeshNode>>> startMeshNodes(
    const Cluster& cluster, MeshNode::Tunnel kind, const std::function<std::vector<std::string>(const Node&)>& tunnelArgs) {
  std::vector<std::unique_ptr<MeshNode>> nodes;
  for (const auto& node : cluster.nodes()) {
    nodes.push_back(std::make_unique<MeshNode>(cluster, node->index));
    auto started = nodes.back()->startAgent();
    if (started) started = nodes.back()->startTunnel(kind, tunnelArgs ? tunnelArgs(*node) : std::vector<std::string>{});
    if (!started) return fail(std::move(started.error()).context(node->name));
  }
  return nodes;
}

MeshNode::MeshNode(const Cluster& cluster, int node) : cluster_(cluster), node_(node) {}

MeshNode::~MeshNode() {
  (void)stopTunnel();
  (void)stopAgent();
}

std::string MeshNode::agentSocket() const { return cluster_.node(node_).stateDir + "/agent.sock"; }
std::string MeshNode::zdsSocket() const { return cluster_.node(node_).stateDir + "/zds.sock"; }

Status MeshNode::startAgent() {
  const Node& n = cluster_.node(node_);
  auto argv = withOnlyDeclaredCapabilities({siblingProgram("sluice-agent"), "--node", n.name, "--cgroup", n.cgroupPath,
                                            "--bpffs", n.bpffsDir, "--state-dir", n.stateDir + "/agent", "--socket",
                                            agentSocket(), "--zds-socket", zdsSocket(), "--pod-registry",
                                            cluster_.registryDir(), "--tunnel-wait-ms", "3000"});
  if (!argv) return fail(std::move(argv.error()));
  auto agent = cluster_.runOnNode(node_, {.argv = std::move(*argv)});
  if (!agent) return fail(std::move(agent.error()));
  agent_ = std::move(*agent);
  // Ready once its control socket answers.
  for (int i = 0; i < 500; ++i) {
    if (connectUnix(agentSocket(), SOCK_STREAM)) return {};
    if (auto code = agent_.wait(std::chrono::milliseconds(20)); code) {
      return fail("sluice-agent exited with " + std::to_string(*code) + " at start");
    }
  }
  return fail("sluice-agent did not open its control socket within 10 s");
}

Status MeshNode::stopAgent() {
  if (!agent_.running()) return {};
  auto code = agent_.stop(std::chrono::seconds(10));
  if (!code) return fail(std::move(code.error()));
  if (*code != 0) return fail("sluice-agent exited with " + std::to_string(*code) + " on SIGTERM");
  return {};
}

Status MeshNode::killAgent() {
  SLUICE_TRY(agent_.signal(SIGKILL), "kill agent");
  return discardValue(agent_.wait(std::chrono::seconds(10)));
}

Status MeshNode::startTunnel(Tunnel kind, std::vector<std::string> extraArgs) {
  SLUICE_TRY(stopTunnel(), "previous tunnel");
  std::vector<std::string> argv = {siblingProgram(kind == Tunnel::kZtunnel ? "ztunnel" : "sluice-test-ztunnel"),
                                   "--zds-socket", zdsSocket(), "--pin-dir", cluster_.node(node_).bpffsDir};
  if (kind == Tunnel::kZtunnel) argv.insert(argv.end(), {"--workers", "2"});
  argv.insert(argv.end(), extraArgs.begin(), extraArgs.end());
  if (kind == Tunnel::kZtunnel) {
    auto leastPrivileged = withOnlyDeclaredCapabilities(std::move(argv));
    if (!leastPrivileged) return fail(std::move(leastPrivileged.error()));
    argv = std::move(*leastPrivileged);
  }
  auto tunnel = cluster_.runOnNode(node_, {.argv = argv, .captureOutput = kind == Tunnel::kTestStandin});
  if (!tunnel) return fail(std::move(tunnel.error()));
  tunnel_ = std::move(*tunnel);
  tunnelArgv_ = kind == Tunnel::kZtunnel ? argv : std::vector<std::string>{};
  if (kind == Tunnel::kZtunnel) {
    // Ready when its readiness endpoint says the agent's snapshot arrived.
    for (int i = 0; i < 500; ++i) {
      auto ready = httpGet("127.0.0.1:15021", "/healthz/ready");
      if (ready && ready->find("ready") == 0) return {};
      if (auto code = tunnel_.wait(std::chrono::milliseconds(20)); code) {
        return fail("ztunnel exited with " + std::to_string(*code) + " at start");
      }
    }
    return fail("ztunnel did not become ready within 10 s");
  }
  int out = tunnel_.stdoutPipe().get();
  reader_ = std::thread([this, out] {
    UniqueFd borrowed(out);
    for (;;) {
      auto line = readLine(borrowed, std::chrono::hours(24));
      if (!line) break;
      json event = json::parse(*line, nullptr, false);
      if (event.is_discarded()) continue;
      std::lock_guard lock(mutex_);
      events_.push_back(std::move(event));
    }
    borrowed.release();  // the ChildProcess owns the pipe
  });
  return {};
}

Result<std::string> MeshNode::httpGet(const std::string& address, const std::string& path) const {
  auto curl = cluster_.runOnNode(node_, {.argv = {"curl", "-s", "--max-time", "5", "http://" + address + path},
                                         .captureOutput = true});
  if (!curl) return fail(std::move(curl.error()));
  std::string body;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(curl->stdoutPipe().get(), buf, sizeof(buf))) > 0) body.append(buf, static_cast<size_t>(n));
  auto code = curl->wait(std::chrono::seconds(10));
  if (!code) return fail(std::move(code.error()));
  if (*code != 0) return fail("curl " + address + path + " exited with " + std::to_string(*code));
  return body;
}

Result<json> MeshNode::configDump() const {
  auto body = httpGet("127.0.0.1:15000", "/config_dump");
  if (!body) return fail(std::move(body.error()));
  json j = json::parse(*body, nullptr, false);
  if (j.is_discarded()) return fail("config_dump is not JSON: " + *body);
  return j;
}

Result<double> MeshNode::metricSum(const std::string& family, const std::map<std::string, std::string>& labels) const {
  auto text = httpGet("127.0.0.1:15020", "/metrics");
  if (!text) return fail(std::move(text.error()));
  double sum = 0;
  std::istringstream in(*text);
  // A sample is "family{labels} value", or "family value" without labels.
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(family, 0) != 0 || line.size() <= family.size()) continue;
    if (line[family.size()] != '{' && line[family.size()] != ' ') continue;
    bool all = true;
    for (const auto& [k, v] : labels) all = all && line.find(k + "=\"" + v + "\"") != std::string::npos;
    if (all) sum += std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
  }
  return sum;
}

Result<json> MeshNode::agentStatus() const {
  SLUICE_TRY_ASSIGN(out, sluicectl({"-o", "json", "status"}));
  if (out.exitCode != 0) return fail("sluicectl status exited with " + std::to_string(out.exitCode) + ": " + out.err);
  json status = json::parse(out.out, nullptr, false);
  if (!status.is_object()) return fail("sluicectl status printed no JSON object: " + out.out);
  return status;
}

Status MeshNode::upgradeTunnel(std::chrono::milliseconds exitWithin) {
  if (!tunnel_.running() || tunnelArgv_.empty()) return fail("no ztunnel runs on this node to upgrade");
  SLUICE_TRY_ASSIGN(before, agentStatus());
  uint64_t handovers = before.value("tunnelHandovers", uint64_t{0});
  auto started = cluster_.runOnNode(node_, {.argv = tunnelArgv_});
  if (!started) return fail(std::move(started.error()).context("start the new ztunnel"));
  ChildProcess fresh = std::move(*started);
  bool handedOver = false;
  for (int i = 0; i < 200 && !handedOver; ++i) {
    if (auto code = fresh.wait(std::chrono::milliseconds(50)); code) {
      return fail("the new ztunnel exited with " + std::to_string(*code) + " at start; the old one keeps serving");
    }
    auto status = agentStatus();
    handedOver = status && status->value("tunnelPid", 0) == fresh.pid() && status->value("tunnelReplayed", false) &&
                 status->value("tunnelHandovers", uint64_t{0}) > handovers;
  }
  if (!handedOver) {
    // As a DaemonSet whose surge pod never gets ready: the new one goes, the old one stays.
    (void)fresh.stop();
    return fail("the agent did not report the new ztunnel holding every pod and the old one handed over within 10 s; "
                "the new one was stopped, the old one keeps serving");
  }
  ChildProcess old = std::exchange(tunnel_, std::move(fresh));
  SLUICE_TRY(old.signal(SIGTERM), "stop the old ztunnel");
  auto code = old.wait(exitWithin);
  if (!code) {
    (void)old.stop(std::chrono::milliseconds(100));
    return fail("the old ztunnel did not exit within " + std::to_string(exitWithin.count()) + " ms of SIGTERM");
  }
  if (*code != 0) return fail("the old ztunnel exited with " + std::to_string(*code));
  return {};
}

Status MeshNode::killTunnel() {
  SLUICE_TRY(tunnel_.signal(SIGKILL), "kill tunnel");
  auto code = tunnel_.wait(std::chrono::seconds(10));
  if (reader_.joinable()) reader_.join();
  return discardValue(std::move(code));
}

Status MeshNode::stopTunnel() {
  if (!tunnel_.running()) {
    if (reader_.joinable()) reader_.join();
    return {};
  }
  auto code = tunnel_.stop(std::chrono::seconds(5));
  if (reader_.joinable()) reader_.join();
  return discardValue(std::move(code));
}

Result<RunOutput> MeshNode::sluicectl(std::vector<std::string> args) const {
  SpawnOptions options{.argv = {siblingProgram("sluicectl"), "--socket", agentSocket()}};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  // On the node, as an operator runs it there: the tunnel's loopback admin endpoint is the node's.
  options.netnsFd = cluster_.node(node_).netnsFd.get();
  return run(options, {}, std::chrono::seconds(30));
}

std::vector<json> MeshNode::events() const {
  std::lock_guard lock(mutex_);
  return events_;
}

size_t MeshNode::eventCount() const {
  std::lock_guard lock(mutex_);
  return events_.size();
}

std::optional<json> MeshNode::waitForEvent(const std::function<bool(const json&)>& match, size_t from,
                                               std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t checked = from;
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(mutex_);
      for (; checked < events_.size(); ++checked) {
        if (match(events_[checked])) return events_[checked];
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return std::nullopt;
}

}  // namespace sluice::sim
