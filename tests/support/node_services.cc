#include "support/node_services.h"

#include <signal.h>
#include <sys/socket.h>

#include "sluice/common/unix_socket.h"
#include "sluice_capture.h"

namespace sluice::testing {
using nlohmann::json;

json sluiceCniPlugin(const sim::Node& node) {
  return json{{"type", "sluice-cni"}, {"agentSocket", node.stateDir + "/agent.sock"}, {"timeoutSeconds", 20}};
}

std::string cniPluginPathWithSluice() {
  std::string cni = siblingProgram("sluice-cni");
  return "/usr/lib/cni:" + cni.substr(0, cni.rfind('/'));
}

NodeServices::NodeServices(const sim::Cluster& cluster, int node) : cluster_(cluster), node_(node) {}

NodeServices::~NodeServices() {
  (void)stopTunnel();
  (void)stopAgent();
}

std::string NodeServices::agentSocket() const { return cluster_.node(node_).stateDir + "/agent.sock"; }
std::string NodeServices::zdsSocket() const { return cluster_.node(node_).stateDir + "/zds.sock"; }

Status NodeServices::startAgent() {
  const sim::Node& n = cluster_.node(node_);
  auto agent = cluster_.runOnNode(node_, {.argv = {siblingProgram("sluice-agent"), "--node", n.name, "--cgroup",
                                                   n.cgroupPath, "--bpffs", n.bpffsDir, "--state-dir",
                                                   n.stateDir + "/agent", "--socket", agentSocket(), "--zds-socket",
                                                   zdsSocket(), "--pod-registry", cluster_.registryDir(),
                                                   "--tunnel-wait-ms", "3000"}});
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

Status NodeServices::stopAgent() {
  if (!agent_.running()) return {};
  auto code = agent_.stop(std::chrono::seconds(10));
  if (!code) return fail(std::move(code.error()));
  if (*code != 0) return fail("sluice-agent exited with " + std::to_string(*code) + " on SIGTERM");
  return {};
}

Status NodeServices::killAgent() {
  SLUICE_TRY(agent_.signal(SIGKILL), "kill agent");
  return discardValue(agent_.wait(std::chrono::seconds(10)));
}

Status NodeServices::startTunnel() {
  SLUICE_TRY(stopTunnel(), "previous tunnel");
  auto tunnel = cluster_.runOnNode(node_, {.argv = {siblingProgram("sluice-test-ztunnel"), "--zds-socket", zdsSocket(),
                                                    "--pin-dir", cluster_.node(node_).bpffsDir},
                                           .captureOutput = true});
  if (!tunnel) return fail(std::move(tunnel.error()));
  tunnel_ = std::move(*tunnel);
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

Status NodeServices::stopTunnel() {
  if (!tunnel_.running()) {
    if (reader_.joinable()) reader_.join();
    return {};
  }
  auto code = tunnel_.stop(std::chrono::seconds(5));
  if (reader_.joinable()) reader_.join();
  return discardValue(std::move(code));
}

Result<RunOutput> NodeServices::sluicectl(std::vector<std::string> args) const {
  SpawnOptions options{.argv = {siblingProgram("sluicectl"), "--socket", agentSocket()}};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  return run(options, {}, std::chrono::seconds(30));
}

std::vector<json> NodeServices::events() const {
  std::lock_guard lock(mutex_);
  return events_;
}

size_t NodeServices::eventCount() const {
  std::lock_guard lock(mutex_);
  return events_.size();
}

std::optional<json> NodeServices::waitForEvent(const std::function<bool(const json&)>& match, size_t from,
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

}  // namespace sluice::testing
