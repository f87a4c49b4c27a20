#include "admin/admin_views.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <limits>
#include <span>

namespace sluice::ztunnel {
using nlohmann::json;

namespace {

// "ROUND_ROBIN", "RANDOM", "LEAST_REQUEST", or "consistentHash(header x-user, ringHash)".
std::string describe(const LbPolicy& p) {
  switch (p.kind) {
    case LbPolicy::Kind::kRoundRobin: return "ROUND_ROBIN";
    case LbPolicy::Kind::kRandom: return "RANDOM";
    case LbPolicy::Kind::kLeastRequest: return "LEAST_REQUEST";
    case LbPolicy::Kind::kConsistentHash: break;
  }
  const char* key = p.key == LbPolicy::HashKey::kHeader       ? "header "
                    : p.key == LbPolicy::HashKey::kCookie     ? "cookie "
                    : p.key == LbPolicy::HashKey::kSourceIp   ? "sourceIp"
                                                              : "query ";
  return fmt::format("consistentHash({}{}, {})", key, p.keyName, p.algorithm == LbPolicy::Algorithm::kMaglev ? "maglev" : "ringHash");
}

// The locality preference in force for a destination, "" when none (proxy/locality.h).
std::string describeLocality(const LbPolicy& lb, const OutlierPolicy& outlier, TrafficDistribution distribution) {
  if (localityLbInForce(lb.locality, outlier.enabled)) {
    const LocalityLbPolicy& l = lb.locality;
    if (!l.distribute.empty()) return "localityLbSetting distribute";
    if (!l.failoverPriority.empty()) return fmt::format("localityLbSetting failoverPriority [{}]", fmt::join(l.failoverPriority, ", "));
    return l.failover.empty() ? "localityLbSetting failover" : "localityLbSetting failover (with region failover)";
  }
  switch (distribution) {
    case TrafficDistribution::kAny: return "";
    case TrafficDistribution::kPreferSameZone: return "trafficDistribution PreferSameZone";
    case TrafficDistribution::kPreferSameNode: return "trafficDistribution PreferSameNode";
  }
  return "";
}

// Istio's field names, the defaults filled in.
json describe(const OutlierPolicy& p) {
  return {{"consecutive5xxErrors", p.consecutive5xx},
          {"consecutiveGatewayErrors", p.consecutiveGateway},
          {"consecutiveLocalOriginFailures", p.consecutiveLocalOrigin},
          {"splitExternalLocalOriginErrors", p.splitLocalOrigin},
          {"intervalMs", p.interval.count()},
          {"baseEjectionTimeMs", p.baseEjection.count()},
          {"maxEjectionPercent", p.maxEjectionPercent},
          {"minHealthPercent", p.minHealthPercent}};
}

// Istio's field names; unlimited (2^32-1) and maxRequestsPerConnection 0 as Istio prints them.
json describe(const ConnectionPoolPolicy& p) {
  const UpstreamConnectionPolicy& c = p.connections;
  return {{"maxConnections", p.maxConnections},
          {"http1MaxPendingRequests", p.maxPendingRequests},
          {"http2MaxRequests", p.maxRequests},
          {"maxRetries", p.maxRetries},
          {"maxRequestsPerConnection", p.maxRequestsPerConnection},
          {"connectTimeoutMs", p.connectTimeout.count()},
          {"tcpIdleTimeoutMs", c.tcpIdleTimeout ? json(c.tcpIdleTimeout->count()) : json("tunnel default")},
          {"maxConnectionDurationMs", c.maxConnectionDuration.count()},
          {"tcpKeepalive", c.keepalive ? json{{"probes", c.keepalive->probes}, {"timeS", c.keepalive->time.count()},
                                              {"intervalS", c.keepalive->interval.count()}}
                                       : json(nullptr)},
          {"httpIdleTimeoutMs", c.upstreamIdleTimeout().count()},
          {"maxConcurrentStreams", c.maxConcurrentStreams}};
}

json countersJson(const PodCounters& c) {
  json failed = json::object();
  for (size_t i = 0; i < static_cast<size_t>(FailReason::kCount); ++i) {
    failed[failReasonName(static_cast<FailReason>(i))] = c.failed[i].load();
  }
  auto direction = [&c](Direction d) {
    size_t i = static_cast<size_t>(d);
    return json{{"opened", c.opened[i].load()}, {"closed", c.closed[i].load()},
                {"bytesFromClient", c.bytesFromClient[i].load()}, {"bytesToClient", c.bytesToClient[i].load()}};
  };
  return json{{"outbound", direction(Direction::kOutbound)}, {"inbound", direction(Direction::kInbound)},
              {"active", c.active.load()}, {"failed", failed}};
}

}  // namespace

json configDump(const std::vector<std::shared_ptr<PodRuntime>>& pods, const ConfigSnapshot& config,
                const std::vector<ConnectionInfo>& connections, const std::string& features, const IdentityView& identity,
                const NodeTrafficState* traffic) {
  json out{{"configVersion", config.version},
           {"outboundTrafficPolicy", config.outboundPolicy == ConfigSnapshot::OutboundPolicy::kAllowAny ? "ALLOW_ANY" : "REGISTRY_ONLY"},
           {"engine", features},
           {"controllerVersion", config.controllerVersion},
           {"resources", config.resourceCount}};
  json services = json::object();
  for (const auto& [vip, s] : config.servicesByVip) {
    json splits = json::array();
    for (const auto& split : s->splits) splits.push_back({{"subset", split.subset}, {"weight", split.weight}});
    json subsetPolicies = json::object();
    for (const auto& [subset, policy] : s->subsetLoadBalancers) subsetPolicies[subset] = describe(policy);
    services[vip] = {{"service", s->key}, {"endpoints", s->endpoints.size()}, {"splits", splits},
                     {"loadBalancer", describe(s->loadBalancer)}, {"subsetLoadBalancers", subsetPolicies}};
    if (s->outlier.enabled) services[vip]["outlierDetection"] = describe(s->outlier);
    if (s->retryBudget != l7::RetryBudgetPolicy{}) {
      const auto& b = s->retryBudget;
      services[vip]["retryBudget"] = {{"percent", b.ratio * 100}, {"budgetIntervalS", b.windowSeconds},
                                      {"minRetryConcurrency", b.minConcurrency ? json(*b.minConcurrency) : json(nullptr)}};
    }
    if (auto locality = describeLocality(s->loadBalancer, s->outlier, s->trafficDistribution); !locality.empty()) {
      services[vip]["locality"] = locality;
    }
    json subsetOutliers = json::object();
    for (const auto& [subset, policy] : s->subsetOutliers) subsetOutliers[subset] = describe(policy);
    if (!subsetOutliers.empty()) services[vip]["subsetOutlierDetection"] = subsetOutliers;
    if (s->pool.policy != ConnectionPoolPolicy{}) services[vip]["connectionPool"] = describe(s->pool.policy);
    json subsetPools = json::object();
    for (const auto& [subset, pool] : s->subsetPools) {
      if (pool.policy != ConnectionPoolPolicy{}) subsetPools[subset] = describe(pool.policy);
    }
    if (!subsetPools.empty()) services[vip]["subsetConnectionPools"] = subsetPools;
    // The http routes by name, with what each does besides routing (mirrors so far).
    json routes = json::array();
    for (const auto& rule : s->httpRoutes->rules) {
      json route{{"name", rule.name}};
      for (const auto& mirror : rule.mirrors) {
        route["mirrors"].push_back({{"host", mirror.target.host}, {"subset", mirror.target.subset}, {"percent", mirror.percent}});
      }
      routes.push_back(std::move(route));
    }
    if (!routes.empty()) services[vip]["httpRoutes"] = routes;
    if (const auto& limit = s->rateLimit) {
      services[vip]["localRateLimit"] = {{"name", limit->key.substr(0, limit->key.size() - 1)},
                                         {"maxTokens", limit->bucket.maxTokens},
                                         {"tokensPerFill", limit->bucket.tokensPerFill},
                                         {"fillIntervalMs", limit->bucket.fillInterval.count()},
                                         {"routes", limit->routes},
                                         {"perSourcePrincipal", limit->perSourcePrincipal}};
    }
  }
  out["services"] = services;
  if (traffic != nullptr) {
    // Endpoints outlier detection remembers: ejected ones and those on a failure streak.
    const OutlierTracker* outliers = &traffic->outliers;
    json endpoints = json::array();
    for (const auto& e : outliers->describe()) {
      endpoints.push_back({{"service", e.service}, {"host", e.host}, {"ejected", e.ejected},
                           {"ejectedForMs", e.ejectedForMs}, {"ejections", e.ejections},
                           {"consecutive5xx", e.consecutive5xx}, {"consecutiveGatewayErrors", e.consecutiveGateway},
                           {"consecutiveLocalOriginFailures", e.consecutiveLocalOrigin}});
    }
    out["outliers"] = {{"ejectionsTotal", outliers->ejectionsTotal()}, {"endpoints", endpoints}};
    // Circuit breakers: what each destination has open now and how often it overflowed.
    json breakers = json::object();
    for (const auto& b : traffic->breakers.describe()) {
      json open = json::object(), overflows = json::object();
      for (size_t i = 0; i < kPoolResourceNames.size(); ++i) {
        open[kPoolResourceNames[i]] = b.open[i];
        overflows[kPoolResourceNames[i]] = b.overflows[i];
      }
      breakers[b.destination] = {{"open", open}, {"overflows", overflows}};
    }
    out["circuitBreakers"] = breakers;
    json mirrors = json::object();
    for (const auto& [destination, c] : traffic->mirrors.counts()) {
      mirrors[destination] = {{"sent", c.sent}, {"dropped", c.dropped}, {"failed", c.failed}, {"active", c.active}};
    }
    out["mirrors"] = mirrors;
  }
  json podList = json::array();
  for (const auto& p : pods) {
    podList.push_back({{"uid", p->uid},
                       {"name", p->name},
                       {"namespace", p->ns},
                       {"serviceAccount", p->serviceAccount},
                       {"identity", p->identity},
                       {"addresses", p->addresses},
                       {"netnsCookie", p->netnsCookie},
                       {"worker", p->worker},
                       {"listeners", {"127.0.0.1:15001", "[::1]:15001", "[::]:15006", "[::]:15008"}},
                       {"draining", p->draining.load()},
                       {"counters", countersJson(p->counters)}});
  }
  out["pods"] = podList;
  json conns = json::array();
  for (const auto& c : connections) {
    conns.push_back({{"pod", c.pod}, {"direction", c.direction}, {"peer", c.peer}, {"target", c.target},
                     {"state", c.state}, {"bytesFromClient", c.bytesFromClient}, {"bytesToClient", c.bytesToClient},
                     {"protocol", c.protocol}, {"peerIdentity", c.peerIdentity}});
  }
  out["connections"] = conns;
  auto unix = [](std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  };
  json certs = json::array();
  for (const auto& c : identity.certificates) {
    certs.push_back({{"identity", c.identity}, {"serial", c.serial}, {"state", c.serial.empty() ? "pending" : "valid"},
                     {"notBefore", unix(c.notBefore)}, {"notAfter", unix(c.notAfter)}, {"refreshAt", unix(c.refreshAt)},
                     {"fetches", c.fetches}, {"failures", c.failures}, {"lastError", c.lastError}, {"pods", c.users}});
  }
  out["certificates"] = certs;
  if (const auto& n = identity.nodeCredential) {
    out["nodeCredential"] = {{"identity", n->identity}, {"serial", n->serial},  {"notBefore", unix(n->notBefore)},
                             {"notAfter", unix(n->notAfter)}, {"renewAt", unix(n->renewAt)}, {"renewals", n->renewals},
                             {"adopted", n->adopted}, {"failures", n->failures}, {"lastError", n->lastError}};
  }
  json pools = json::array();
  for (const auto& p : identity.hboneConnections) {
    pools.push_back({{"pod", p.pod}, {"role", p.role}, {"peer", p.peer}, {"peerIdentity", p.peerIdentity},
                     {"streams", p.streams}, {"established", p.established}});
  }
  out["hboneConnections"] = pools;
  return out;
}

namespace {

using prometheus::ClientMetric;

void appendWorkload(std::vector<ClientMetric::Label>& out, const std::string& side, const WorkloadLabels& w) {
  out.push_back({side + "_workload", w.workload});
  out.push_back({side + "_workload_namespace", w.ns});
  out.push_back({side + "_principal", w.principal});
  out.push_back({side + "_app", w.app});
  out.push_back({side + "_version", w.version});
  out.push_back({side + "_canonical_service", w.canonicalService});
  out.push_back({side + "_canonical_revision", w.canonicalRevision});
  out.push_back({side + "_cluster", "Kubernetes"});
}

void appendService(std::vector<ClientMetric::Label>& out, const std::string& fqdn, const std::string& name,
                   const std::string& ns) {
  out.push_back({"destination_service", fqdn});
  out.push_back({"destination_service_name", name});
  out.push_back({"destination_service_namespace", ns});
}

// Istio's label set for its request metrics, reporter="source".
std::vector<ClientMetric::Label> requestLabels(const RequestLabels& l) {
  std::vector<ClientMetric::Label> out{{"reporter", "source"}};
  appendWorkload(out, "source", l.source);
  appendWorkload(out, "destination", l.destination);
  appendService(out, l.destinationService, l.destinationServiceName, l.destinationServiceNamespace);
  out.push_back({"request_protocol", l.requestProtocol});
  out.push_back({"response_code", std::to_string(l.responseCode)});
  out.push_back({"grpc_response_status", l.grpcResponseStatus});
  out.push_back({"response_flags", l.responseFlags});
  out.push_back({"connection_security_policy", "unknown"});  // what a source reporter says
  return out;
}

ClientMetric histogram(std::vector<ClientMetric::Label> labels, const Histogram& h, std::span<const double> bounds) {
  ClientMetric m;
  m.label = std::move(labels);
  m.histogram.sample_count = h.total;
  m.histogram.sample_sum = h.sum;
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += i < h.counts.size() ? h.counts[i] : 0;
    double bound = i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back({cumulative, bound});
  }
  return m;
}

void appendTcpMetrics(const std::vector<std::shared_ptr<PodRuntime>>& pods, std::vector<prometheus::MetricFamily>& families) {
  using prometheus::MetricFamily;
  using prometheus::MetricType;
  struct Family {
    const char* name;
    const char* help;
    const std::atomic<uint64_t> TcpSeries::*field;
  } kinds[] = {
      {"istio_tcp_connections_opened_total", "TCP connections opened", &TcpSeries::opened},
      {"istio_tcp_connections_closed_total", "TCP connections closed", &TcpSeries::closed},
      {"istio_tcp_received_bytes_total", "Bytes received from the client (request direction)", &TcpSeries::received},
      {"istio_tcp_sent_bytes_total", "Bytes sent to the client (response direction)", &TcpSeries::sent},
  };
  std::vector<std::pair<TcpLabels, std::shared_ptr<const TcpSeries>>> all;
  for (const auto& p : pods) {
    auto series = p->tcp.snapshot();
    all.insert(all.end(), series.begin(), series.end());
  }
  for (const auto& k : kinds) {
    MetricFamily f{k.name, k.help, MetricType::Counter, {}};
    for (const auto& [labels, series] : all) {
      ClientMetric m;
      m.label = {{"reporter", labels.reporter}};
      appendWorkload(m.label, "source", labels.source);
      appendWorkload(m.label, "destination", labels.destination);
      appendService(m.label, labels.destinationService, labels.destinationServiceName, labels.destinationServiceNamespace);
      m.label.push_back({"request_protocol", "tcp"});
      m.label.push_back({"response_flags", "-"});
      m.label.push_back({"connection_security_policy", labels.connectionSecurityPolicy});
      m.counter.value = static_cast<double>(((*series).*(k.field)).load());
      f.metric.push_back(std::move(m));
    }
    families.push_back(std::move(f));
  }
}

void appendRequestMetrics(const std::vector<std::shared_ptr<PodRuntime>>& pods, std::vector<prometheus::MetricFamily>& families) {
  using prometheus::MetricFamily;
  using prometheus::MetricType;
  MetricFamily total{"istio_requests_total", "Requests, counted when they end", MetricType::Counter, {}};
  MetricFamily duration{"istio_request_duration_milliseconds", "Request duration", MetricType::Histogram, {}};
  MetricFamily requestBytes{"istio_request_bytes", "Request header and body bytes", MetricType::Histogram, {}};
  MetricFamily responseBytes{"istio_response_bytes", "Response header and body bytes", MetricType::Histogram, {}};
  MetricFamily dropped{"sluice_request_series_dropped_total",
                       "Requests not in istio_requests_total because the pod had too many label combinations",
                       MetricType::Counter, {}};
  for (const auto& p : pods) {
    for (const auto& [labels, series] : p->requests.snapshot()) {
      auto l = requestLabels(labels);
      ClientMetric count;
      count.label = l;
      count.counter.value = static_cast<double>(series.requests);
      total.metric.push_back(std::move(count));
      duration.metric.push_back(histogram(l, series.duration, RequestMetrics::kDurationBucketsMs));
      requestBytes.metric.push_back(histogram(l, series.requestBytes, RequestMetrics::kSizeBuckets));
      responseBytes.metric.push_back(histogram(std::move(l), series.responseBytes, RequestMetrics::kSizeBuckets));
    }
    ClientMetric d;
    d.label = {{"workload", p->name}, {"workload_namespace", p->ns}};
    d.counter.value = static_cast<double>(p->requests.dropped());
    dropped.metric.push_back(std::move(d));
  }
  for (auto* f : {&total, &duration, &requestBytes, &responseBytes, &dropped}) families.push_back(std::move(*f));
}

}  // namespace

