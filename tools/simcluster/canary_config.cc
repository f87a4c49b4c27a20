#include "simcluster/canary_config.h"

#include "simcluster/mesh_controller.h"
#include "sluice/common/files.h"

#include <fmt/format.h>

#include <cstdio>

namespace sluice::sim {

std::string canaryClusterYaml(const Cluster& cluster) {
  std::string yaml = workloadsYaml(cluster);
  yaml += fmt::format("apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: shop}}\n"
                      "spec: {{clusterIP: {}, selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080}}]}}\n---\n"
                      "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: web, namespace: shop}}\n"
                      "spec: {{host: web, subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]}}\n",
                      kCanaryVip);
  return yaml;
}

std::string canaryRouteYaml(int v1, int v2) {
  return fmt::format("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: shop}}\n"
                     "spec: {{hosts: [web], tcp: [{{route: [{{destination: {{host: web, subset: v1}}, weight: {}}}, "
                     "{{destination: {{host: web, subset: v2}}, weight: {}}}]}}]}}\n",
                     v1, v2);
}

namespace {

// Service `service` (port 80 -> its targetPort) in front of the pods labelled app: `app`.
std::string serviceYaml(const L7Service& service, const char* app = "web", const char* annotations = "") {
  return fmt::format(
      "apiVersion: v1\nkind: Service\nmetadata: {{name: {0}, namespace: shop{4}}}\n"
      "spec: {{clusterIP: {1}, selector: {{app: {5}}}, ports: [{{name: {2}, port: 80, targetPort: {3}}}]}}\n---\n",
      service.name, service.vip, service.portName, service.targetPort, annotations, app);
}

// The DestinationRule for `service`: `fields` follow its host in the spec.
std::string destinationRuleYaml(const L7Service& service, const std::string& fields) {
  return fmt::format("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {0}, namespace: shop}}\n"
                     "spec: {{host: {0}, {1}}}\n",
                     service.name, fields);
}

constexpr const char* kSubsets = "subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]";

}  // namespace

std::string l7CanaryYaml(const L7Service& service, int v1, int v2) {
  return serviceYaml(service) + destinationRuleYaml(service, kSubsets) +
         fmt::format("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {0}, namespace: shop}}\n"
                     "spec:\n  hosts: [{0}]\n  http:\n"
                     "  - match: [{{headers: {{x-canary: {{exact: always}}}}}}]\n"
                     "    route: [{{destination: {{host: {0}, subset: v2}}}}]\n"
                     "  - route:\n"
                     "    - {{destination: {{host: {0}, subset: v1}}, weight: {1}}}\n"
                     "    - {{destination: {{host: {0}, subset: v2}}, weight: {2}}}\n",
                     service.name, v1, v2);
}

std::string outlierDetectionYaml(const L7Service& service) {
  return serviceYaml(service) +
         destinationRuleYaml(service, "trafficPolicy: {outlierDetection: {consecutive5xxErrors: 5, baseEjectionTime: 30s}}");
}

std::string connectionPoolYaml(const L7Service& service, int maxRequests) {
  return serviceYaml(service) +
         destinationRuleYaml(service, fmt::format("trafficPolicy: {{connectionPool: {{http: {{http2MaxRequests: {}}}}}}}", maxRequests));
}

std::string localRateLimitYaml(const L7Service& service, int tokens) {
  return fmt::format(
      "apiVersion: sluice.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {{name: {0}, namespace: shop}}\n"
      "spec: {{host: {0}, tokenBucket: {{maxTokens: {1}, tokensPerFill: {1}, fillInterval: 60s}}}}\n",
      service.name, tokens);
}

std::string mirrorYaml(const L7Service& service, int percent) {
  return serviceYaml(service, "web", ", annotations: {sluice.io/mirror-safe: \"true\"}") + destinationRuleYaml(service, kSubsets) +
         fmt::format("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {0}, namespace: shop}}\n"
                     "spec: {{hosts: [{0}], http: [{{name: primary, route: [{{destination: {{host: {0}, subset: v1}}}}], "
                     "mirror: {{host: {0}, subset: v2}}, mirrorPercentage: {{value: {1}}}}}]}}\n",
                     service.name, percent);
}

std::string localityYaml(const L7Service& service) {
  return serviceYaml(service, "nearby") +
         destinationRuleYaml(service, "trafficPolicy: {outlierDetection: {consecutive5xxErrors: 5, baseEjectionTime: 60s}}");
}

Status writeConfigFile(const std::string& dir, const std::string& file, const std::string& yaml) {
  // The temporary "<file>.tmp" does not end in .yaml, so the controller never reads half a file.
  return writeFileAtomically(dir + "/" + file, yaml, 0644);
}

}  // namespace sluice::sim
