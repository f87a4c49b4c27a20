// analyze: silent on a clean configuration, and each listed problem found, named and explained.
#include "analyze/analyzer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "sluice/common/process.h"

namespace sluice::controller {
namespace {

constexpr const char* kBase = R"(
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
spec: {node: node1, addresses: [10.244.1.2]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: reviews-v2, namespace: shop, labels: {app: reviews, version: v2}}
spec: {node: node1, addresses: [10.244.1.3]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {clusterIP: 10.96.0.10, selector: {app: reviews}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: shadow, namespace: shop, annotations: {sluice.io/mirror-safe: "true"}}
spec: {clusterIP: 10.96.0.11, selector: {app: reviews}, ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews, namespace: shop}
spec: {selector: {matchLabels: {app: reviews}}, action: DENY, rules: [{from: [{source: {namespaces: [evil]}}]}]}
)";

// A clean VirtualService; cases replace it with one that has a problem.
constexpr const char* kCleanRoute = R"(
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /v2}, method: {exact: GET}}]
    route: [{destination: {host: reviews, subset: v2}}]
    retries: {attempts: 2, perTryTimeout: 1s}
    timeout: 3s
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
    mirror: {host: shadow}
---
apiVersion: sluice.io/v1alpha1
kind: LocalRateLimit
metadata: {name: reviews, namespace: shop}
spec: {host: reviews, tokenBucket: {maxTokens: 100, tokensPerFill: 10, fillInterval: 100ms}}
)";

std::vector<Finding> analyzeText(const std::string& extra) {
  ConfigSet config;
  auto loaded = loadConfigText("base.yaml", kBase, config);
  EXPECT_TRUE(loaded.has_value()) << loaded.error().message();
  auto more = loadConfigText("case.yaml", extra, config);
  EXPECT_TRUE(more.has_value()) << more.error().message();
  finishConfig(config);
  return analyze(config);
}

TEST(Analyze, SilentOnACleanConfiguration) {
  auto findings = analyzeText(kCleanRoute);
  for (const auto& f : findings) ADD_FAILURE() << f.format();
}

struct FindingCase {
  const char* description;
  const char* yaml;
  const char* code;
  const char* field;
  Finding::Severity severity;
};

class AnalyzeFinds : public ::testing::TestWithParam<FindingCase> {};

TEST_P(AnalyzeFinds, Table) {
  const auto& c = GetParam();
  auto findings = analyzeText(c.yaml);
  ASSERT_EQ(findings.size(), 1u) << c.description << [&] {
    std::string all;
    for (const auto& f : findings) all += "\n  " + f.format();
    return all;
  }();
  EXPECT_EQ(findings[0].code, c.code) << c.description;
  EXPECT_EQ(findings[0].field, c.field) << c.description;
  EXPECT_EQ(findings[0].severity, c.severity) << c.description;
  EXPECT_EQ(findings[0].file, "case.yaml");
  EXPECT_FALSE(findings[0].message.empty());
}