// The exposition is prometheus-cpp's (TextSerializer); we only build the families from the
// pods' counters at scrape time (the counters live in the data path, not in a registry).
std::string prometheusText(const std::vector<std::shared_ptr<PodRuntime>>& pods, const IdentityView& identity,
                           const NodeTrafficState* traffic) {
  using prometheus::ClientMetric;
  using prometheus::MetricFamily;
  using prometheus::MetricType;
  std::vector<MetricFamily> families;
  auto sample = [](std::vector<ClientMetric::Label> labels, MetricType type, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    if (type == MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    return m;
  };
  appendTcpMetrics(pods, families);
  // Each family is filled before it joins `families` (a reference into the vector would not
  // survive the next family's insertion).
  MetricFamily failed{"sluice_tcp_connections_failed_total", "TCP connections the tunnel could not relay, by reason",
                      MetricType::Counter, {}};
  MetricFamily active{"sluice_tcp_connections_active", "Connections being relayed now", MetricType::Gauge, {}};
  for (const auto& p : pods) {
    for (size_t i = 0; i < static_cast<size_t>(FailReason::kCount); ++i) {
      failed.metric.push_back(sample({{"workload", p->name}, {"workload_namespace", p->ns},
                                      {"reason", failReasonName(static_cast<FailReason>(i))}},
                                     MetricType::Counter, static_cast<double>(p->counters.failed[i].load())));
    }
    active.metric.push_back(sample({{"workload", p->name}, {"workload_namespace", p->ns}}, MetricType::Gauge,
                                   static_cast<double>(p->counters.active.load())));
  }
  families.push_back(std::move(failed));
  families.push_back(std::move(active));
  appendRequestMetrics(pods, families);
  const auto& certificates = identity.certificates;
  if (const auto& n = identity.nodeCredential) {
    auto notAfter = std::chrono::duration_cast<std::chrono::seconds>(n->notAfter.time_since_epoch()).count();
    families.push_back(MetricFamily{"sluice_node_credential_expiry_seconds", "When the node credential expires (Unix time)",
                                    MetricType::Gauge, {sample({}, MetricType::Gauge, static_cast<double>(notAfter))}});
    families.push_back(MetricFamily{"sluice_node_credential_renewals_total", "Node credential renewals",
                                    MetricType::Counter, {sample({}, MetricType::Counter, static_cast<double>(n->renewals))}});
    families.push_back(MetricFamily{"sluice_node_credential_renewal_failures_total", "Failed node credential renewals",
                                    MetricType::Counter, {sample({}, MetricType::Counter, static_cast<double>(n->failures))}});
  }
  if (!certificates.empty()) {
    MetricFamily expiry{"sluice_certificate_expiry_seconds", "When the workload certificate expires (Unix time)",
                        MetricType::Gauge, {}};
    MetricFamily failures{"sluice_certificate_fetch_failures_total", "Failed certificate requests", MetricType::Counter, {}};
    for (const auto& c : certificates) {
      if (!c.serial.empty()) {
        auto seconds = std::chrono::duration_cast<std::chrono::seconds>(c.notAfter.time_since_epoch()).count();
        expiry.metric.push_back(sample({{"identity", c.identity}}, MetricType::Gauge, static_cast<double>(seconds)));
      }
      failures.metric.push_back(sample({{"identity", c.identity}}, MetricType::Counter, static_cast<double>(c.failures)));
    }
    families.push_back(std::move(expiry));
    families.push_back(std::move(failures));
  }
  if (traffic != nullptr) {
    const OutlierTracker* outliers = &traffic->outliers;
    families.push_back(MetricFamily{"sluice_outlier_ejections_total", "Endpoints outlier detection ejected (each time)",
                                    MetricType::Counter,
                                    {sample({}, MetricType::Counter, static_cast<double>(outliers->ejectionsTotal()))}});
    MetricFamily ejected{"sluice_outlier_ejected_endpoints", "Endpoints ejected now, by service", MetricType::Gauge, {}};
    std::map<std::string, int> byService;
    for (const auto& e : outliers->describe()) byService[e.service] += e.ejected ? 1 : 0;
    for (const auto& [service, n] : byService) {
      ejected.metric.push_back(sample({{"destination_service", service}}, MetricType::Gauge, n));
    }
    families.push_back(std::move(ejected));
    const l7::RetryBudgets* retries = &traffic->retryBudgets;
    MetricFamily sent{"sluice_retries_total", "Requests tried again, by destination service", MetricType::Counter, {}};
    MetricFamily denied{"sluice_retry_budget_denied_total", "Retries the retry budget refused, by destination service",
                        MetricType::Counter, {}};
    MetricFamily retrying{"sluice_retries_in_flight", "Retries under way now, by destination service (retryBudget's minRetryConcurrency counts these)",
                          MetricType::Gauge, {}};
    for (const auto& [service, c] : retries->counts()) {
      sent.metric.push_back(sample({{"destination_service", service}}, MetricType::Counter, static_cast<double>(c.retries)));
      denied.metric.push_back(sample({{"destination_service", service}}, MetricType::Counter, static_cast<double>(c.denied)));
      retrying.metric.push_back(sample({{"destination_service", service}}, MetricType::Gauge, static_cast<double>(c.inFlight)));
    }
    families.push_back(std::move(sent));
    families.push_back(std::move(denied));
    families.push_back(std::move(retrying));
    // Envoy's upstream_cx_overflow, upstream_rq_pending_overflow, upstream_rq_overflow,
    // upstream_rq_retry_overflow, as one family by resource.
    MetricFamily overflow{"sluice_circuit_breaker_overflow_total",
                          "Connections, requests or retries a connectionPool limit refused, by destination and resource",
                          MetricType::Counter, {}};
    MetricFamily open{"sluice_circuit_breaker_open", "What each limited destination has open now, by resource",
                      MetricType::Gauge, {}};
    for (const auto& b : traffic->breakers.describe()) {
      for (size_t i = 0; i < kPoolResourceNames.size(); ++i) {
        std::vector<ClientMetric::Label> labels{{"destination", b.destination}, {"resource", std::string(kPoolResourceNames[i])}};
        overflow.metric.push_back(sample(labels, MetricType::Counter, static_cast<double>(b.overflows[i])));
        open.metric.push_back(sample(std::move(labels), MetricType::Gauge, static_cast<double>(b.open[i])));
      }
    }
    families.push_back(std::move(overflow));
    families.push_back(std::move(open));
    MetricFamily mirrors{"sluice_mirror_requests_total",
                         "Request copies for VirtualService mirrors, by mirror destination and outcome (sent, dropped: "
                         "not sent, failed: sent and not answered)",
                         MetricType::Counter, {}};
    MetricFamily mirrorsActive{"sluice_mirror_requests_active", "Request copies in flight now, by mirror destination",
                               MetricType::Gauge, {}};
    for (const auto& [destination, c] : traffic->mirrors.counts()) {
      for (auto [outcome, n] : {std::pair{"sent", c.sent}, std::pair{"dropped", c.dropped}, std::pair{"failed", c.failed}}) {
        mirrors.metric.push_back(
            sample({{"destination_service", destination}, {"outcome", outcome}}, MetricType::Counter, static_cast<double>(n)));
      }
      mirrorsActive.metric.push_back(
          sample({{"destination_service", destination}}, MetricType::Gauge, static_cast<double>(c.active)));
    }
    families.push_back(std::move(mirrors));
    families.push_back(std::move(mirrorsActive));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace sluice::ztunnel
