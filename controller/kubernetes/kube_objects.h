// Kubernetes API objects as the configuration loader reads them: only the fields the mesh
// uses, so the strict loader is not asked about the API server's own fields (status,
// managedFields, sessionAffinity, ...). Pure, table-tested.
//
//   Pod      -> Sluice Workload (name, namespace, uid, labels; spec.serviceAccount from
//               serviceAccountName, spec.node from nodeName, spec.addresses from status.podIPs).
//               Pods the mesh does not carry are left out: not yet given an IP, finished
//               (Succeeded/Failed), or on the host network (their address is the node's).
//   Service  -> Service (selector, clusterIP(s), ports, trafficDistribution); NodePort and
//               LoadBalancer are ClusterIP Services inside the mesh. Refused with a reason:
//               headless Services, named targetPorts (resolved per pod: not supported yet).
//   Istio and Sluice kinds -> apiVersion, kind, metadata (name, namespace, uid, labels,
//               annotations) and spec as they are.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>

#include "sluice/common/error.h"

namespace sluice::controller::kube {

// The loader's document for `object` (apiVersion and kind set), nullopt when the mesh leaves
// the object out, or an error naming why it cannot be taken.
Result<std::optional<nlohmann::json>> loaderDocument(const nlohmann::json& object);

}  // namespace sluice::controller::kube
