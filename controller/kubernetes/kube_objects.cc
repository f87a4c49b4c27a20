#include "kubernetes/kube_objects.h"

#include <fmt/format.h>

namespace sluice::controller::kube {

using nlohmann::json;

namespace {

const json* field(const json& object, std::initializer_list<const char*> path) {
  const json* at = &object;
  for (const char* key : path) {
    if (!at->is_object()) return nullptr;
    auto it = at->find(key);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

std::string stringField(const json& object, std::initializer_list<const char*> path) {
  const json* f = field(object, path);
  return f != nullptr && f->is_string() ? f->get<std::string>() : std::string();
}

json loaderMetadata(const json& object) {
  json meta = json::object();
  for (const char* key : {"name", "namespace", "uid"}) {
    if (const json* f = field(object, {"metadata", key}); f != nullptr) meta[key] = *f;
  }
  for (const char* key : {"labels", "annotations"}) {
    if (const json* f = field(object, {"metadata", key}); f != nullptr && !f->is_null()) meta[key] = *f;
  }
  return meta;
}

Result<std::optional<json>> workloadOfPod(const json& pod) {
  std::string phase = stringField(pod, {"status", "phase"});
  if (phase == "Succeeded" || phase == "Failed") return std::optional<json>();
  if (const json* host = field(pod, {"spec", "hostNetwork"}); host != nullptr && host->is_boolean() && host->get<bool>()) {
    return std::optional<json>();
  }
  json addresses = json::array();
  if (const json* ips = field(pod, {"status", "podIPs"}); ips != nullptr && ips->is_array()) {
    for (const auto& ip : *ips) {
      if (ip.is_object() && ip.contains("ip") && ip["ip"].is_string()) addresses.push_back(ip["ip"]);
    }
  }
  if (addresses.empty()) {
    std::string ip = stringField(pod, {"status", "podIP"});
    if (ip.empty()) return std::optional<json>();  // not scheduled or not networked yet
    addresses.push_back(ip);
  }
  json spec = {{"addresses", addresses}};
  std::string account = stringField(pod, {"spec", "serviceAccountName"});
  if (!account.empty()) spec["serviceAccount"] = account;
  std::string node = stringField(pod, {"spec", "nodeName"});
  if (node.empty()) return fail("a pod with an address has no spec.nodeName");
  spec["node"] = node;
  return std::optional<json>(json{{"apiVersion", "sluice.io/v1alpha1"}, {"kind", "Workload"}, {"metadata", loaderMetadata(pod)}, {"spec", spec}});
}

Result<std::optional<json>> loaderService(const json& service) {
  const json* in = field(service, {"spec"});
  if (in == nullptr || !in->is_object()) return fail("a Service has no spec");
  json spec = json::object();
  std::string type = stringField(service, {"spec", "type"});
  if (type == "ExternalName") return fail("ExternalName Services are not supported");
  std::string clusterIp = stringField(service, {"spec", "clusterIP"});
  if (clusterIp == "None") return fail("headless Services (clusterIP: None) are not supported");
  if (!clusterIp.empty()) spec["clusterIP"] = clusterIp;
  if (const json* ips = field(service, {"spec", "clusterIPs"}); ips != nullptr) spec["clusterIPs"] = *ips;
  for (const char* key : {"selector", "trafficDistribution"}) {
    if (const json* f = field(service, {"spec", key}); f != nullptr && !f->is_null()) spec[key] = *f;
  }
  json ports = json::array();
  if (const json* list = field(service, {"spec", "ports"}); list != nullptr && list->is_array()) {
    for (size_t i = 0; i < list->size(); ++i) {
      const json& p = (*list)[i];
      if (!p.is_object()) return fail(fmt::format("spec.ports[{}] is not an object", i));
      json port = json::object();
      for (const char* key : {"name", "port", "protocol", "appProtocol"}) {
        if (p.contains(key)) port[key] = p[key];
      }
      if (p.contains("targetPort")) {
        if (p["targetPort"].is_string()) {
          return fail(fmt::format("spec.ports[{}].targetPort '{}' names a container port: not supported yet", i,
                                  p["targetPort"].get<std::string>()));
        }
        port["targetPort"] = p["targetPort"];
      }
      ports.push_back(port);
    }
  }
  spec["ports"] = ports;
  return std::optional<json>(json{{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", loaderMetadata(service)}, {"spec", spec}});
}

}  // namespace

Result<std::optional<json>> loaderDocument(const json& object) {
  std::string kind = stringField(object, {"kind"});
  std::string apiVersion = stringField(object, {"apiVersion"});
  if (kind == "Pod" && apiVersion == "v1") return workloadOfPod(object);
  if (kind == "Service" && apiVersion == "v1") return loaderService(object);
  json doc = {{"apiVersion", apiVersion}, {"kind", kind}, {"metadata", loaderMetadata(object)}};
  if (const json* spec = field(object, {"spec"}); spec != nullptr) doc["spec"] = *spec;
  return std::optional<json>(std::move(doc));
}

}  // namespace sluice::controller::kube
