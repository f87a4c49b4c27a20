// What the operator endpoints show: /config_dump (JSON) and /metrics (Prometheus text, with
// Istio's metric names and labels so existing dashboards work).
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "proxy/worker.h"
#include "identity/certificate_manager.h"
#include "identity/controller_link.h"
#include "proxy/config_snapshot.h"
#include "proxy/pod_runtime.h"

namespace sluice::ztunnel {

// What /config_dump shows of identities and HBONE.
struct IdentityView {
  std::optional<NodeCredentialStatus> nodeCredential;  // none: no node credential (plaintext)
  std::vector<CertificateStatus> certificates;
  std::vector<PoolInfo> hboneConnections;
};

nlohmann::json configDump(const std::vector<std::shared_ptr<PodRuntime>>& pods, const ConfigSnapshot& config,
                          const std::vector<ConnectionInfo>& connections, const std::string& features,
                          const IdentityView& identity = {}, const NodeTrafficState* traffic = nullptr);

std::string prometheusText(const std::vector<std::shared_ptr<PodRuntime>>& pods, const IdentityView& identity = {},
                           const NodeTrafficState* traffic = nullptr);

}  // namespace sluice::ztunnel
