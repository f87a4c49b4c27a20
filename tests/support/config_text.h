// Configuration as the controller loads it, for unit tests of the tunnel's decisions: YAML
// (every kind the controller reads) to the resources a snapshot is built from.
#pragma once

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <map>
#include <string>

#include "config/config_loader.h"

namespace sluice::testing {

inline std::map<std::string, config::v1::Resource> resourcesFromYaml(const std::string& yaml) {
  controller::ConfigSet set;
  auto loaded = controller::loadConfigText("t.yaml", yaml, set);
  EXPECT_TRUE(loaded.has_value()) << loaded.error().message();
  controller::finishConfig(set);
  std::map<std::string, config::v1::Resource> out;
  for (const auto& [name, r] : set.resources) out[name] = r.resource;
  return out;
}

// A sluice.io Workload of app `app` at `version` on node1, one YAML document.
inline std::string workloadYaml(const std::string& name, const std::string& app, const std::string& version,
                                const std::string& address) {
  return fmt::format("apiVersion: sluice.io/v1alpha1\nkind: Workload\n"
                     "metadata: {{name: {}, namespace: shop, labels: {{app: {}, version: {}}}}}\n"
                     "spec: {{node: node1, addresses: [{}]}}\n---\n",
                     name, app, version, address);
}

// Workloads a and b (web v1, 10.244.1.2-3) and c (web v2, 10.244.1.4) behind Service shop/web
// (VIP 10.96.0.10:80 -> 8080); a test appends its DestinationRule.
inline std::string webServiceYaml() {
  return workloadYaml("a", "web", "v1", "10.244.1.2") + workloadYaml("b", "web", "v1", "10.244.1.3") +
         workloadYaml("c", "web", "v2", "10.244.1.4") +
         "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
         "spec: {clusterIP: 10.96.0.10, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n---\n";
}

}  // namespace sluice::testing
