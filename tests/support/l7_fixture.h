// The start the L7 e2e tests share: a 2-node mesh; shop/client on node0; web-v1 and web-v2
// (app=web, version=v1|v2) on node1 (webNodes_ moves them), each running an interop app `script NAME 8080` that
// prints a line once it listens; the canary cluster (Service web, VIP sim::kCanaryVip, subsets
// v1/v2) with its port renamed so Istio's protocol selection makes it L7; a VirtualService;
// certificates for the three pods; and the routes applied on node0.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "simcluster/canary_config.h"
#include "support/mesh_fixture.h"
#include "support/tunnel_stats.h"

namespace sluice {

// A VirtualService for Service web with one http route for every request, to `destination`
// (a YAML flow mapping, e.g. "{host: web, subset: v2}").
inline std::string everyRequestTo(const std::string& destination) {
  return "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: shop}\n"
         "spec:\n  hosts: [web]\n  http:\n  - name: all\n    route: [{destination: " + destination + "}]\n";
}

class L7MeshTest : public ::testing::Test {
 protected:
  // Call from SetUp after SLUICE_REQUIRE_PRIVILEGES(); check HasFatalFailure() after it.
  // `portName` replaces the canary port's (unnamed) spec, e.g. "http" or "grpc";
  // `routesApplied` holds once node0 routes by `routesYaml`.
  // `trafficPolicy`: the DestinationRule's (YAML flow mapping), "" for none.
  void startL7Mesh(const std::string& appScript, const std::string& portName, const std::string& routesYaml,
                   const std::function<bool()>& routesApplied, const std::string& trafficPolicy = "") {
    auto mesh = startMesh({}, [this](const sim::Node& n) { return std::vector<std::string>{"--access-log", accessLogPath(n.name)}; });
    ASSERT_TRUE(mesh) << mesh.error().message();
    cluster_ = std::move(mesh->cluster);
    controller_ = std::move(mesh->controller);
    nodes_ = std::move(mesh->nodes);
    ASSERT_TRUE(cluster_->addPod(0, "client", {.ns = "shop", .labels = {{"app", "client"}}}));
    for (const char* version : {"v1", "v2"}) {
      std::string name = std::string("web-") + version;
      int node = webNodes_.contains(name) ? webNodes_[name] : 1;
      ASSERT_TRUE(cluster_->addPod(node, name, {.ns = "shop", .labels = {{"app", "web"}, {"version", version}}}));
      std::vector<std::string> argv = {"/usr/bin/python3", "-u", sourceFile(appScript), name, "8080"};
      argv.insert(argv.end(), appExtraArgs_[name].begin(), appExtraArgs_[name].end());
      auto app = cluster_->runInPod(name, {.argv = std::move(argv), .captureOutput = true});
      ASSERT_TRUE(app) << app.error().message();
      ASSERT_TRUE(readLine(app->stdoutPipe(), std::chrono::seconds(20))) << appScript << " in " << name;
      apps_.push_back(std::move(*app));
    }
    std::string clusterYaml = sim::canaryClusterYaml(*cluster_);
    std::string unnamed = "ports: [{port: 80, targetPort: 8080}]";
    ASSERT_NE(clusterYaml.find(unnamed), std::string::npos);
    clusterYaml.replace(clusterYaml.find(unnamed), unnamed.size(),
                        "ports: [{name: " + portName + ", port: 80, targetPort: 8080}]");
    if (!serviceSpec_.empty()) {
      std::string selector = "selector: {app: web}";
      ASSERT_NE(clusterYaml.find(selector), std::string::npos);
      clusterYaml.replace(clusterYaml.find(selector), selector.size(), serviceSpec_ + ", " + selector);
    }
    if (!trafficPolicy.empty()) {
      std::string rule = "spec: {host: web, subsets:";
      ASSERT_NE(clusterYaml.find(rule), std::string::npos);
      clusterYaml.replace(clusterYaml.find(rule), rule.size(), "spec: {host: web, trafficPolicy: " + trafficPolicy + ", subsets:");
    }
    ASSERT_TRUE(sim::writeConfigFile(controller_.configDir(), "cluster.yaml", clusterYaml));
    ASSERT_TRUE(sim::writeConfigFile(controller_.configDir(), "route.yaml", routesYaml));
    ASSERT_TRUE(sim::waitForPodCertificates(*cluster_, nodes_, {"client", "web-v1", "web-v2"}));
    ASSERT_TRUE(waitFor(routesApplied, std::chrono::seconds(20))) << "the routes never reached node0";
  }

  // `argv` run in shop/client's network namespace and cgroup (so the mesh captures it).
  RunOutput inClient(std::vector<std::string> argv, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    SpawnOptions options{.argv = std::move(argv), .captureOutput = true};
    options.netnsFd = cluster_->pod("client")->netnsFd.get();
    options.cgroupProcsFd = cluster_->pod("client")->cgroupProcsFd.get();
    auto out = run(options, {}, timeout);
    return out.value_or(RunOutput{});
  }

  // An interop client (python, from the repository) run in shop/client; its JSON summary
  // (an empty object when it failed, with the failure recorded).
  nlohmann::json clientJson(const std::string& script, std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/python3", sourceFile(script)};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOutput out = inClient(std::move(argv), std::chrono::seconds(240));
    EXPECT_EQ(out.exitCode, 0) << script << ": " << out.err;
    return nlohmann::json::parse(out.out.empty() ? "{}" : out.out, nullptr, false);
  }

  // Each node's ztunnel writes its access log here (removed after the test).
  static std::string accessLogPath(const std::string& node) {
    return ::testing::TempDir() + "sluice-access-" + std::to_string(::getpid()) + "-" + node + ".log";
  }
  void TearDown() override {
    // Nothing leaks: once the clients are gone, node0's tunnel holds no connection (every L7
    // handler, upstream and HBONE stream released).
    if (!nodes_.empty() && !HasFatalFailure()) {
      EXPECT_TRUE(waitForActive(*nodes_[0], 0)) << "node0 still holds " << activeConnections(*nodes_[0]) << " connections";
    }
    for (const char* node : {"node0", "node1"}) std::filesystem::remove(accessLogPath(node));
  }
  // The access log lines of `node` so far, parsed.
  std::vector<nlohmann::json> accessLog(const std::string& node) {
    std::vector<nlohmann::json> lines;
    std::ifstream in(accessLogPath(node));
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line, nullptr, false));
    return lines;
  }
  // The sum of node0's istio_requests_total samples carrying every label in `labels`.
  double requestsTotal(const std::map<std::string, std::string>& labels) {
    auto sum = nodes_[0]->metricSum("istio_requests_total", labels);
    EXPECT_TRUE(sum) << (sum ? "" : sum.error().message());
    return sum.value_or(-1);
  }

  std::unique_ptr<sim::Cluster> cluster_;
  sim::MeshController controller_;
  std::vector<std::unique_ptr<sim::MeshNode>> nodes_;
  std::vector<ChildProcess> apps_;  // web-v1's and web-v2's
  std::map<std::string, std::vector<std::string>> appExtraArgs_;  // by pod: set before startL7Mesh
  std::map<std::string, int> webNodes_;  // a web pod's node when not node1: set before startL7Mesh
  std::string serviceSpec_;  // more fields of Service web's spec ("trafficDistribution: PreferClose")
};

}  // namespace sluice
