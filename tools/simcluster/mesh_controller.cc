#include "simcluster/mesh_controller.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "sluice/common/pki.h"

namespace sluice::sim {

std::string workloadsYaml(const Cluster& cluster, const std::vector<std::string>& only) {
  std::string yaml;
  for (const Pod* pod : cluster.pods()) {
    if (!only.empty() && std::find(only.begin(), only.end(), pod->name) == only.end()) continue;
    std::string labels;
    for (const auto& [k, v] : pod->labels) labels += fmt::format("{}{}: {}", labels.empty() ? "" : ", ", k, v);
    std::string addresses = pod->ipv4;
    if (!pod->ipv6.empty()) addresses += ", " + pod->ipv6;
    // Each simulated node is a zone of its own (region "sim"): locality-aware load balancing
    // tells same-node endpoints from the others by zone as in a real cluster.
    yaml += fmt::format("apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {{name: {}, namespace: {}, labels: {{{}}}}}\n"
                        "spec: {{serviceAccount: {}, node: {}, addresses: [{}], locality: {{region: sim, zone: zone-{}}}}}\n---\n",
                        pod->name, pod->ns, labels, pod->serviceAccount, cluster.node(pod->node).name, addresses,
                        cluster.node(pod->node).name);
  }
  return yaml;
}

bool waitForPodCertificates(const Cluster& cluster, const std::vector<std::unique_ptr<MeshNode>>& mesh,
                            const std::vector<std::string>& pods, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    bool all = true;
    for (const Pod* pod : cluster.pods()) {
      if (!pods.empty() && std::find(pods.begin(), pods.end(), pod->name) == pods.end()) continue;
      auto dump = mesh[static_cast<size_t>(pod->node)]->configDump();
      std::string identity = pki::spiffeIdFor("cluster.local", pod->ns, pod->serviceAccount);
      bool found = false;
      for (const auto& c : dump ? (*dump)["certificates"] : nlohmann::json::array()) {
        found = found || (c["identity"] == identity && c["state"] == "valid");
      }
      all = all && found;
    }
    if (all) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

Result<MeshController> MeshController::start(const Cluster& cluster, MeshControllerOptions options) {
  MeshController c;
  c.cluster_ = &cluster;
  c.options_ = options;
  c.configDir_ = cluster.node(0).stateDir + "/config";
  c.caDir_ = cluster.node(0).stateDir + "/ca";
  c.underlay_ = cluster.node(0).addresses.underlayV4;
  std::error_code ec;
  std::filesystem::create_directories(c.configDir_, ec);
  if (ec) return fail(fmt::format("create {}: {}", c.configDir_, ec.message()));
  std::vector<std::string> argv = {siblingProgram("sluice-controller"), "serve", "--config-dir", c.configDir_};
  // With the CA, nodes use the mTLS port and plaintext discovery stays off (the controller
  // refuses to serve it beyond loopback).
  if (!options.certificateAuthority) argv.insert(argv.end(), {"--listen", c.plaintextAddress()});
  if (options.certificateAuthority) {
    // Node credentials first: this also creates the CA root the controller then serves with.
    for (const auto& node : cluster.nodes()) {
      SLUICE_TRY(c.issueNodeCredential(node->name, node->stateDir + "/credential"), "node credential for " + node->name);
    }
    argv.insert(argv.end(), {"--ca-dir", c.caDir_, "--secure-listen", c.secureAddress()});
    if (options.certificateValiditySeconds > 0) {
      argv.insert(argv.end(), {"--certificate-validity-s", std::to_string(options.certificateValiditySeconds)});
    }
    if (options.nodeCredentialValiditySeconds > 0) {
      argv.insert(argv.end(), {"--node-credential-validity-s", std::to_string(options.nodeCredentialValiditySeconds)});
    }
  }
  SLUICE_TRY_ASSIGN(process, cluster.runOnNode(0, {.argv = argv}));
  c.process_ = std::move(process);
  return c;
}

Status MeshController::issueNodeCredential(const std::string& node, const std::string& out) const {
  std::vector<std::string> argv = {siblingProgram("sluice-controller"), "node-credential", "--ca-dir", caDir_, "--node", node,
                                   "--out", out};
  if (options_.nodeCredentialValiditySeconds > 0) {
    argv.insert(argv.end(), {"--validity-s", std::to_string(options_.nodeCredentialValiditySeconds)});
  }
  return discardValue(runChecked({.argv = argv}));
}

Status MeshController::revokeNode(const std::string& node) const {
  return discardValue(runChecked({.argv = {siblingProgram("sluice-controller"), "revoke-node", "--ca-dir", caDir_, "--node", node}}));
}

Status MeshController::issueCertificate(const std::string& spiffeId, const std::string& out,
                                        const std::string& caDir) const {
  return discardValue(runChecked({.argv = {siblingProgram("sluice-controller"), "certificate", "--ca-dir",
                                           caDir.empty() ? caDir_ : caDir, "--spiffe-id", spiffeId, "--out", out}}));
}

Result<std::vector<std::string>> MeshController::tunnelArgs(const Node& node) const {
  if (!options_.certificateAuthority) return std::vector<std::string>{"--controller", plaintextAddress(), "--node", node.name};
  return std::vector<std::string>{"--controller", secureAddress(), "--node", node.name, "--credential-dir",
                                  node.stateDir + "/credential"};
}

}  // namespace sluice::sim
