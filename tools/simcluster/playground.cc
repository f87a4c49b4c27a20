#include "simcluster/playground.h"

#include <fcntl.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "simcluster/canary_config.h"
#include "simcluster/mesh_controller.h"
#include "simcluster/mesh_node.h"
#include "simcluster/mesh_run.h"
#include "simcluster/run_registry.h"
#include "sluice/common/process.h"

namespace sluice::sim {

namespace {

constexpr const char* kPlaygroundFile = "playground.json";

std::string runFolder(const SimPaths& paths, const std::string& prefix) { return paths.stateRoot + "/" + prefix; }

std::string playgroundFile(const SimPaths& paths, const std::string& prefix) {
  return runFolder(paths, prefix) + "/" + kPlaygroundFile;
}

// The live run's playground: `run` if given, else the newest live one that has a playground.
Result<nlohmann::json> findPlayground(const std::optional<std::string>& run) {
  SLUICE_TRY_ASSIGN(paths, detectSimPaths());
  std::vector<std::string> candidates = run ? std::vector<std::string>{*run} : listRuns(paths);
  std::optional<nlohmann::json> newest;
  for (const auto& prefix : candidates) {
    std::ifstream in(playgroundFile(paths, prefix));
    if (!in || !runIsLive(paths, prefix)) continue;
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_object()) continue;
    if (!newest || j.value("started", 0LL) > newest->value("started", 0LL)) newest = std::move(j);
  }
  if (!newest) {
    return fail(run ? fmt::format("run {} is not a live playground", *run)
                    : std::string("no playground is running (start one with: sluice-sim up --mesh)"));
  }
  return *newest;
}

}  // namespace

const nlohmann::json* playgroundPod(const nlohmann::json& playground, const std::string& name) {
  if (!playground.contains("pods")) return nullptr;
  for (const auto& p : playground["pods"]) {
    if (p.value("name", "") == name) return &p;
  }
  return nullptr;
}

int playgroundUp(int nodes, int podsPerNode) {
  auto run = startMeshRun(nodes);
  if (!run) {
    fmt::print(stderr, "sluice-sim up: {}\n", run.error().message());
    return 1;
  }
  Cluster& cluster = *run->cluster;
  MeshController* controller = &run->controller;
  std::vector<std::unique_ptr<MeshNode>>& mesh = run->nodes;
  nlohmann::json pods = nlohmann::json::array();
  for (int node = 0; node < nodes; ++node) {
    for (int i = 0; i < podsPerNode; ++i) {
      std::string name = fmt::format("app-{}-{}", node, i);
      auto pod = cluster.addPod(node, name, {.ns = "default", .labels = {{"app", name}}});
      if (!pod) {
        fmt::print(stderr, "sluice-sim up: {}\n", pod.error().message());
        return 1;
      }
      const Pod* p = cluster.pod(name);
      pods.push_back({{"name", name}, {"namespace", p->ns}, {"node", cluster.node(node).name}, {"ipv4", p->ipv4},
                      {"ipv6", p->ipv6}, {"netns", p->netnsPath}, {"cgroup", p->cgroupPath}});
    }
  }
  if (!writeConfigFile(controller->configDir(), "workloads.yaml", workloadsYaml(cluster)) ||
      !waitForPodCertificates(cluster, mesh)) {
    fmt::print(stderr, "sluice-sim up: the pods' certificates did not arrive\n");
    return 1;
  }
  nlohmann::json playground{{"prefix", cluster.prefix()},
                            {"configDir", controller->configDir()},
                            {"started", static_cast<long long>(std::chrono::system_clock::now().time_since_epoch().count())},
                            {"pods", pods}};
  // Written whole or not at all (exec and apply may read it at any time).
  if (auto written = writeConfigFile(runFolder(cluster.paths(), cluster.prefix()), kPlaygroundFile, playground.dump(2)); !written) {
    fmt::print(stderr, "sluice-sim up: {}\n", written.error().message());
    return 1;
  }
  printTopology(cluster);
  fmt::print("\nplayground {}: controller, agents and tunnels on {} node(s); pods enrolled with their Workloads\n",
             cluster.prefix(), nodes);
  fmt::print("  configuration: {} (any Istio or Sluice YAML; or: sluice-sim apply FILE)\n", controller->configDir());
  if (pods.size() >= 2) {
    const auto& a = pods[0];
    const auto& b = pods[pods.size() - 1];
    fmt::print("  try: sluice-sim exec {} -- sluice-tcpcheck serve --listen [::]:8080   (an echo server)\n", b["name"].get<std::string>());
    fmt::print("       sluice-sim exec {} -- sluice-tcpcheck send --to {}:8080 --bytes 1000000\n", a["name"].get<std::string>(),
               b["ipv4"].get<std::string>());
  }
  fmt::print("running; Ctrl-C or SIGTERM removes it\n");
  std::fflush(stdout);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  ::sigwait(&set, &sig);
  mesh.clear();
  (void)controller->stop();
  auto done = cluster.destroy();
  if (!done) {
    fmt::print(stderr, "sluice-sim up: cleanup: {}\n", done.error().message());
    return 1;
  }
  fmt::print("playground {} removed\n", cluster.prefix());
  return 0;
}

