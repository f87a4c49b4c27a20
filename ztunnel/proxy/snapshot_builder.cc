#include "proxy/snapshot_builder.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>

#include "proxy/outbound_decision.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {
namespace v1 = config::v1;

namespace {

std::map<std::string, std::string> toMap(const google::protobuf::Map<std::string, std::string>& m) {
  return {m.begin(), m.end()};
}

// A VirtualService host names a service by short name, name.namespace, or FQDN.
bool hostNames(const std::string& host, const std::string& vsNamespace, const v1::Service& s) {
  return host == s.hostname() || host == s.name() + "." + s.namespace_() ||
         (host == s.name() && vsNamespace == s.namespace_());
}

std::string fqdn(const std::string& host, const std::string& ns) {
  return host.find('.') != std::string::npos ? host : fmt::format("{}.{}.svc.cluster.local", host, ns);
}

LocalityLbPolicy localityPolicy(const v1::LoadBalancerSettings::LocalityLbSetting& l) {
  LocalityLbPolicy p;
  p.enabled = !l.has_enabled() || l.enabled();
  for (const auto& d : l.distribute()) {
    LocalityLbPolicy::Distribute rule{d.from(), {}};
    for (const auto& [to, weight] : d.to()) rule.to.emplace_back(to, weight);
    // The map's order is not the file's: sorted, so every node picks the same way.
    std::sort(rule.to.begin(), rule.to.end());
    p.distribute.push_back(std::move(rule));
  }
  for (const auto& f : l.failover()) p.failover.emplace(f.from(), f.to());
  p.failoverPriority.assign(l.failover_priority().begin(), l.failover_priority().end());
  return p;
}

// Istio's retryBudget: its percent and interval, and minRetryConcurrency (when set) in place
// of Linkerd's per-second floor.
l7::RetryBudgetPolicy retryBudgetPolicy(const v1::RetryBudget& rb) {
  l7::RetryBudgetPolicy p;
  if (rb.has_percent()) p.ratio = rb.percent() / 100.0;
  if (rb.budget_interval().seconds() > 0) p.windowSeconds = static_cast<int>(rb.budget_interval().seconds());
  if (rb.has_min_retry_concurrency()) p.minConcurrency = rb.min_retry_concurrency();
  return p;
}

LbPolicy lbPolicy(const v1::LoadBalancerSettings& lb) {
  LbPolicy p;
  if (lb.has_locality_lb_setting()) p.locality = localityPolicy(lb.locality_lb_setting());
  if (lb.has_consistent_hash()) {
    const auto& h = lb.consistent_hash();
    p.kind = LbPolicy::Kind::kConsistentHash;
    using H = v1::LoadBalancerSettings::ConsistentHash;
    switch (h.hash_key_case()) {
      case H::kHttpHeaderName: p.key = LbPolicy::HashKey::kHeader; p.keyName = h.http_header_name(); break;
      case H::kHttpCookie:
        p.key = LbPolicy::HashKey::kCookie;
        p.keyName = h.http_cookie().name();
        p.cookiePath = h.http_cookie().path();
        p.cookieTtl = std::chrono::seconds(h.http_cookie().ttl().seconds());
        break;
      case H::kUseSourceIp: p.key = LbPolicy::HashKey::kSourceIp; break;
      case H::kHttpQueryParameterName: p.key = LbPolicy::HashKey::kQueryParameter; p.keyName = h.http_query_parameter_name(); break;
      case H::HASH_KEY_NOT_SET: break;
    }
    p.algorithm = h.algorithm() == H::MAGLEV ? LbPolicy::Algorithm::kMaglev : LbPolicy::Algorithm::kRingHash;
    if (h.minimum_ring_size() != 0) p.minimumRingSize = h.minimum_ring_size();
    if (h.table_size() != 0) p.maglevTableSize = h.table_size();
    return p;
  }
  switch (lb.simple()) {
    case v1::LoadBalancerSettings::RANDOM: p.kind = LbPolicy::Kind::kRandom; break;
    case v1::LoadBalancerSettings::LEAST_REQUEST: p.kind = LbPolicy::Kind::kLeastRequest; break;
    default: p.kind = LbPolicy::Kind::kRoundRobin; break;
  }
  return p;
}

// The consistent-hash table over the endpoints carrying `labels` (all when empty).
ServiceEntry::HashIndex hashIndex(const ServiceEntry& entry, const LbPolicy& policy, const std::map<std::string, std::string>& labels) {
  ServiceEntry::HashIndex index;
  std::vector<HashTable::Candidate> candidates;
  for (uint32_t i = 0; i < entry.endpoints.size(); ++i) {
    const auto& e = entry.endpoints[i];
    if (!labelsMatch(labels, e.labels)) continue;
    index.endpoints.push_back(i);
    candidates.push_back({e.address, e.weight});
  }
  index.table = std::make_shared<const HashTable>(policy.algorithm == LbPolicy::Algorithm::kMaglev
                                                      ? HashTable::maglev(candidates, policy.maglevTableSize)
                                                      : HashTable::ringHash(candidates, policy.minimumRingSize));
  return index;
}

// The DestinationRule's loadBalancer for the service and, where a subset sets its own, for
// that subset (Istio: a subset's trafficPolicy overrides the rule's); hash tables built here,
// once per snapshot.
void applyLoadBalancers(const v1::DestinationRule& rule, ServiceEntry& entry) {
  if (rule.traffic_policy().has_load_balancer()) entry.loadBalancer = lbPolicy(rule.traffic_policy().load_balancer());
  if (entry.loadBalancer.kind == LbPolicy::Kind::kConsistentHash) entry.hashTables[""] = hashIndex(entry, entry.loadBalancer, {});
  for (const auto& subset : rule.subsets()) {
    const LbPolicy& policy = subset.traffic_policy().has_load_balancer()
                                 ? entry.subsetLoadBalancers.emplace(subset.name(), lbPolicy(subset.traffic_policy().load_balancer())).first->second
                                 : entry.loadBalancer;
    if (policy.kind == LbPolicy::Kind::kConsistentHash) entry.hashTables[subset.name()] = hashIndex(entry, policy, toMap(subset.labels()));
  }
}

// A duration the controller loaded, or `fallback` when it was left out (zero: the controller
// refuses zero where a field allows it to be set).
std::chrono::milliseconds millis(const google::protobuf::Duration& d, std::chrono::milliseconds fallback) {
  if (d.seconds() == 0 && d.nanos() == 0) return fallback;
  return std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(d));
}

