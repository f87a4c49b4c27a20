#include "daemon/pod_metadata.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "sluice/common/k8s_names.h"
#include "sluice/kube/watch_protocol.h"

namespace sluice::agent {

using nlohmann::json;

namespace {

Result<std::map<std::string, std::string>> stringMap(const json& object, const char* field, std::string_view where) {
  std::map<std::string, std::string> out;
  auto it = object.find(field);
  if (it == object.end() || it->is_null()) return out;
  if (!it->is_object()) return fail(fmt::format("{}: {} is not an object", where, field));
  for (const auto& [key, value] : it->items()) {
    if (!value.is_string()) return fail(fmt::format("{}: {}.{} is not a string", where, field, key));
    out[key] = value.get<std::string>();
  }
  return out;
}

// `holder`'s "labels" and "annotations" (string maps; absent: empty) into `out`.
Status readLabelsAndAnnotations(const json& holder, std::string_view where, PodMetadata& out) {
  auto labels = stringMap(holder, "labels", where);
  if (!labels) return fail(std::move(labels.error()));
  auto annotations = stringMap(holder, "annotations", where);
  if (!annotations) return fail(std::move(annotations.error()));
  out.labels = std::move(*labels);
  out.annotations = std::move(*annotations);
  return {};
}

}  // namespace

Result<PodMetadata> podMetadataFromApi(const json& pod, std::string_view node, std::string_view expectedUid) {
  if (!pod.is_object() || !pod.contains("metadata") || !pod["metadata"].is_object()) {
    return fail("the API's answer is not a Pod (no metadata)");
  }
  const json& meta = pod["metadata"];
  std::string where = fmt::format("pod {}/{}", kube::nestedString(pod, "metadata", "namespace"), kube::nestedString(pod, "metadata", "name"));
  std::string podNode = kube::nestedString(pod, "spec", "nodeName");
  if (podNode != node) {
    return fail(fmt::format("{} is scheduled on node '{}', not on this node '{}'", where, podNode, node));
  }
  std::string uid = kube::nestedString(pod, "metadata", "uid");
  if (!expectedUid.empty() && uid != expectedUid) {
    return fail(fmt::format("{} has uid {}, the CNI call named {}: the pod was replaced", where, uid, expectedUid));
  }
  PodMetadata out;
  std::string account = kube::nestedString(pod, "spec", "serviceAccountName");
  if (!account.empty()) out.serviceAccount = account;
  SLUICE_TRY(readLabelsAndAnnotations(meta, where, out), "pod metadata");
  return out;
}

PodMetadataLookup kubernetesPodMetadata(const kube::KubeApiClient& client, std::string node) {
  return [&client, node = std::move(node)](const std::string& ns, const std::string& name,
                                            const std::string& uid) -> Result<PodMetadata> {
    if (!isDnsLabel(ns) || !isDnsSubdomain(name)) {
      return fail(fmt::format("'{}/{}' is not a Kubernetes pod name", ns, name));
    }
    auto answer = client.get(fmt::format("/api/v1/namespaces/{}/pods/{}", ns, name), std::chrono::seconds(10));
    if (!answer) return fail(std::move(answer.error()));
    if (answer->status == 404) return fail(fmt::format("pod {}/{} is not in the Kubernetes API", ns, name));
    if (answer->status != 200) {
      return fail(fmt::format("GET pod {}/{}: HTTP {}: {}", ns, name, answer->status, answer->body.substr(0, 300)));
    }
    json pod = json::parse(answer->body, nullptr, false);
    if (pod.is_discarded()) return fail(fmt::format("GET pod {}/{}: the answer is not JSON", ns, name));
    return podMetadataFromApi(pod, node, uid);
  };
}

PodMetadataLookup registryPodMetadata(std::string dir) {
  return [dir = std::move(dir)](const std::string& ns, const std::string& name, const std::string&) -> Result<PodMetadata> {
    PodMetadata out;
    if (dir.empty()) return out;
    std::string path = fmt::format("{}/{}_{}.json", dir, ns, name);
    std::ifstream in(path);
    if (!in) return out;
    std::stringstream text;
    text << in.rdbuf();
    json j = json::parse(text.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail(path + ": not a JSON object");
    if (j.contains("serviceAccount")) {
      if (!j["serviceAccount"].is_string()) return fail(path + ": serviceAccount is not a string");
      out.serviceAccount = j["serviceAccount"].get<std::string>();
    }
    SLUICE_TRY(readLabelsAndAnnotations(j, path, out), "pod registry");
    return out;
  };
}

}  // namespace sluice::agent