using S = Finding::Severity;
INSTANTIATE_TEST_SUITE_P(
    Table, AnalyzeFinds,
    ::testing::Values(
        FindingCase{"subset matching no workload",
                    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: other, namespace: shop}\n"
                    "spec: {host: shadow.shop.svc.cluster.local, subsets: [{name: v3, labels: {version: v3}}]}\n",
                    "subset-matches-nothing", "spec.subsets[0]", S::kError},
        FindingCase{"retries on non-idempotent route",
                    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: shop}\n"
                    "spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}], retries: {attempts: 3}}]}\n",
                    "retry-non-idempotent", "spec.http[0].retries", S::kWarning},
        FindingCase{"attempts x per-try over the timeout",
                    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: shop}\n"
                    "spec: {hosts: [reviews], http: [{match: [{method: {exact: GET}}], route: [{destination: {host: reviews}}],"
                    " retries: {attempts: 3, perTryTimeout: 2s}, timeout: 5s}]}\n",
                    "retries-exceed-timeout", "spec.http[0].retries", S::kWarning},
        FindingCase{"localityLbSetting without outlierDetection",
                    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: other, namespace: shop}\n"
                    "spec: {host: shadow.shop.svc.cluster.local, trafficPolicy: {loadBalancer: {localityLbSetting: "
                    "{failover: [{from: us, to: eu}]}}}}\n",
                    "locality-without-outlier-detection", "spec.trafficPolicy.loadBalancer.localityLbSetting", S::kWarning},
        FindingCase{"a subset's localityLbSetting without outlierDetection",
                    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: other, namespace: shop}\n"
                    "spec: {host: shadow.shop.svc.cluster.local, subsets: [{name: all, labels: {}, trafficPolicy: "
                    "{loadBalancer: {localityLbSetting: {}}}}]}\n",
                    "locality-without-outlier-detection", "spec.subsets[0].trafficPolicy.loadBalancer.localityLbSetting",
                    S::kWarning},
        FindingCase{"a retry budget that limits nothing",
                    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: other, namespace: shop}\n"
                    "spec: {host: shadow.shop.svc.cluster.local, trafficPolicy: {retryBudget: {percent: 100}}}\n",
                    "retry-budget-disabled", "spec.trafficPolicy.retryBudget.percent", S::kWarning},
        FindingCase{"every endpoint may be ejected",
                    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: other, namespace: shop}\n"
                    "spec: {host: shadow.shop.svc.cluster.local, trafficPolicy: {outlierDetection: {maxEjectionPercent: 100}}}\n",
                    "eject-every-endpoint", "spec.trafficPolicy.outlierDetection.maxEjectionPercent", S::kWarning},
        FindingCase{"mirror to a target with side effects",
                    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: shop}\n"
                    "spec: {hosts: [shadow], http: [{route: [{destination: {host: shadow}}], mirror: {host: reviews}}]}\n",
                    "mirror-side-effects", "spec.http[0].mirror", S::kWarning},
        FindingCase{"one of the mirrors with side effects",
                    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: shop}\n"
                    "spec: {hosts: [shadow], http: [{route: [{destination: {host: shadow}}], mirrors: "
                    "[{destination: {host: shadow}}, {destination: {host: reviews}, percentage: {value: 10}}]}]}\n",
                    "mirror-side-effects", "spec.http[0].mirrors[1].destination", S::kWarning},
        FindingCase{"route shadowed by a catch-all",
                    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: shop}\n"
                    "spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]},"
                    " {match: [{uri: {prefix: /api}}], route: [{destination: {host: reviews}}]}]}\n",
                    "route-shadowed", "spec.http[1]", S::kWarning},
        FindingCase{"route shadowed by a wider prefix",
                    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: shop}\n"
                    "spec: {hosts: [reviews], http: [{match: [{uri: {prefix: /api}}], route: [{destination: {host: reviews}}]},"
                    " {match: [{uri: {exact: /api/v2}}], route: [{destination: {host: reviews}}]}]}\n",
                    "route-shadowed", "spec.http[1]", S::kWarning},
        FindingCase{"policy selecting nothing",
                    "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\n"
                    "spec: {selector: {matchLabels: {app: reveiws}}}\n",
                    "selects-nothing", "spec.selector", S::kWarning},
        FindingCase{"peer authentication selecting nothing",
                    "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: shop}\n"
                    "spec: {selector: {matchLabels: {app: ratings}}, mtls: {mode: STRICT}}\n",
                    "selects-nothing", "spec.selector", S::kWarning},
        FindingCase{"route to an undefined subset",
                    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: shop}\n"
                    "spec: {hosts: [reviews], tcp: [{route: [{destination: {host: reviews, subset: v9}}]}]}\n",
                    "subset-not-defined", "spec.tcp[0].route[0].destination.subset", S::kError},
        FindingCase{"route to an unknown host",
                    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: shop}\n"
                    "spec: {hosts: [reviews], tcp: [{route: [{destination: {host: ratings}}]}]}\n",
                    "host-not-found", "spec.tcp[0].route[0].destination.host", S::kError},
        FindingCase{"rate limit on an unknown host",
                    "apiVersion: sluice.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: l, namespace: shop}\n"
                    "spec: {host: ratings, tokenBucket: {maxTokens: 1, fillInterval: 1s}}\n",
                    "host-not-found", "spec.host", S::kError},
        FindingCase{"rate limit naming a route no VirtualService has",
                    "apiVersion: sluice.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: l, namespace: shop}\n"
                    "spec: {host: reviews, tokenBucket: {maxTokens: 1, fillInterval: 1s}, routes: [checkout]}\n",
                    "route-not-found", "spec.routes[0]", S::kError},
        FindingCase{"two rate limits for one host",
                    "apiVersion: sluice.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: a, namespace: shop}\n"
                    "spec: {host: reviews, tokenBucket: {maxTokens: 1, fillInterval: 1s}}\n---\n"
                    "apiVersion: sluice.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: b, namespace: shop}\n"
                    "spec: {host: reviews.shop.svc.cluster.local, tokenBucket: {maxTokens: 1, fillInterval: 1s}}\n",
                    "duplicate-rate-limit", "spec.host", S::kError},
        FindingCase{"rate limit on a TCP-only service",
                    "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: shop}\n"
                    "spec: {clusterIP: 10.96.0.12, selector: {app: reviews}, ports: [{name: tcp, port: 5432}]}\n---\n"
                    "apiVersion: sluice.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: l, namespace: shop}\n"
                    "spec: {host: db, tokenBucket: {maxTokens: 1, fillInterval: 1s}}\n",
                    "rate-limit-on-tcp", "spec.host", S::kWarning}));

