// Locality-aware load balancing (proxy/locality.h): locality patterns, the priority of an
// endpoint for a client under localityLbSetting (default failover, region failover,
// failoverPriority) and trafficDistribution, distribute's weighted targets, and pickEndpoint
// keeping to the closest endpoints until outlier detection ejects them. Pure, by tables.
#include "proxy/locality.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "proxy/outbound_decision.h"
#include "proxy/snapshot_builder.h"
#include "support/config_text.h"

namespace sluice::ztunnel {
namespace {

TEST(Locality, PatternsMatchWhatIsUnderThem) {
  const Locality east{"us-east", "a", "rack1"};
  const std::pair<const char*, bool> cases[] = {
      {"us-east", true},         {"us-east/a", true},     {"us-east/a/rack1", true}, {"us-east/*", true},
      {"us-east/a/*", true},     {"*", true},             {"us-west", false},        {"us-east/b", false},
      {"us-east/a/rack2", false}, {"us-west/*", false},   {"us-eas", false},
  };
  for (auto [pattern, matches] : cases) EXPECT_EQ(localityMatches(pattern, east), matches) << pattern;
}

struct RankCase {
  const char* what;
  std::string node;
  Locality locality;
  std::map<std::string, std::string> labels;
  int failover, failoverToEu, priority, sameZone, sameNode;  // rank under each mode
};

TEST(Locality, RankByMode) {
  const std::string clientNode = "n1";
  const Locality clientLocality{"us", "a", "r1"};
  const std::map<std::string, std::string> clientLabels{{"network", "blue"}, {"tier", "gold"}};
  Placement client{&clientNode, &clientLocality, &clientLabels};
  LocalityLbPolicy failover;
  LocalityLbPolicy failoverToEu;
  failoverToEu.failover = {{"us", "eu"}};
  LocalityLbPolicy priority;
  priority.failoverPriority = {"network", "topology.kubernetes.io/zone"};
  const RankCase cases[] = {
      {"same node", "n1", {"us", "a", "r1"}, {{"network", "blue"}}, 0, 0, 0, 0, 0},
      {"same subzone, other node", "n2", {"us", "a", "r1"}, {{"network", "blue"}}, 0, 0, 0, 0, 1},
      {"same zone, other subzone", "n3", {"us", "a", "r2"}, {{"network", "blue"}}, 1, 1, 0, 0, 1},
      {"same region", "n4", {"us", "b", "r1"}, {{"network", "blue"}}, 2, 2, 1, 1, 2},
      {"the failover region", "n5", {"eu", "a", "r1"}, {{"network", "blue"}}, 4, 3, 0, 2, 3},
      {"another region", "n6", {"ap", "x", ""}, {{"network", "red"}}, 4, 4, 2, 2, 3},
      {"no label", "n7", {"us", "a", "r1"}, {}, 0, 0, 2, 0, 1},
  };
  for (const auto& c : cases) {
    Placement endpoint{&c.node, &c.locality, &c.labels};
    EXPECT_EQ(localityRank(failover, true, TrafficDistribution::kAny, client, endpoint), c.failover) << c.what;
    EXPECT_EQ(localityRank(failoverToEu, true, TrafficDistribution::kAny, client, endpoint), c.failoverToEu) << c.what;
    EXPECT_EQ(localityRank(priority, true, TrafficDistribution::kAny, client, endpoint), c.priority) << c.what;
    // trafficDistribution applies only when no localityLbSetting is in force.
    EXPECT_EQ(localityRank(failover, false, TrafficDistribution::kPreferSameZone, client, endpoint), c.sameZone) << c.what;
    EXPECT_EQ(localityRank(failover, false, TrafficDistribution::kPreferSameNode, client, endpoint), c.sameNode) << c.what;
    EXPECT_EQ(localityRank(failover, false, TrafficDistribution::kAny, client, endpoint), 0) << c.what;
  }
}

TEST(Locality, DistributeSplitsByWeightFromTheClientsLocality) {
  LocalityLbPolicy policy;
  policy.distribute = {{"us/a/*", {{"us/a/*", 80}, {"us/b/*", 20}}}, {"us/*", {{"us/b/*", 100}}}};
  std::map<std::string, int> share;
  for (uint64_t r = 0; r < 1000; ++r) ++share[*distributeTarget(policy, {"us", "a", "r1"}, r)];
  EXPECT_EQ(share["us/a/*"], 800);
  EXPECT_EQ(share["us/b/*"], 200);
  EXPECT_EQ(*distributeTarget(policy, {"us", "c", ""}, 7), "us/b/*") << "the first rule whose from matches";
  EXPECT_EQ(distributeTarget(policy, {"eu", "a", ""}, 7), nullptr) << "no rule for the client's locality";
}

// Service web: a (zone a, node n0) and b (zone b, node n1) in region sim; the client on n0.
std::string localityYaml(const std::string& trafficPolicy, const std::string& serviceSpec = "") {
  std::string yaml;
  for (auto [name, node, zone, ip] : {std::tuple{"client", "n0", "a", "10.244.0.2"}, std::tuple{"a", "n0", "a", "10.244.0.3"},
                                      std::tuple{"b", "n1", "b", "10.244.1.2"}}) {
    yaml += fmt::format("apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {{name: {}, namespace: shop, labels: "
                        "{{app: {}, topology.kubernetes.io/region: sim, topology.kubernetes.io/zone: {}}}}}\n"
                        "spec: {{node: {}, addresses: [{}]}}\n---\n",
                        name, std::string(name) == "client" ? "client" : "web", zone, node, ip);
  }
  yaml += "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
          "spec: {clusterIP: 10.96.0.10, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]" + serviceSpec + "}\n";
  if (!trafficPolicy.empty()) {
    yaml += "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\n"
            "spec: {host: web, trafficPolicy: " + trafficPolicy + "}\n";
  }
  return yaml;
}

struct Ejected final : EjectionView {
  std::set<std::string> hosts;
  bool ejected(const std::string&, const std::string& host) const override { return hosts.contains(host); }
};

// The endpoints 100 round-robin picks from the client reach.
std::set<std::string> picked(const ConfigSnapshot& config, const EjectionView* ejections, std::string_view avoid = {}) {
  const ServiceEntry& web = *config.servicesByVip.at("10.96.0.10:80");
  const WorkloadEntry* client = config.workloadsByIp.at("10.244.0.2").get();
  std::set<std::string> out;
  for (uint64_t r = 0; r < 100; ++r) {
    const auto* e = pickEndpoint(web, "", nullptr, {.random = r << 20, .sequence = r, .ejections = ejections, .avoidHost = avoid, .client = client});
    if (e != nullptr) out.insert(e->address);
  }
  return out;
}

TEST(Locality, PickEndpointKeepsToTheClosestUntilTheyAreEjected) {
  const std::set<std::string> local{"10.244.0.3"}, remote{"10.244.1.2"}, both{"10.244.0.3", "10.244.1.2"};
  Ejected none, localEjected;
  localEjected.hosts = {"shop/a"};
  struct Case {
    const char* what;
    std::string trafficPolicy, serviceSpec;
    std::set<std::string> healthy, afterEjection;
  };
  const Case cases[] = {
      {"no preference", "", "", both, both},
      {"outlierDetection alone: Istio's default failover", "{outlierDetection: {consecutive5xxErrors: 5}}", "", local, remote},
      {"localityLbSetting without outlierDetection is not in force", "{loadBalancer: {localityLbSetting: {}}}", "", both, both},
      {"localityLbSetting turned off", "{loadBalancer: {localityLbSetting: {enabled: false}}, outlierDetection: {}}", "", both,
       remote},
      {"distribute 100% to zone b", "{loadBalancer: {localityLbSetting: {distribute: [{from: 'sim/a/*', to: {'sim/b/*': 100}}]}}, "
       "outlierDetection: {}}", "", remote, remote},
      {"failoverPriority on the zone label", "{loadBalancer: {simple: RANDOM, localityLbSetting: {failoverPriority: "
       "[topology.kubernetes.io/zone]}}, outlierDetection: {}}", "", local, remote},
      {"trafficDistribution PreferClose", "", ", trafficDistribution: PreferClose", local, local},
      {"PreferClose with outlier detection fails over", "{loadBalancer: {localityLbSetting: {enabled: false}}, outlierDetection: {}}",
       ", trafficDistribution: PreferClose", local, remote},
      {"trafficDistribution PreferSameNode", "", ", trafficDistribution: PreferSameNode", local, local},
  };
  for (const auto& c : cases) {
    auto config = buildSnapshot(testing::resourcesFromYaml(localityYaml(c.trafficPolicy, c.serviceSpec)));
    ASSERT_TRUE(config) << c.what << ": " << config.error().message();
    // Without outlier detection nothing is ever ejected: the view is not consulted.
    EXPECT_EQ(picked(*config, &none), c.healthy) << c.what;
    EXPECT_EQ(picked(*config, &localEjected), c.afterEjection) << c.what << " (a ejected)";
  }
  // A retry passes over the endpoint it tried: the next closest takes it.
  auto config = buildSnapshot(testing::resourcesFromYaml(localityYaml("{outlierDetection: {}}")));
  ASSERT_TRUE(config);
  EXPECT_EQ(picked(*config, &none, "shop/a"), remote);
}

}  // namespace
}  // namespace sluice::ztunnel
