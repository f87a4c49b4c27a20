// sluice-controller: Sluice's control plane.
//
//   sluice-controller serve --config-dir DIR [--listen 0.0.0.0:15010] [--status 127.0.0.1:15014]
//       watch DIR (every 300 ms) and push every accepted change to the nodes over the gRPC
//       discovery stream; a refused change keeps the last good configuration in force.
//       GET /debug/nodes on --status: per node what was sent, acknowledged or refused.
//   sluice-controller analyze DIR [--strict]   lint a configuration directory; exit 1 when a
//                                             file is refused or an error is found (with
//                                             --strict, also on warnings)
// Certificates (the CA) come with the identity issue.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <thread>

#include "analyze/analyzer.h"
#include "config/config_loader.h"
#include "discovery/discovery_server.h"
#include "sluice/common/http_server.h"
#include "sluice/common/log.h"

namespace {

int serve(const std::string& dir, const std::string& listen, const std::string& statusAddress) {
  using namespace sluice::controller;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ConfigStore store;
  store.refresh(dir);
  if (!store.lastError().empty()) {
    spdlog::error("the first load of {} was refused; serving an empty configuration until it is fixed", dir);
  }
  DiscoveryServer discovery(store);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&discovery);
  auto server = builder.BuildAndStart();
  if (!server || port == 0) {
    spdlog::error("cannot listen on {}", listen);
    return 1;
  }
  sluice::HttpServer http;
  auto status = http.listen(statusAddress, {{"/debug/nodes", [&] {
                                               nlohmann::json j{{"lastError", store.lastError()}, {"nodes", nlohmann::json::array()}};
                                               uint64_t generation = 0;
                                               store.current(&generation);
                                               j["generation"] = generation;
                                               for (const auto& n : discovery.nodes()) {
                                                 j["nodes"].push_back({{"node", n.node}, {"connected", n.connected},
                                                                       {"sentGeneration", n.sentGeneration},
                                                                       {"ackedGeneration", n.ackedGeneration},
                                                                       {"responses", n.responses}, {"acks", n.acks},
                                                                       {"nacks", n.nacks}, {"bytesSent", n.bytesSent},
                                                                       {"lastNack", n.lastNack}});
                                               }
                                               return sluice::HttpResponse{200, "application/json", j.dump(2)};
                                             }}});
  if (!status) {
    spdlog::error("status endpoint: {}", status.error().message());
    return 1;
  }
  http.start();
  spdlog::info("serving {} on {} (status on {})", dir, listen, statusAddress);
  std::atomic<bool> stopping{false};
  std::thread watcher([&] {
    while (!stopping) {
      store.refresh(dir);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  });
  int sig = 0;
  sigwait(&signals, &sig);
  stopping = true;
  watcher.join();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  http.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sluice::initLogging("sluice-controller");
  CLI::App app{"Sluice controller"};
  app.require_subcommand(1);
  std::string configDir, listen = "0.0.0.0:15010", statusAddress = "127.0.0.1:15014";
  auto* serveCmd = app.add_subcommand("serve", "push the configuration directory to every node");
  serveCmd->add_option("--config-dir", configDir, "directory of YAML files")->required();
  serveCmd->add_option("--listen", listen, "gRPC discovery address")->capture_default_str();
  serveCmd->add_option("--status", statusAddress, "HTTP status address (keep it on loopback)")->capture_default_str();
  std::string dir;
  bool strict = false;
  auto* analyzeCmd = app.add_subcommand("analyze", "find problems in a configuration directory");
  analyzeCmd->add_option("dir", dir, "directory of YAML files")->required();
  analyzeCmd->add_flag("--strict", strict, "fail on warnings too");
  CLI11_PARSE(app, argc, argv);
  if (serveCmd->parsed()) return serve(configDir, listen, statusAddress);

  auto config = sluice::controller::loadConfigDirectory(dir);
  if (!config) {
    fmt::print("ERROR [refused] {}\n", config.error().message());
    return 1;
  }
  auto findings = sluice::controller::analyze(*config);
  int errors = 0, warnings = 0;
  for (const auto& f : findings) {
    fmt::print("{}\n", f.format());
    (f.severity == sluice::controller::Finding::Severity::kError ? errors : warnings)++;
  }
  fmt::print(stderr, "{} objects, {} errors, {} warnings\n", config->resources.size(), errors, warnings);
  return errors > 0 || (strict && warnings > 0) ? 1 : 0;
}