// Istio's outlierDetection with its defaults filled in (proxy/outlier_detection.h).
OutlierPolicy outlierPolicy(const v1::OutlierDetection& od) {
  OutlierPolicy p;
  p.enabled = true;
  if (od.has_consecutive_5xx_errors()) p.consecutive5xx = od.consecutive_5xx_errors();
  p.consecutiveGateway = od.consecutive_gateway_errors();
  if (od.has_consecutive_local_origin_failures()) p.consecutiveLocalOrigin = od.consecutive_local_origin_failures();
  p.splitLocalOrigin = od.split_external_local_origin_errors();
  p.interval = millis(od.interval(), p.interval);
  p.baseEjection = millis(od.base_ejection_time(), p.baseEjection);
  if (od.has_max_ejection_percent()) p.maxEjectionPercent = static_cast<uint32_t>(od.max_ejection_percent());
  p.minHealthPercent = static_cast<uint32_t>(od.min_health_percent());
  return p;
}

// The DestinationRule's outlierDetection for the service and the subsets that set their own.
void applyOutlierDetection(const v1::DestinationRule& rule, ServiceEntry& entry) {
  if (rule.traffic_policy().has_outlier_detection()) entry.outlier = outlierPolicy(rule.traffic_policy().outlier_detection());
  for (const auto& subset : rule.subsets()) {
    if (subset.traffic_policy().has_outlier_detection()) {
      entry.subsetOutliers[subset.name()] = outlierPolicy(subset.traffic_policy().outlier_detection());
    }
  }
}

