// The simulated cluster's sluice-controller: runs on node0, serves plaintext discovery on
// :15010 and, with its CA (root kept in node0's state folder), discovery and workload
// certificates over mTLS on :15012. Issues each node's credential with
// `sluice-controller node-credential`, as an operator would when a node joins.
#pragma once

#include <string>
#include <vector>

#include "simcluster/cluster.h"
#include "simcluster/mesh_node.h"
#include "sluice/common/process.h"

namespace sluice::sim {

// Every pod of the cluster as a Workload resource (name, namespace, service account, labels,
// node, addresses): what the controller needs to place identities and route to pods.
// `only`: the names of the pods to include (empty: all).
std::string workloadsYaml(const Cluster& cluster, const std::vector<std::string>& only = {});

// Waits until the tunnel on each listed pod's node (all pods when `pods` is empty) holds a
// valid certificate for that pod's identity (trust domain cluster.local).
bool waitForPodCertificates(const Cluster& cluster, const std::vector<std::unique_ptr<MeshNode>>& mesh,
                            const std::vector<std::string>& pods = {},
                            std::chrono::milliseconds timeout = std::chrono::seconds(30));

struct MeshControllerOptions {
  bool certificateAuthority = true;
  int certificateValiditySeconds = 0;  // 0: the controller's default (24 h)
  // Node credentials' lifetime, the first one and every renewal (0: the controller's, 24 h).
  int nodeCredentialValiditySeconds = 0;
};

class MeshController {
 public:
  static Result<MeshController> start(const Cluster& cluster, MeshControllerOptions options = {});
  MeshController() = default;

  const std::string& configDir() const { return configDir_; }
  std::string plaintextAddress() const { return underlay_ + ":15010"; }
  std::string secureAddress() const { return underlay_ + ":15012"; }
  // ztunnel arguments for `node`: mTLS with a fresh node credential when the CA is on,
  // plaintext discovery otherwise.
  Result<std::vector<std::string>> tunnelArgs(const Node& node) const;
  // `sluice-controller node-credential` for `node` into `out`.
  Status issueNodeCredential(const std::string& node, const std::string& out) const;
  // `sluice-controller certificate` for `spiffeId` into `out` (key.pem, cert.pem, root-cert.pem),
  // from this controller's CA or, with `caDir`, another one (created when absent).
  Status issueCertificate(const std::string& spiffeId, const std::string& out, const std::string& caDir = "") const;
  std::string caDir() const { return caDir_; }
  // `sluice-controller revoke-node` for `node` (the running controller reads it within a second).
  Status revokeNode(const std::string& node) const;
  ChildProcess& process() { return process_; }
  Status stop() { return discardValue(process_.stop()); }

 private:
  const Cluster* cluster_ = nullptr;
  MeshControllerOptions options_;
  std::string configDir_, caDir_, underlay_;
  ChildProcess process_;
};

}  // namespace sluice::sim