TEST(AnalyzeCommand, ExitCodesAndRefusedFiles) {
  namespace fs = std::filesystem;
  std::string dir = ::testing::TempDir() + "/analyze_" + std::to_string(::getpid());
  fs::create_directories(dir);
  std::ofstream(dir + "/base.yaml") << kBase;
  std::ofstream(dir + "/route.yaml") << kCleanRoute;
  auto clean = run({.argv = {siblingProgram("sluice-controller"), "analyze", dir}});
  ASSERT_TRUE(clean);
  EXPECT_EQ(clean->exitCode, 0) << clean->out << clean->err;
  EXPECT_EQ(clean->out, "");
  // A warning alone passes, unless --strict.
  std::ofstream(dir + "/policy.yaml") << "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                                         "metadata: {name: p, namespace: shop}\nspec: {selector: {matchLabels: {app: x}}}\n";
  auto warned = run({.argv = {siblingProgram("sluice-controller"), "analyze", dir}});
  ASSERT_TRUE(warned);
  EXPECT_EQ(warned->exitCode, 0);
  EXPECT_NE(warned->out.find("WARNING [selects-nothing] policy.yaml: AuthorizationPolicy shop/p: spec.selector"),
            std::string::npos) << warned->out;
  auto strict = run({.argv = {siblingProgram("sluice-controller"), "analyze", dir, "--strict"}});
  ASSERT_TRUE(strict);
  EXPECT_EQ(strict->exitCode, 1);
  // A refused file fails with its reason.
  std::ofstream(dir + "/broken.yaml") << "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 0}]}\n";
  auto refused = run({.argv = {siblingProgram("sluice-controller"), "analyze", dir}});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->exitCode, 1);
  EXPECT_NE(refused->out.find("ERROR [refused]"), std::string::npos) << refused->out;
  EXPECT_NE(refused->out.find("broken.yaml: Service default/s: spec.ports[0].port"), std::string::npos) << refused->out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sluice::controller
