// sluice-agent: the node agent (one per node; a DaemonSet in a cluster).
//
//   sluice-agent --node node0 --cgroup /sys/fs/cgroup/... --bpffs /sys/fs/bpf/sluice
//                --state-dir /run/sluice/agent --socket /run/sluice/agent.sock
//                --zds-socket /run/sluice/zds.sock [--pod-registry DIR] [--tunnel-mark 0x539]
//
// Loads (or adopts) the capture programs, serves sluice-cni and sluicectl on --socket, and
// waits for the tunnel on --zds-socket. SIGTERM/SIGINT stop it; capture stays in force through
// the pins, so stopping or upgrading the agent never interrupts traffic.
#include <signal.h>
#include <sys/socket.h>
#include <poll.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <list>
#include <cstring>
#include <mutex>
#include <thread>

#include "daemon/agent.h"
#include "daemon/control_server.h"
#include "daemon/agent_requirements.h"
#include "daemon/pod_metadata.h"
#include "sluice/common/log.h"
#include "sluice/common/mounts.h"
#include "sluice/common/process.h"
#include "sluice/common/unix_socket.h"
#include "sluice/kube/api_server_flags.h"

using namespace sluice;
using namespace sluice::agent;

namespace {

// Threads serving connections; joined at shutdown so none outlives the Agent.
class Workers {
 public:
  template <typename F>
  void run(F fn) {
    reap();
    auto done = std::make_shared<std::atomic<bool>>(false);
    threads_.push_back({std::thread([fn = std::move(fn), done]() mutable {
                          fn();
                          *done = true;
                        }),
                        done});
  }
  void joinAll() {
    for (auto& w : threads_) w.thread.join();
    threads_.clear();
  }

 private:
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  void reap() {
    for (auto it = threads_.begin(); it != threads_.end();) {
      if (*it->done) {
        it->thread.join();
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::list<Worker> threads_;
};

}  // namespace

int main(int argc, char** argv) {
  initLogging("sluice-agent");
  CLI::App app{"Sluice node agent: eBPF capture and pod enrollment"};
  AgentOptions options;
  options.capture.tunnelMark = SLUICE_TUNNEL_MARK_DEFAULT;
  options.capture.deliveryMark = SLUICE_DELIVERY_MARK_DEFAULT;
  std::string socketPath = "/run/sluice/agent.sock", zdsPath = "/run/sluice/zds.sock";
  int tunnelWaitMs = 10000;
  app.add_option("--node", options.node, "this node's name")->required();
  app.add_option("--cgroup", options.capture.cgroupPath, "cgroup v2 folder to capture (default: the cgroup2 root)");
  app.add_option("--bpffs", options.capture.pinDir, "bpffs folder for pins (default: <bpffs>/sluice)");
  app.add_option("--state-dir", options.stateDir, "folder for the agent's state")->default_val("/run/sluice/agent");
  app.add_option("--socket", socketPath, "control socket for sluice-cni and sluicectl")->capture_default_str();
  app.add_option("--zds-socket", zdsPath, "socket the tunnel connects to")->capture_default_str();
  auto* registryOption = app.add_option("--pod-registry", options.podRegistry, "folder of pod metadata (simulated API server)");
  kube::ApiServerFlags api;
  kube::addApiServerFlags(app, api, "pods' metadata");
  registryOption->excludes(api.inClusterOption)->excludes(api.apiOption);
  app.add_option("--tunnel-mark", options.capture.tunnelMark, "SO_MARK of the tunnel's sockets")->capture_default_str();
  app.add_option("--delivery-mark", options.capture.deliveryMark,
                 "SO_MARK of the tunnel's inbound delivery sockets (the pods' replies to them are routed back by it)")
      ->capture_default_str();
  app.add_option("--tunnel-wait-ms", tunnelWaitMs, "how long an ADD waits for the tunnel")->capture_default_str();
  // A callback that ends parsing (as --help does), so it needs none of the required options.
  app.add_flag_callback(
      "--print-requirements", [] { printRequirements(agentRequirements()); throw CLI::Success(); },
      "print the capabilities and host folders this program needs (JSON) and exit");
  CLI11_PARSE(app, argc, argv);
  if (!startupCapabilitiesOk(agentRequirements())) return 1;
  std::unique_ptr<kube::KubeApiClient> kubeClient;  // outlives the agent that looks pods up with it
  auto server = kube::chosenApiServer(api.inCluster, api.server, environmentVariables());
  if (!server) {
    spdlog::error("{}", server.error().message());
    return 1;
  }
  if (*server) {
    kubeClient = std::make_unique<kube::KubeApiClient>(**server);
    options.podMetadata = kubernetesPodMetadata(*kubeClient, options.node);
  }
  options.tunnelWait = std::chrono::milliseconds(tunnelWaitMs);

  if (options.capture.cgroupPath.empty()) {
    auto root = cgroup2Root();
    if (!root) {
      spdlog::error("{}", root.error().message());
      return 1;
    }
    options.capture.cgroupPath = *root;
  }
  if (options.capture.pinDir.empty()) {
    auto bpffs = ensureBpffs();
    if (!bpffs) {
      spdlog::error("{}", bpffs.error().message());
      return 1;
    }
    options.capture.pinDir = *bpffs + "/sluice";
  }

  UniqueFd signalFd = stopSignalFd();

  auto agent = Agent::start(options);
  if (!agent) {
    spdlog::error("cannot start: {}", agent.error().message());
    return 1;
  }
  auto control = listenUnix(socketPath, SOCK_STREAM);
  auto zds = listenUnix(zdsPath, SOCK_SEQPACKET);
  if (!control || !zds) {
    spdlog::error("cannot listen: {}", (!control ? control.error() : zds.error()).message());
    return 1;
  }
  spdlog::info("agent for {} ready: control {}, tunnel {}", options.node, socketPath, zdsPath);

  std::atomic<bool> stopping{false};
  Workers workers;
  std::vector<int> openConnections;  // shut down at exit to wake their threads
  std::mutex connectionsMutex;
  auto nextCollection = std::chrono::steady_clock::now();
  for (;;) {
    if (std::chrono::steady_clock::now() >= nextCollection) {
      (*agent)->collectClosedPods();
      nextCollection = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    }
    pollfd fds[3] = {{control->get(), POLLIN, 0}, {zds->get(), POLLIN, 0}, {signalFd.get(), POLLIN, 0}};
    if (::poll(fds, 3, 1000) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("poll: {}", std::strerror(errno));
      break;
    }
    if (fds[2].revents) break;
    if (fds[0].revents) {
      int conn = ::accept4(control->get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (conn >= 0) {
        {
          std::lock_guard lock(connectionsMutex);
          openConnections.push_back(conn);
        }
        workers.run([&, conn] {
          serveControlConnection(**agent, conn, stopping);
          std::lock_guard lock(connectionsMutex);
          std::erase(openConnections, conn);
          ::close(conn);
        });
      }
    }
    if (fds[1].revents) {
      int conn = ::accept4(zds->get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (conn >= 0) {
        workers.run([&, conn] {
          auto replayed = (*agent)->tunnelConnected(UniqueFd(conn));
          if (!replayed) spdlog::error("tunnel replay failed: {}", replayed.error().message());
        });
      }
    }
  }
  spdlog::info("stopping; capture stays in force through the pins");
  stopping = true;
  {
    std::lock_guard lock(connectionsMutex);
    for (int fd : openConnections) ::shutdown(fd, SHUT_RDWR);
  }
  workers.joinAll();
  return 0;
}
