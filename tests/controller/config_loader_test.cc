// The controller's YAML reading: a good directory loads completely; each kind of bad input is
// refused with file, object and field named.
#include "config/config_loader.h"

#include <gtest/gtest.h>

#include "config/strict_yaml.h"

namespace sluice::controller {
namespace {

constexpr const char* kGood = R"(
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: reviews-v1-0, namespace: shop, labels: {app: reviews, version: v1}}
spec: {serviceAccount: reviews, node: node1, addresses: [10.244.1.2, "fd00:10:244:1::2"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: reviews-v2-0, namespace: shop, labels: {app: reviews, version: v2}}
spec: {serviceAccount: reviews, node: node1, addresses: [10.244.1.3]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  selector: {app: reviews}
  ports: [{name: http-web, port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}, connectionPool: {tcp: {maxConnections: 100, connectTimeout: 2s}}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  http:
  - match:
    - uri: {prefix: /api}
      headers: {x-canary: {exact: "1"}}
      withoutHeaders: {x-debug: {prefix: "on"}}
      queryParams: {beta: {exact: "1"}}
      authority: {regex: "reviews(:80)?"}
      sourceLabels: {app: frontend}
      sourceNamespace: shop
    route: [{destination: {host: reviews.shop.svc.cluster.local, subset: v2}}]
    rewrite: {uri: /v2/api}
    headers: {request: {set: {x-route: canary}}, response: {remove: [server]}}
  - route:
    - {destination: {host: reviews.shop.svc.cluster.local, subset: v1}, weight: 90}
    - {destination: {host: reviews.shop.svc.cluster.local, subset: v2}, weight: 10}
    timeout: 1.5s
    retries: {attempts: 2, perTryTimeout: 500ms, retryOn: "5xx,connect-failure"}
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, redirectCode: 302}
  - match: [{uri: {prefix: /maintenance}}]
    directResponse: {status: 503, body: {string: down for maintenance}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-callers, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules: [{from: [{source: {principals: ["cluster.local/ns/shop/sa/frontend"]}}], to: [{operation: {ports: ["8080"]}}]}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}, portLevelMtls: {9090: {mode: PERMISSIVE}}}
---
apiVersion: sluice.io/v1alpha1
kind: LocalRateLimit
metadata: {name: reviews, namespace: shop}
spec: {host: reviews, tokenBucket: {maxTokens: 100, fillInterval: 250ms}, routes: [canary], perSourcePrincipal: true}
)";

TEST(ConfigLoader, LoadsEveryKindAndComputesEndpoints) {
  ConfigSet config;
  auto loaded = loadConfigText("shop.yaml", kGood, config);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
  finishConfig(config);
  EXPECT_EQ(config.resources.size(), 8u);
  const auto& svc = config.resources.at("Service/shop/reviews").resource.service();
  EXPECT_EQ(svc.hostname(), "reviews.shop.svc.cluster.local");
  ASSERT_EQ(svc.ports_size(), 1);
  EXPECT_EQ(svc.ports(0).protocol(), "HTTP");  // from the port name's prefix, as Istio does
  EXPECT_EQ(svc.ports(0).target_port(), 8080u);
  EXPECT_EQ(svc.endpoints_size(), 3);  // two addresses of v1, one of v2
  const auto& vs = config.resources.at("VirtualService/shop/reviews").resource.virtual_service();
  ASSERT_EQ(vs.http_size(), 4);
  EXPECT_EQ(vs.http(1).route(0).weight(), 90);
  EXPECT_EQ(vs.http(1).timeout().seconds(), 1);
  EXPECT_EQ(vs.http(1).timeout().nanos(), 500000000);
  EXPECT_EQ(vs.http(1).retries().per_try_timeout().nanos(), 500000000);
  EXPECT_EQ(vs.http(0).match(0).headers().at("x-canary").exact(), "1");
  EXPECT_EQ(vs.http(0).match(0).without_headers().at("x-debug").prefix(), "on");
  EXPECT_EQ(vs.http(0).match(0).query_params().at("beta").exact(), "1");
  EXPECT_EQ(vs.http(0).match(0).authority().regex(), "reviews(:80)?");
  EXPECT_EQ(vs.http(0).match(0).source_labels().at("app"), "frontend");
  EXPECT_EQ(vs.http(0).match(0).source_namespace(), "shop");
  EXPECT_EQ(vs.http(0).rewrite().uri(), "/v2/api");
  EXPECT_EQ(vs.http(0).headers().request().set().at("x-route"), "canary");
  EXPECT_EQ(vs.http(0).headers().response().remove(0), "server");
  EXPECT_EQ(vs.http(2).redirect().redirect_code(), 302u);
  EXPECT_EQ(vs.http(3).direct_response().status(), 503u);
  EXPECT_EQ(vs.http(3).direct_response().body(), "down for maintenance");
  const auto& pa = config.resources.at("PeerAuthentication/shop/default").resource.peer_authentication();
  EXPECT_EQ(pa.mode(), config::v1::PeerAuthentication::STRICT);
  EXPECT_EQ(pa.port_level_mtls().at(9090), config::v1::PeerAuthentication::PERMISSIVE);
  const auto& limit = config.resources.at("LocalRateLimit/shop/reviews").resource.local_rate_limit();
  EXPECT_EQ(limit.host(), "reviews");
  EXPECT_EQ(limit.max_tokens(), 100u);
  EXPECT_EQ(limit.tokens_per_fill(), 1u) << "Envoy's default";
  EXPECT_EQ(limit.fill_interval().nanos(), 250000000);
  ASSERT_EQ(limit.routes_size(), 1);
  EXPECT_EQ(limit.routes(0), "canary");
  EXPECT_TRUE(limit.per_source_principal());
  for (const auto& [_, r] : config.resources) EXPECT_EQ(r.resource.version().size(), 16u);
}

TEST(ConfigLoader, VersionsChangeOnlyWithContent) {
  ConfigSet a, b;
  ASSERT_TRUE(loadConfigText("shop.yaml", kGood, a));
  ASSERT_TRUE(loadConfigText("shop.yaml", kGood, b));
  finishConfig(a);
  finishConfig(b);
  for (const auto& [name, r] : a.resources) EXPECT_EQ(r.resource.version(), b.resources.at(name).resource.version()) << name;
  std::string changed = kGood;
  changed.replace(changed.find("weight: 90"), 10, "weight: 80");
  changed.replace(changed.find("weight: 10"), 10, "weight: 20");
  ConfigSet c;
  ASSERT_TRUE(loadConfigText("shop.yaml", changed, c));
  finishConfig(c);
  EXPECT_NE(c.resources.at("VirtualService/shop/reviews").resource.version(),
            a.resources.at("VirtualService/shop/reviews").resource.version());
  EXPECT_EQ(c.resources.at("DestinationRule/shop/reviews").resource.version(),
            a.resources.at("DestinationRule/shop/reviews").resource.version());
}

struct BadCase {
  const char* description;
  const char* yaml;
  const char* message;  // expected fragment of the error
};

class ConfigLoaderRefuses : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigLoaderRefuses, Table) {
  const auto& c = GetParam();
  ConfigSet config;
  auto loaded = loadConfigText("bad.yaml", c.yaml, config);
  ASSERT_FALSE(loaded) << c.description;
  EXPECT_NE(loaded.error().message().find(c.message), std::string::npos)
      << c.description << "\n  got: " << loaded.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigLoaderRefuses,
    ::testing::Values(
        BadCase{"not yaml", "kind: [unclosed", "bad.yaml: line 1"},
        BadCase{"not a mapping", "- a\n- b\n", "bad.yaml: document 1: not a mapping"},
        BadCase{"no kind", "apiVersion: v1\nmetadata: {name: x}\n", "apiVersion and kind are required"},
        BadCase{"unknown kind", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: x}\nspec: {}\n",
                "kind Gateway is not supported (supported: AuthorizationPolicy, DestinationRule"},
        BadCase{"wrong apiVersion", "apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: x}\nspec: {}\n",
                "VirtualService with apiVersion networking.istio.io/v2 is not supported (use networking.istio.io/v1)"},
        BadCase{"unsupported field",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: shop}\n"
                "spec: {hosts: [r], http: [{route: [{destination: {host: r}}], corsPolicy: {}}]}\n",
                "bad.yaml: VirtualService shop/r: spec.http[0].corsPolicy: not supported by Sluice (supported here: name, match, route"},
        BadCase{"gateways refused",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {hosts: [r], gateways: [g], tcp: []}\n",
                "spec.gateways: not supported by Sluice"},
        BadCase{"weights not 100",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{route: [{destination: {host: a}, weight: 90}, {destination: {host: b}, weight: 20}]}]}\n",
                "VirtualService default/r: spec.http[0].route: weights add up to 110, not 100"},
        BadCase{"weight out of range",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{route: [{destination: {host: a}, weight: 101}]}]}\n",
                "spec.http[0].route[0].weight: must be a whole number from 0 to 100 (got '101')"},
        BadCase{"route without destination host",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{route: [{destination: {subset: v1}}]}]}\n",
                "spec.http[0].route[0].destination.host: is required"},
        BadCase{"bad duration",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{route: [{destination: {host: a}}], timeout: 5 seconds}]}\n",
                "spec.http[0].timeout: must be a duration such as 250ms, 10s or 1m (got '5 seconds')"},
        BadCase{"no hosts", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {tcp: []}\n",
                "spec.hosts: must name at least one host"},
        BadCase{"unknown lb",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {simple: MAGLEV}}}\n",
                "spec.trafficPolicy.loadBalancer.simple: 'MAGLEV' is not one of ROUND_ROBIN, RANDOM, LEAST_REQUEST"},
        BadCase{"simple and consistentHash",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}}}\n",
                "spec.trafficPolicy.loadBalancer: takes simple or consistentHash, not both"},
        BadCase{"empty loadBalancer",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {}}}\n",
                "spec.trafficPolicy.loadBalancer: needs one of simple, consistentHash, localityLbSetting"},
        BadCase{"distribute with failover",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: a/*, to: {a/*: 100}}], "
                "failover: [{from: a, to: b}]}}}}\n",
                "spec.trafficPolicy.loadBalancer.localityLbSetting: takes distribute, or failover and failoverPriority, not both"},
        BadCase{"distribute weights not 100",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: 'us/*', "
                "to: {'us/a/*': 60, 'us/b/*': 30}}]}}}}\n",
                "localityLbSetting.distribute[0].to: weights total 90; they must total 100"},
        BadCase{"distribute from a bad locality",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: 'us/*/a', to: {us: 100}}]}}}}\n",
                "localityLbSetting.distribute[0].from: 'us/*/a' is not a locality (region/zone/subzone, '*' last)"},
        BadCase{"failover between zones",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: us/a, to: eu}]}}}}\n",
                "localityLbSetting.failover[0]: 'us/a' is not a region (failover is between regions)"},
        BadCase{"failover to itself",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: us, to: us}]}}}}\n",
                "localityLbSetting.failover[0]: fails region us over to itself"},
        BadCase{"failoverPriority twice",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {localityLbSetting: {failoverPriority: [a, a]}}}}\n",
                "localityLbSetting.failoverPriority[1]: 'a' is listed twice"},
        BadCase{"failoverPriority with an override value",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {localityLbSetting: {failoverPriority: ['zone=a']}}}}\n",
                "localityLbSetting.failoverPriority[0]: 'zone=a' must be a label name"},
        BadCase{"mirror and mirrors",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{route: [{destination: {host: a}}], mirror: {host: b}, mirrors: [{destination: {host: c}}]}]}\n",
                "spec.http[0]: takes mirror (with mirrorPercentage) or mirrors, not both"},
        BadCase{"mirrors entry without a destination",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{route: [{destination: {host: a}}], mirrors: [{percentage: {value: 5}}]}]}\n",
                "spec.http[0].mirrors[0].destination: is required"},
        BadCase{"retry budget percent over 100",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {retryBudget: {percent: 150}}}\n",
                "spec.trafficPolicy.retryBudget.percent: must be a number from 0 to 100 (got '150')"},
        BadCase{"retry budget interval not whole seconds",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {retryBudget: {budgetInterval: 1500ms}}}\n",
                "spec.trafficPolicy.retryBudget.budgetInterval: must be whole seconds from 1s to 60s"},
        BadCase{"retry budget field Istio does not have",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {retryBudget: {minRetriesPerSecond: 10}}}\n",
                "spec.trafficPolicy.retryBudget.minRetriesPerSecond: not supported by Sluice"},
        BadCase{"keepalive time under a second",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {time: 500ms}}}}}\n",
                "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.time: must be whole seconds from 1s to 32767s"},
        BadCase{"keepalive probes over the kernel's bound",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {probes: 200}}}}}\n",
                "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.probes: must be a whole number from 0 to 127"},
        BadCase{"maxConnectionDuration of zero",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {connectionPool: {tcp: {maxConnectionDuration: 0s}}}}\n",
                "spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration: must be at least 1ms"},
        BadCase{"maxConcurrentStreams of zero",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {connectionPool: {http: {maxConcurrentStreams: 0}}}}\n",
                "spec.trafficPolicy.connectionPool.http.maxConcurrentStreams: must be a whole number from 1 to 2147483647"},
        BadCase{"unknown trafficDistribution",
                "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
                "spec: {clusterIP: 10.96.0.1, ports: [{port: 80}], trafficDistribution: PreferLocal}\n",
                "spec.trafficDistribution: 'PreferLocal' is not one of PreferClose, PreferSameZone, PreferSameNode"},
        BadCase{"zone without region",
                "apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {name: w}\n"
                "spec: {node: n1, addresses: [10.0.0.1], locality: {zone: a}}\n",
                "spec.locality: a zone needs its region, a subzone its zone"},
        BadCase{"locality with a slash",
                "apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {name: w}\n"
                "spec: {node: n1, addresses: [10.0.0.1], locality: {region: us/east}}\n",
                "spec.locality.region: 'us/east' must not hold '/' or '*'"},
        BadCase{"two hash keys",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x, useSourceIp: true}}}}\n",
                "spec.trafficPolicy.loadBalancer.consistentHash: needs exactly one of httpHeaderName, httpCookie, useSourceIp, "
                "httpQueryParameterName"},
        BadCase{"maglev size not prime",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65536}}}}}\n",
                "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: 65536 is not a prime"},
        BadCase{"ring too large",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x, ringHash: {minimumRingSize: 9000000}}}}}\n",
                "spec.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize: must be a whole number from 0 to 1048576"},
        BadCase{"cookie name with a semicolon",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, subsets: [{name: v1, labels: {v: '1'}, trafficPolicy: {loadBalancer: {consistentHash: "
                "{httpCookie: {name: 'a;b', ttl: 10s}}}}}]}\n",
                "spec.subsets[0].trafficPolicy.loadBalancer.consistentHash.httpCookie.name: must be a cookie name"},
        BadCase{"useSourceIp not a boolean",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: yes}}}}\n",
                "spec.trafficPolicy.loadBalancer.consistentHash.useSourceIp: must be true or false (got 'yes')"},
        BadCase{"outlier field Istio does not have",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {outlierDetection: {consecutiveErrors: 5}}}\n",
                "spec.trafficPolicy.outlierDetection.consecutiveErrors: not supported by Sluice"},
        BadCase{"ejection percent above 100",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {outlierDetection: {maxEjectionPercent: 150}}}\n",
                "spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be a whole number from 0 to 100 (got '150')"},
        BadCase{"interval of zero",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {outlierDetection: {interval: 0s}}}\n",
                "spec.trafficPolicy.outlierDetection.interval: must be at least 1ms"},
        BadCase{"split not a boolean",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, trafficPolicy: {outlierDetection: {splitExternalLocalOriginErrors: 1}}}\n",
                "spec.trafficPolicy.outlierDetection.splitExternalLocalOriginErrors: must be true or false (got '1')"},
        BadCase{"abort with both statuses",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{route: [{destination: {host: a}}], fault: {abort: {httpStatus: 503, grpcStatus: UNAVAILABLE}}}]}\n",
                "spec.http[0].fault.abort: needs exactly one of httpStatus, grpcStatus"},
        BadCase{"abort with an unknown gRPC status",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{route: [{destination: {host: a}}], fault: {abort: {grpcStatus: GONE}}}]}\n",
                "spec.http[0].fault.abort.grpcStatus: 'GONE' is not a gRPC status name (e.g. UNAVAILABLE)"},
        BadCase{"unknown retry condition",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{route: [{destination: {host: a}}], retries: {attempts: 3, retryOn: '5xx,always'}}]}\n",
                "spec.http[0].retries.retryOn: 'always' is not a retry condition"},
        BadCase{"duplicate subset",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
                "spec: {host: h, subsets: [{name: v1, labels: {v: '1'}}, {name: v1, labels: {v: '2'}}]}\n",
                "spec.subsets[1].name: subset 'v1' is defined twice"},
        BadCase{"bad service port",
                "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 70000}]}\n",
                "spec.ports[0].port: must be a whole number from 0 to 65535 (got '70000')"},
        BadCase{"udp service", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 53, protocol: UDP}]}\n",
                "spec.ports[0].protocol: 'UDP' is not supported"},
        BadCase{"bad workload address",
                "apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {name: w}\nspec: {node: n, addresses: [10.0.0.300]}\n",
                "spec.addresses[0]: '10.0.0.300' is not an IP address"},
        BadCase{"bad name", "apiVersion: v1\nkind: Service\nmetadata: {name: Bad_Name}\nspec: {ports: [{port: 80}]}\n",
                "metadata.name: 'Bad_Name' is not a valid name"},
        BadCase{"authz when refused",
                "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
                "spec: {rules: [{when: [{key: request.auth.claims, values: [x]}]}]}\n",
                "spec.rules[0].when: not supported by Sluice"},
        BadCase{"authz custom action",
                "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {action: CUSTOM}\n",
                "spec.action: 'CUSTOM' is not supported; ALLOW or DENY"},
        BadCase{"peerauth mode", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec: {mtls: {mode: STRICTEST}}\n",
                "spec.mtls.mode: 'STRICTEST' is not one of STRICT, PERMISSIVE, DISABLE, UNSET"},
        BadCase{"duplicate object",
                "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n---\n"
                "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 81}]}\n",
                "Service default/s is also defined in bad.yaml"},
        BadCase{"bad regex",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{match: [{uri: {regex: '/a(b'}}], route: [{destination: {host: a}}]}]}\n",
                "spec.http[0].match[0].uri.regex: is not a valid RE2 regex: missing )"},
        BadCase{"uppercase header match",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{match: [{headers: {X-Canary: {exact: a}}}], route: [{destination: {host: a}}]}]}\n",
                "spec.http[0].match[0].headers.X-Canary: names must be lowercase"},
        BadCase{"route and redirect",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{redirect: {uri: /b}, route: [{destination: {host: a}}]}]}\n",
                "spec.http[0]: must have exactly one of route, redirect, directResponse"},
        BadCase{"redirect code",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{redirect: {uri: /b, redirectCode: 304}}]}\n",
                "spec.http[0].redirect.redirectCode: 304 is not one of 301, 302, 303, 307, 308"},
        BadCase{"header value with CRLF",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{route: [{destination: {host: a}}], headers: {request: {set: {x-a: \"b\\r\\nx: c\"}}}}]}\n",
                "spec.http[0].headers.request.x-a: header values may not contain CR, LF or NUL"},
        BadCase{"unsupported match field",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec: {hosts: [r], http: [{match: [{scheme: {exact: https}}], route: [{destination: {host: a}}]}]}\n",
                "spec.http[0].match[0].scheme: not supported by Sluice"},
        BadCase{"a mistyped DENY ipBlock",
                "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
                "spec: {action: DENY, rules: [{from: [{source: {ipBlocks: [10.0.0.0/8, 10.0.0/8]}}]}]}\n",
                "spec.rules[0].from[0].source.ipBlocks[1]: '10.0.0/8' is not an IP address or CIDR block"},
        BadCase{"an ipBlock prefix out of range",
                "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
                "spec: {rules: [{from: [{source: {notIpBlocks: [\"fd00::/129\"]}}]}]}\n",
                "notIpBlocks[0]: 'fd00::/129': the prefix length must be 0..128"},
        BadCase{"a service account that would inject a SAN",
                "apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {name: w}\n"
                "spec: {node: node0, serviceAccount: \"x,DNS:sluice-controller\", addresses: [10.0.0.1]}\n",
                "spec.serviceAccount: 'x,DNS:sluice-controller' is not a valid service account name"},
        BadCase{"a node name with a slash",
                "apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {name: w}\nspec: {node: a/b, addresses: [10.0.0.1]}\n",
                "spec.node: 'a/b' is not a valid node name"},
        BadCase{"a service account with an empty DNS label",
                "apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {name: w}\n"
                "spec: {node: node0, serviceAccount: a..b, addresses: [10.0.0.1]}\n",
                "spec.serviceAccount: 'a..b'"},
        BadCase{"two workloads claiming one address",
                "apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {name: a, namespace: shop}\n"
                "spec: {node: node0, addresses: [10.0.0.1, \"fd00::1\"]}\n---\n"
                "apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {name: b, namespace: shop}\n"
                "spec: {node: node1, addresses: [10.0.0.2, \"fd00:0::1\"]}\n",
                "Workload shop/b: spec.addresses[1]: fd00:0::1 is already the address of Workload/shop/a (bad.yaml)"},
        BadCase{"YAML aliases (billion laughs)",
                "apiVersion: v1\nkind: Service\nmetadata: {name: s, labels: &l {a: b}}\n"
                "spec: {ports: [{port: 80}], selector: *l}\n",
                "YAML aliases (*name) are not accepted"},
        BadCase{"rate limit without a bucket",
                "apiVersion: sluice.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: l}\nspec: {host: web}\n",
                "spec.tokenBucket: is required"},
        BadCase{"rate limit of zero tokens",
                "apiVersion: sluice.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: l}\n"
                "spec: {host: web, tokenBucket: {maxTokens: 0, fillInterval: 1s}}\n",
                "spec.tokenBucket.maxTokens: must be at least 1"},
        BadCase{"rate limit refilled too often",
                "apiVersion: sluice.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: l}\n"
                "spec: {host: web, tokenBucket: {maxTokens: 5, fillInterval: 10ms}}\n",
                "spec.tokenBucket.fillInterval: must be at least 50ms"},
        BadCase{"rate limit without its interval",
                "apiVersion: sluice.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: l}\n"
                "spec: {host: web, tokenBucket: {maxTokens: 5}}\n",
                "spec.tokenBucket.fillInterval: is required"},
        BadCase{"rate limit naming a route twice",
                "apiVersion: sluice.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: l}\n"
                "spec: {host: web, tokenBucket: {maxTokens: 5, fillInterval: 1s}, routes: [a, a]}\n",
                "spec.routes[1]: names route a twice"},
        BadCase{"rate limit with an unknown field",
                "apiVersion: sluice.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: l}\n"
                "spec: {host: web, tokenBucket: {maxTokens: 5, fillInterval: 1s}, perClientIp: true}\n",
                "perClientIp"},
        BadCase{"rate limit of the wrong version",
                "apiVersion: sluice.io/v1\nkind: LocalRateLimit\nmetadata: {name: l}\n"
                "spec: {host: web, tokenBucket: {maxTokens: 5, fillInterval: 1s}}\n",
                "sluice.io/v1alpha1"},
        BadCase{"top-level junk", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\nspecs: {}\n",
                "field specs is not supported"}));

// yaml-cpp 0.7's LoadAll loops forever on these (found by fuzz_authorization_policy).
TEST(ConfigLoader, RefusesAStrayCommaInsteadOfHanging) {
  for (const char* text : {",", "a: b\n---\n,", "--- ,\n"}) {
    ConfigSet config;
    auto loaded = loadConfigText("comma.yaml", text, config);
    ASSERT_FALSE(loaded) << text;
    EXPECT_NE(loaded.error().message().find("comma.yaml: line"), std::string::npos) << loaded.error().message();
    EXPECT_NE(loaded.error().message().find("not valid YAML"), std::string::npos) << loaded.error().message();
  }
  ConfigSet config;
  auto scalarMeta = loadConfigText("m.yaml", "apiVersion: v1\nkind: Service\nmetadata: name\nspec: {}\n", config);
  ASSERT_FALSE(scalarMeta);
  EXPECT_NE(scalarMeta.error().message().find("metadata must be a mapping"), std::string::npos) << scalarMeta.error().message();
  // Many empty documents are fine.
  EXPECT_TRUE(loadConfigText("empty.yaml", "---\n---\n---\n---\n", config));
}

TEST(ConfigLoader, RefusesHostileNestingBeforeParsing) {
  ConfigSet config;
  std::string flow = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: " + std::string(100000, '[');
  auto deep = loadConfigText("deep.yaml", flow, config);
  ASSERT_FALSE(deep);
  EXPECT_NE(deep.error().message().find("deep.yaml: line 4: nested deeper than Sluice accepts"), std::string::npos)
      << deep.error().message();
  std::string block = "a:\n" + std::string(300, ' ') + "b: 1\n";
  auto indented = loadConfigText("indent.yaml", block, config);
  ASSERT_FALSE(indented);
  EXPECT_NE(indented.error().message().find("indentation over 256 columns"), std::string::npos);
  // Brackets inside quotes and comments do not count.
  std::string quoted = "apiVersion: v1\nkind: Service\nmetadata: {name: s, annotations: {x: \"" + std::string(100, '[') +
                       "\"}}  # " + std::string(100, '{') + "\nspec: {ports: [{port: 80}]}\n";
  ConfigSet ok;
  auto loaded = loadConfigText("quoted.yaml", quoted, ok);
  EXPECT_TRUE(loaded.has_value()) << loaded.error().message();
}

struct DurationCase {
  const char* text;
  bool ok;
  int64_t nanos;
};

class ParseDuration : public ::testing::TestWithParam<DurationCase> {};

TEST_P(ParseDuration, Table) {
  auto d = parseDuration(GetParam().text);
  ASSERT_EQ(d.has_value(), GetParam().ok) << GetParam().text;
  if (d) {
    EXPECT_EQ(d->seconds() * 1000000000 + d->nanos(), GetParam().nanos) << GetParam().text;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, ParseDuration,
                         ::testing::Values(DurationCase{"10s", true, 10000000000}, DurationCase{"1.5s", true, 1500000000},
                                           DurationCase{"250ms", true, 250000000}, DurationCase{"2m", true, 120000000000},
                                           DurationCase{"1h30m", true, 5400000000000}, DurationCase{"100us", true, 100000},
                                           DurationCase{"0s", true, 0}, DurationCase{"", false, 0},
                                           DurationCase{"10", false, 0}, DurationCase{"-1s", false, 0},
                                           DurationCase{"1d", false, 0}, DurationCase{"s", false, 0}));

}  // namespace
}  // namespace sluice::controller