// Istio's connectionPool: 0 (or absent) leaves a limit at Istio's 2^32-1, unlimited.
ConnectionPoolPolicy connectionPoolPolicy(const v1::ConnectionPoolSettings& cp) {
  ConnectionPoolPolicy p;
  auto limit = [](int32_t v) { return v > 0 ? static_cast<uint32_t>(v) : ConnectionPoolPolicy::kUnlimited; };
  p.maxConnections = limit(cp.tcp().max_connections());
  p.maxPendingRequests = limit(cp.http().http1_max_pending_requests());
  p.maxRequests = limit(cp.http().http2_max_requests());
  p.maxRetries = limit(cp.http().max_retries());
  p.maxRequestsPerConnection = static_cast<uint32_t>(std::max(cp.http().max_requests_per_connection(), 0));
  p.connectTimeout = millis(cp.tcp().connect_timeout(), std::chrono::milliseconds{0});
  // Set to 0s, an idle timeout is off; unset, the default stands (presence tells them apart).
  auto exact = [](const google::protobuf::Duration& d) {
    return std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(d));
  };
  UpstreamConnectionPolicy& c = p.connections;
  if (cp.tcp().has_idle_timeout()) c.tcpIdleTimeout = exact(cp.tcp().idle_timeout());
  if (cp.http().has_idle_timeout()) c.httpIdleTimeout = exact(cp.http().idle_timeout());
  c.maxConnectionDuration = millis(cp.tcp().max_connection_duration(), std::chrono::milliseconds{0});
  if (cp.tcp().has_tcp_keepalive()) {
    const auto& k = cp.tcp().tcp_keepalive();
    c.keepalive = TcpKeepalive{k.probes(), std::chrono::seconds(k.time().seconds()), std::chrono::seconds(k.interval().seconds())};
  }
  c.maxConcurrentStreams = static_cast<uint32_t>(std::max(cp.http().max_concurrent_streams(), 0));
  return p;
}

// The DestinationRule's connectionPool for the service and for each subset (its own, or the
// service's): every subset is a destination of its own with its own counts (Envoy's cluster
// per subset). Breakers come from `breakers` (null: none, limits are not counted), by
// destination name, which lands in `used`.
void applyConnectionPools(const v1::DestinationRule& rule, ServiceEntry& entry, CircuitBreakers* breakers,
                          std::set<std::string>& used) {
  auto attach = [&](DestinationPool& pool, const std::string& subset) {
    if (breakers == nullptr || !pool.policy.countsAnything()) return;
    std::string destination = entry.key + "/" + subset;
    pool.breaker = breakers->get(destination);
    used.insert(std::move(destination));
  };
  if (rule.traffic_policy().has_connection_pool()) entry.pool.policy = connectionPoolPolicy(rule.traffic_policy().connection_pool());
  attach(entry.pool, "");
  for (const auto& subset : rule.subsets()) {
    DestinationPool pool{subset.traffic_policy().has_connection_pool()
                             ? connectionPoolPolicy(subset.traffic_policy().connection_pool())
                             : entry.pool.policy,
                         nullptr};
    attach(pool, subset.name());
    entry.subsetPools.emplace(subset.name(), std::move(pool));
  }
}

// A LocalRateLimit as the data path applies it, its shared buckets made (from the node's, so
// they keep their tokens across updates, or new ones without a node).
std::shared_ptr<const RateLimitEntry> rateLimitEntry(const v1::LocalRateLimit& limit, NodeTrafficState* node) {
  auto entry = std::make_shared<RateLimitEntry>();
  entry->key = limit.namespace_() + "/" + limit.name() + "/";
  entry->bucket = {limit.max_tokens(), limit.tokens_per_fill(),
                   std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(limit.fill_interval()))};
  entry->routes = {limit.routes().begin(), limit.routes().end()};
  entry->perSourcePrincipal = limit.per_source_principal();
  if (entry->perSourcePrincipal) return entry;
  auto now = std::chrono::steady_clock::now();
  std::vector<std::string> routes = entry->routes.empty() ? std::vector<std::string>{""}
                                                          : std::vector<std::string>(entry->routes.begin(), entry->routes.end());
  for (const auto& route : routes) {
    std::string key = *rateLimitKey(*entry, route, "");
    entry->buckets[key] = node != nullptr ? node->rateLimiters.get(key, entry->bucket, now)
                                          : std::make_shared<TokenBucket>(entry->bucket, now);
  }
  return entry;
}

ServiceEntry::Protocol portProtocol(const std::string& protocol) {
  if (protocol == "HTTP") return ServiceEntry::Protocol::kHttp;
  if (protocol == "HTTP2") return ServiceEntry::Protocol::kHttp2;
  if (protocol == "GRPC") return ServiceEntry::Protocol::kGrpc;
  return ServiceEntry::Protocol::kTcp;
}

l7::HttpRouteTable defaultRoutes(const std::string& hostname) {
  l7::HttpRouteTable table;
  l7::HttpRouteRule rule;
  rule.name = "default";
  rule.targets.push_back({hostname, "", {}, 0, 100});
  table.rules.push_back(std::move(rule));
  return table;
}

}  // namespace