int playgroundExec(const std::optional<std::string>& run, const std::string& pod, const std::vector<std::string>& argv) {
  auto playground = findPlayground(run);
  if (!playground) {
    fmt::print(stderr, "sluice-sim exec: {}\n", playground.error().message());
    return 1;
  }
  const nlohmann::json* p = playgroundPod(*playground, pod);
  if (p == nullptr) {
    std::vector<std::string> names;
    for (const auto& q : (*playground)["pods"]) names.push_back(q.value("name", ""));
    fmt::print(stderr, "sluice-sim exec: no pod {} in playground {} (pods: {})\n", pod, playground->value("prefix", "?"),
               fmt::join(names, ", "));
    return 1;
  }
  UniqueFd netns(::open(p->value("netns", "").c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd procs(::open((p->value("cgroup", "") + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  if (!netns || !procs) {
    fmt::print(stderr, "sluice-sim exec: pod {}'s namespace or cgroup is gone\n", pod);
    return 1;
  }
  SpawnOptions options{.argv = argv, .netnsFd = netns.get(), .cgroupProcsFd = procs.get(), .dieWithParent = true};
  // The playground's own tools (sluice-tcpcheck) are found beside sluice-sim.
  if (!argv.empty() && argv[0].find('/') == std::string::npos) {
    std::string sibling = siblingProgram(argv[0]);
    if (std::filesystem::exists(sibling)) options.argv[0] = sibling;
  }
  auto child = spawn(options);
  if (!child) {
    fmt::print(stderr, "sluice-sim exec: {}\n", child.error().message());
    return 127;
  }
  auto code = child->wait(std::chrono::hours(24 * 365));
  return code ? *code : 1;
}

int playgroundApply(const std::optional<std::string>& run, const std::string& file) {
  auto playground = findPlayground(run);
  if (!playground) {
    fmt::print(stderr, "sluice-sim apply: {}\n", playground.error().message());
    return 1;
  }
  std::ifstream in(file);
  if (!in) {
    fmt::print(stderr, "sluice-sim apply: cannot read {}\n", file);
    return 1;
  }
  std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string name = std::filesystem::path(file).filename().string();
  std::string dir = playground->value("configDir", "");
  if (auto written = writeConfigFile(dir, name, yaml); !written) {
    fmt::print(stderr, "sluice-sim apply: {}\n", written.error().message());
    return 1;
  }
  fmt::print("{} applied to playground {} ({}/{}); the controller loads it within a second (a refused file is "
             "reported by `sluice-controller analyze {}`)\n",
             file, playground->value("prefix", "?"), dir, name, dir);
  return 0;
}

}  // namespace sluice::sim
