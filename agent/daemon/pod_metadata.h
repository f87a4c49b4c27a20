// A pod's service account, labels and annotations at enrollment: from the Kubernetes API (GET
// the pod by the namespace and name the CNI call names), or, in the simulated cluster, from the
// registry folder. They decide capture (opt-out annotations), the pod's identity (service
// account) and its policy labels sent to the tunnel, so a failure is a refusal: the runtime
// retries the CNI ADD (fail closed).
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "sluice/common/error.h"
#include "sluice/kube/kube_api_client.h"

namespace sluice::agent {

struct PodMetadata {
  std::string serviceAccount = "default";
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

// The API's Pod object into metadata. Refuses, naming the mismatch, a pod scheduled on another
// node than `node` and, when `expectedUid` is given, another pod of the same name (deleted and
// created again between the CNI call and the lookup).
Result<PodMetadata> podMetadataFromApi(const nlohmann::json& pod, std::string_view node, std::string_view expectedUid);

// Looks a pod up: (namespace, name, uid) -> metadata.
using PodMetadataLookup = std::function<Result<PodMetadata>(const std::string& ns, const std::string& name,
                                                            const std::string& uid)>;

// GET /api/v1/namespaces/<ns>/pods/<name> on `client` (kept alive by the caller); names are
// checked as Kubernetes names first (they come from CNI input).
PodMetadataLookup kubernetesPodMetadata(const kube::KubeApiClient& client, std::string node);

// "<dir>/<namespace>_<name>.json" ({"serviceAccount", "labels", "annotations"}); no file: defaults.
PodMetadataLookup registryPodMetadata(std::string dir);

}  // namespace sluice::agent