Result<ConfigSnapshot> buildSnapshot(const std::map<std::string, v1::Resource>& resources, NodeTrafficState* node) {
  ConfigSnapshot snapshot;
  CircuitBreakers* breakers = node != nullptr ? &node->breakers : nullptr;
  std::set<std::string> breakersUsed;
  std::set<std::string> rateLimitKeys;  // the LocalRateLimits' key prefixes
  snapshot.resourceCount = resources.size();
  std::map<std::string, const v1::DestinationRule*> rules;  // by FQDN host
  std::vector<const v1::VirtualService*> routes;
  std::map<std::string, const v1::LocalRateLimit*> limits;  // by FQDN host
  for (const auto& [_, r] : resources) {
    if (r.has_destination_rule()) rules[fqdn(r.destination_rule().host(), r.destination_rule().namespace_())] = &r.destination_rule();
    if (r.has_virtual_service()) routes.push_back(&r.virtual_service());
    // One LocalRateLimit per host: the first by resource name (analyze reports the others).
    if (r.has_local_rate_limit()) limits.emplace(fqdn(r.local_rate_limit().host(), r.local_rate_limit().namespace_()), &r.local_rate_limit());
    if (r.has_revoked_nodes()) {
      for (const auto& [revoked, at] : r.revoked_nodes().revoked_at_unix()) snapshot.revokedNodes[revoked] = at;
    }
  }
  for (const auto& [name, r] : resources) {
    if (r.has_workload()) {
      const v1::Workload& w = r.workload();
      auto entry = std::make_shared<WorkloadEntry>(WorkloadEntry{w.uid(), w.name(), w.namespace_(), w.service_account(),
                                                                 w.node(), toMap(w.labels()), {},
                                                                 {w.locality().region(), w.locality().zone(), w.locality().subzone()}});
      for (const auto& a : w.addresses()) {
        auto address = SocketAddress::fromIp(a, 0);
        if (!address) return fail(fmt::format("Workload {}/{}: address {}: {}", w.namespace_(), w.name(), a, address.error().message()));
        entry->addresses.push_back(address->ip());
        // Two workloads on one address: either could be taken for the other (its identity,
        // its policy), so the snapshot is refused rather than letting the last one win.
        auto [claimed, fresh] = snapshot.workloadsByIp.emplace(address->ip(), entry);
        if (!fresh) {
          return fail(fmt::format("Workload {}/{}: address {} is also Workload {}/{}'s", w.namespace_(), w.name(), a,
                                  claimed->second->ns, claimed->second->name));
        }
      }
    }
    if (r.has_authorization_policy()) {
      snapshot.authorizationPolicies.push_back(std::make_shared<const v1::AuthorizationPolicy>(r.authorization_policy()));
    }
    if (r.has_peer_authentication()) {
      snapshot.peerAuthentications.push_back(std::make_shared<const v1::PeerAuthentication>(r.peer_authentication()));
    }
  }
  for (const auto& [name, r] : resources) {
    if (!r.has_service()) continue;
    const v1::Service& s = r.service();
    auto entry = std::make_shared<ServiceEntry>();
    entry->key = s.namespace_() + "/" + s.name();
    entry->hostname = s.hostname();
    for (const auto& p : s.ports()) {
      entry->ports.push_back({static_cast<uint16_t>(p.port()), static_cast<uint16_t>(p.target_port()), portProtocol(p.protocol())});
    }
    std::set<std::string> hosts;
    for (const auto& e : s.endpoints()) {
      auto workload = snapshot.workloadsByIp.find(e.address());
      std::string host = workload != snapshot.workloadsByIp.end() ? workload->second->ns + "/" + workload->second->name : e.address();
      hosts.insert(host);
      ServiceEntry::Endpoint endpoint{e.address(), toMap(e.labels()), e.weight() == 0 ? 1u : e.weight(), std::move(host)};
      if (workload != snapshot.workloadsByIp.end()) {
        endpoint.node = workload->second->node;
        endpoint.locality = workload->second->locality;
      }
      entry->endpoints.push_back(std::move(endpoint));
    }
    if (s.traffic_distribution() == "PreferSameNode") entry->trafficDistribution = TrafficDistribution::kPreferSameNode;
    else if (!s.traffic_distribution().empty()) entry->trafficDistribution = TrafficDistribution::kPreferSameZone;
    entry->hostCount = hosts.size();
    const v1::DestinationRule* rule = rules.contains(s.hostname()) ? rules[s.hostname()] : nullptr;
    if (rule != nullptr) {
      if (rule->traffic_policy().has_retry_budget()) entry->retryBudget = retryBudgetPolicy(rule->traffic_policy().retry_budget());
      for (const auto& subset : rule->subsets()) {
        if (subset.traffic_policy().has_retry_budget()) {
          entry->subsetRetryBudgets[subset.name()] = retryBudgetPolicy(subset.traffic_policy().retry_budget());
        }
      }
      applyLoadBalancers(*rule, *entry);
      applyOutlierDetection(*rule, *entry);
      applyConnectionPools(*rule, *entry, breakers, breakersUsed);
    }
    if (auto limit = limits.find(s.hostname()); limit != limits.end()) {
      entry->rateLimit = rateLimitEntry(*limit->second, node);
      rateLimitKeys.insert(entry->rateLimit->key);
    }
    // Per request (HTTP ports): the first VirtualService's http routes, or one route to itself.
    entry->httpRoutes = std::make_shared<const l7::HttpRouteTable>(defaultRoutes(s.hostname()));
    for (const auto* vs : routes) {
      bool forThis = false;
      for (const auto& h : vs->hosts()) forThis = forThis || hostNames(h, vs->namespace_(), s);
      if (!forThis || vs->http_size() == 0) continue;
      auto table = l7::compileRoutes(
          *vs, [vs](const std::string& host) { return fqdn(host, vs->namespace_()); },
          [&rules](const std::string& host, const std::string& subset) -> Result<std::map<std::string, std::string>> {
            auto defined = rules.find(host);
            if (defined != rules.end()) {
              for (const auto& sub : defined->second->subsets()) {
                if (sub.name() == subset) return toMap(sub.labels());
              }
            }
            return fail(fmt::format("subset {} of {} is defined by no DestinationRule", subset, host));
          });
      if (!table) return fail(table.error().message());
      entry->httpRoutes = std::make_shared<const l7::HttpRouteTable>(std::move(*table));
      break;
    }
    // The L4 split: the first VirtualService for this host; its first tcp route, else its last
    // http route without matches (the default route), per connection.
    for (const auto* vs : routes) {
      bool forThis = false;
      for (const auto& h : vs->hosts()) forThis = forThis || hostNames(h, vs->namespace_(), s);
      if (!forThis) continue;
      const google::protobuf::RepeatedPtrField<v1::RouteDestination>* destinations = nullptr;
      if (vs->tcp_size() > 0) {
        destinations = &vs->tcp(0).route();
      } else {
        for (const auto& h : vs->http()) {
          if (h.match_size() == 0) destinations = &h.route();
        }
      }
      if (destinations == nullptr) break;
      for (const auto& d : *destinations) {
        ServiceEntry::Split split;
        split.subset = d.destination().subset();
        split.weight = destinations->size() == 1 && d.weight() == 0 ? 100 : d.weight();
        if (fqdn(d.destination().host(), vs->namespace_()) != s.hostname()) {
          return fail(fmt::format("VirtualService {}/{}: routing {} to another service ({}) is not supported at L4 yet",
                                  vs->namespace_(), vs->name(), s.hostname(), d.destination().host()));
        }
        if (!split.subset.empty()) {
          bool found = false;
          if (rule != nullptr) {
            for (const auto& sub : rule->subsets()) {
              if (sub.name() == split.subset) {
                split.labels = toMap(sub.labels());
                found = true;
              }
            }
          }
          if (!found) {
            return fail(fmt::format("VirtualService {}/{} routes to subset {} of {}, which no DestinationRule defines",
                                    vs->namespace_(), vs->name(), split.subset, s.hostname()));
          }
        }
        entry->splits.push_back(std::move(split));
      }
      break;
    }
    snapshot.servicesByHost[entry->hostname] = entry;
    for (const auto& vip : s.vips()) {
      for (const auto& p : entry->ports) {
        auto address = SocketAddress::fromIp(vip, p.port);
        if (!address) return fail(fmt::format("Service {}: VIP {}: {}", entry->key, vip, address.error().message()));
        snapshot.servicesByVip[address->toString()] = entry;
      }
    }
  }
  // Only after the snapshot could be built: a refused one must not drop the breakers the
  // snapshot in force still counts with.
  if (breakers != nullptr) breakers->retainOnly(breakersUsed);
  if (node != nullptr) node->rateLimiters.retainPrefixes(rateLimitKeys);
  return snapshot;
}

}  // namespace sluice::ztunnel
