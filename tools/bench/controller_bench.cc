// sluice-controller-bench: how fast a one-line change reaches the nodes, and how many bytes it
// costs, with a large configuration.
//
//   sluice-controller-bench [--services 1000] [--workloads-per-service 10] [--changes 5]
//
// Writes the configuration to a temporary directory (one file per service: its workloads,
// Service, DestinationRule, VirtualService), starts the real sluice-controller on loopback and
// two in-process nodes running ztunnel's real ConfigClient (stream, snapshot building, ACK).
// Reports the initial sync, then for each change of one VirtualService weight: the time until
// both nodes have applied it, and the bytes the controller sent per node (from /debug/nodes).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "sluice/common/log.h"
#include "sluice/common/process.h"
#include "xds/config_client.h"

using namespace sluice;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string serviceFile(int s, int workloads, int weight) {
  std::string yaml;
  for (int w = 0; w < workloads; ++w) {
    yaml += fmt::format("apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {{name: svc{0}-w{1}, namespace: bench, "
                        "labels: {{app: svc{0}, version: v{2}}}}}\nspec: {{node: node{3}, addresses: [10.{4}.{5}.{6}]}}\n---\n",
                        s, w, w % 2 + 1, w % 2, 100 + s / 250, s % 250, w + 1);
  }
  yaml += fmt::format("apiVersion: v1\nkind: Service\nmetadata: {{name: svc{0}, namespace: bench}}\n"
                      "spec: {{clusterIP: 10.96.{1}.{2}, selector: {{app: svc{0}}}, ports: [{{port: 80, targetPort: 8080}}]}}\n---\n"
                      "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: svc{0}, namespace: bench}}\n"
                      "spec: {{host: svc{0}, subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]}}\n---\n"
                      "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc{0}, namespace: bench}}\n"
                      "spec: {{hosts: [svc{0}], tcp: [{{route: [{{destination: {{host: svc{0}, subset: v1}}, weight: {3}}}, "
                      "{{destination: {{host: svc{0}, subset: v2}}, weight: {4}}}]}}]}}\n",
                      s, s / 250, s % 250 + 1, weight, 100 - weight);
  return yaml;
}

uint64_t bytesSent(const std::string& statusAddress) {
  auto out = run({.argv = {"curl", "-s", "http://" + statusAddress + "/debug/nodes"}});
  if (!out) return 0;
  auto j = nlohmann::json::parse(out->out, nullptr, false);
  uint64_t total = 0;
  if (j.is_object()) {
    for (const auto& n : j["nodes"]) total += n.value("bytesSent", uint64_t{0});
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  initLogging("sluice-controller-bench");
  ::setenv("SLUICE_LOG", "warn", 0);
  spdlog::set_level(spdlog::level::warn);
  CLI::App app{"Controller propagation benchmark"};
  int services = 1000, perService = 10, changes = 5;
  app.add_option("--services", services)->capture_default_str();
  app.add_option("--workloads-per-service", perService)->capture_default_str();
  app.add_option("--changes", changes)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::string dir = fs::temp_directory_path().string() + "/sluice-controller-bench-" + std::to_string(::getpid());
  fs::create_directories(dir);
  for (int s = 0; s < services; ++s) std::ofstream(fmt::format("{}/svc{:04}.yaml", dir, s)) << serviceFile(s, perService, 90);
  const std::string listen = "127.0.0.1:25010", status = "127.0.0.1:25014";
  auto controller = spawn({.argv = {siblingProgram("sluice-controller"), "serve", "--config-dir", dir, "--listen", listen,
                                    "--status", status}});
  if (!controller) {
    fmt::print(stderr, "{}\n", controller.error().message());
    return 1;
  }
  auto start = Clock::now();
  ztunnel::SnapshotStore stores[2];
  std::atomic<bool> stopping{false};
  std::vector<std::unique_ptr<ztunnel::ConfigClient>> clients;
  std::vector<std::thread> threads;
  for (int n = 0; n < 2; ++n) {
    auto channel = grpc::CreateChannel(listen, grpc::InsecureChannelCredentials());
    clients.push_back(std::make_unique<ztunnel::ConfigClient>([channel] { return channel; }, fmt::format("node{}", n), stores[n]));
    threads.emplace_back([&, n] { clients[static_cast<size_t>(n)]->run(stopping); });
  }
  auto bothAt = [&](const std::string& version, std::chrono::seconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (stores[0].current()->controllerVersion == version && stores[1].current()->controllerVersion == version) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  };
  bool synced = bothAt("1", std::chrono::seconds(120));
  double initial = std::chrono::duration<double>(Clock::now() - start).count();
  uint64_t initialBytes = bytesSent(status);
  int objects = services * (perService + 3);
  fmt::print("configuration: {} services, {} workloads, {} objects in {} files\n", services, services * perService, objects,
             services);
  fmt::print("initial sync of 2 nodes: {} in {:.3f} s, {:.1f} MB sent ({:.0f} B per node per object)\n",
             synced ? "done" : "NOT DONE", initial, initialBytes / 1e6, double(initialBytes) / 2 / objects);
  int failures = synced ? 0 : 1;
  for (int c = 0; c < changes && synced; ++c) {
    int s = (c * 37) % services;
    uint64_t before = bytesSent(status);
    auto t0 = Clock::now();
    std::ofstream(fmt::format("{}/svc{:04}.yaml", dir, s)) << serviceFile(s, perService, 80 - c);
    bool ok = bothAt(std::to_string(c + 2), std::chrono::seconds(60));
    double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    uint64_t bytes = bytesSent(status) - before;
    fmt::print("change {}: one weight of svc{}: both nodes applied it in {:.3f} s; {} B sent per node\n", c + 1, s, seconds,
               bytes / 2);
    if (!ok) ++failures;
  }
  stopping = true;
  for (auto& t : threads) t.join();
  (void)controller->stop();
  fs::remove_all(dir);
  return failures == 0 ? 0 : 1;
}
