// DestinationRule (networking.istio.io/v1): host, subsets and their traffic policies, with
// Istio's field names and strict checks: loadBalancer (simple, consistentHash, localityLbSetting),
// connectionPool (limits and connection lifetimes), outlierDetection and retryBudget.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <set>

#include "config/resource_parsers.h"

namespace sluice::controller {
namespace v1 = config::v1;
using R = StrictReader;

namespace {

bool isPrime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

void parseConsistentHash(const YAML::Node& node, const std::string& path, v1::LoadBalancerSettings::ConsistentHash* out, R& r) {
  if (!r.mapping(node, path,
                 {"httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName", "ringHash", "maglev", "minimumRingSize"})) {
    return;
  }
  int keys = 0;
  for (const char* key : {"httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"}) keys += node[key].IsDefined() ? 1 : 0;
  if (keys != 1) {
    return r.fail(path, "needs exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName");
  }
  if (node["httpHeaderName"]) {
    r.string(node["httpHeaderName"], R::child(path, "httpHeaderName"), out->mutable_http_header_name(), true);
    std::string& name = *out->mutable_http_header_name();
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  } else if (node["httpQueryParameterName"]) {
    r.string(node["httpQueryParameterName"], R::child(path, "httpQueryParameterName"), out->mutable_http_query_parameter_name(), true);
  } else if (node["useSourceIp"]) {
    bool use = false;
    r.boolean(node["useSourceIp"], R::child(path, "useSourceIp"), &use);
    if (!use && !r.failed()) return r.fail(R::child(path, "useSourceIp"), "must be true (false selects no hash key)");
    out->set_use_source_ip(use);
  } else {
    std::string p = R::child(path, "httpCookie");
    const YAML::Node cookie = node["httpCookie"];
    if (!r.mapping(cookie, p, {"name", "path", "ttl"})) return;
    auto* c = out->mutable_http_cookie();
    r.string(cookie["name"], R::child(p, "name"), c->mutable_name(), true);
    r.string(cookie["path"], R::child(p, "path"), c->mutable_path());
    if (cookie["ttl"]) r.duration(cookie["ttl"], R::child(p, "ttl"), c->mutable_ttl());
    bool token = !c->name().empty() && std::all_of(c->name().begin(), c->name().end(), [](unsigned char ch) {
      return std::isalnum(ch) || std::strchr("!#$%&'*+-.^_`|~", ch) != nullptr;
    });
    if (!r.failed() && !token) return r.fail(R::child(p, "name"), "must be a cookie name (RFC 6265 token characters)");
    bool cleanPath = std::none_of(c->path().begin(), c->path().end(), [](unsigned char ch) { return ch < 0x20 || ch == ';' || ch == 0x7f; });
    if (!r.failed() && !cleanPath) return r.fail(R::child(p, "path"), "must not hold ';' or control characters");
  }
  if (node["ringHash"] && node["maglev"]) return r.fail(path, "takes ringHash or maglev, not both");
  uint32_t size = 0;
  if (const YAML::Node ring = node["ringHash"]) {
    std::string p = R::child(path, "ringHash");
    if (!r.mapping(ring, p, {"minimumRingSize"})) return;
    r.unsignedInteger(ring["minimumRingSize"], R::child(p, "minimumRingSize"), &size, 1 << 20);
    out->set_algorithm(v1::LoadBalancerSettings::ConsistentHash::RING_HASH);
    out->set_minimum_ring_size(size);
  } else if (const YAML::Node maglev = node["maglev"]) {
    std::string p = R::child(path, "maglev");
    if (!r.mapping(maglev, p, {"tableSize"})) return;
    r.unsignedInteger(maglev["tableSize"], R::child(p, "tableSize"), &size, 5000011);
    if (!r.failed() && size != 0 && !isPrime(size)) return r.fail(R::child(p, "tableSize"), fmt::format("{} is not a prime", size));
    out->set_algorithm(v1::LoadBalancerSettings::ConsistentHash::MAGLEV);
    out->set_table_size(size);
  } else if (node["minimumRingSize"]) {
    r.unsignedInteger(node["minimumRingSize"], R::child(path, "minimumRingSize"), &size, 1 << 20);  // Istio's deprecated spelling
    out->set_minimum_ring_size(size);
  }
}

// A locality pattern of localityLbSetting: "region", "region/zone" or "region/zone/subzone",
// each part non-empty; "*" only as the last part (everything under what precedes it).
bool isLocalityPattern(std::string_view s) {
  int parts = 0;
  while (true) {
    size_t slash = s.find('/');
    std::string_view part = s.substr(0, slash);
    ++parts;
    if (part.empty() || parts > 3) return false;
    if (part == "*") return slash == std::string_view::npos;
    if (part.find('*') != std::string_view::npos) return false;
    if (slash == std::string_view::npos) return true;
    s.remove_prefix(slash + 1);
  }
}

void parseLocalityLbSetting(const YAML::Node& node, const std::string& path, v1::LoadBalancerSettings::LocalityLbSetting* out,
                            R& r) {
  if (!r.mapping(node, path, {"enabled", "distribute", "failover", "failoverPriority"})) return;
  if (node["enabled"]) {
    bool enabled = true;
    r.boolean(node["enabled"], R::child(path, "enabled"), &enabled);
    out->set_enabled(enabled);
  }
  if (node["distribute"] && (node["failover"] || node["failoverPriority"])) {
    return r.fail(path, "takes distribute, or failover and failoverPriority, not both (as Istio)");
  }
  if (const YAML::Node list = node["distribute"]; list && r.sequence(list, R::child(path, "distribute"))) {
    std::set<std::string> froms;
    for (size_t i = 0; i < list.size() && !r.failed(); ++i) {
      std::string p = R::index(R::child(path, "distribute"), i);
      if (!r.mapping(list[i], p, {"from", "to"})) return;
      auto* d = out->add_distribute();
      r.string(list[i]["from"], R::child(p, "from"), d->mutable_from(), true);
      if (r.failed()) return;
      if (!isLocalityPattern(d->from())) return r.fail(R::child(p, "from"), fmt::format("'{}' is not a locality (region/zone/subzone, '*' last)", d->from()));
      if (!froms.insert(d->from()).second) return r.fail(R::child(p, "from"), fmt::format("'{}' is listed twice", d->from()));
      const YAML::Node to = list[i]["to"];
      if (!to || !to.IsMap() || to.size() == 0) return r.fail(R::child(p, "to"), "must map localities to weights");
      uint32_t total = 0;
      for (const auto& entry : to) {
        std::string where = R::child(R::child(p, "to"), entry.first.IsScalar() ? entry.first.Scalar() : "?");
        if (!entry.first.IsScalar() || !isLocalityPattern(entry.first.Scalar())) {
          return r.fail(where, "is not a locality (region/zone/subzone, '*' last)");
        }
        uint32_t weight = 0;
        r.unsignedInteger(entry.second, where, &weight, 100);
        if (r.failed()) return;
        (*d->mutable_to())[entry.first.Scalar()] = weight;
        total += weight;
      }
      if (total != 100) return r.fail(R::child(p, "to"), fmt::format("weights total {}; they must total 100", total));
    }
  }
  if (const YAML::Node list = node["failover"]; list && r.sequence(list, R::child(path, "failover"))) {
    for (size_t i = 0; i < list.size() && !r.failed(); ++i) {
      std::string p = R::index(R::child(path, "failover"), i);
      if (!r.mapping(list[i], p, {"from", "to"})) return;
      auto* f = out->add_failover();
      r.string(list[i]["from"], R::child(p, "from"), f->mutable_from(), true);
      r.string(list[i]["to"], R::child(p, "to"), f->mutable_to(), true);
      if (r.failed()) return;
      for (const auto* region : {&f->from(), &f->to()}) {
        if (region->find('/') != std::string::npos || region->find('*') != std::string::npos) {
          return r.fail(p, fmt::format("'{}' is not a region (failover is between regions)", *region));
        }
      }
      if (f->from() == f->to()) return r.fail(p, fmt::format("fails region {} over to itself", f->from()));
    }
  }
  r.stringList(node["failoverPriority"], R::child(path, "failoverPriority"), out->mutable_failover_priority());
  std::set<std::string> labels;
  for (int i = 0; i < out->failover_priority_size() && !r.failed(); ++i) {
    const std::string& label = out->failover_priority(i);
    std::string p = R::index(R::child(path, "failoverPriority"), i);
    // Istio's form "label=value" overrides the client's value; not supported: the label alone.
    if (label.empty() || label.find('=') != std::string::npos) r.fail(p, fmt::format("'{}' must be a label name", label));
    else if (!labels.insert(label).second) r.fail(p, fmt::format("'{}' is listed twice", label));
  }
}

void parseLoadBalancer(const YAML::Node& lb, const std::string& p, v1::LoadBalancerSettings* out, R& r) {
  if (!r.mapping(lb, p, {"simple", "consistentHash", "localityLbSetting"})) return;
  if (lb["simple"].IsDefined() && lb["consistentHash"].IsDefined()) return r.fail(p, "takes simple or consistentHash, not both");
  if (!lb["simple"].IsDefined() && !lb["consistentHash"].IsDefined() && !lb["localityLbSetting"].IsDefined()) {
    return r.fail(p, "needs one of simple, consistentHash, localityLbSetting");
  }
  if (const YAML::Node locality = lb["localityLbSetting"]) {
    parseLocalityLbSetting(locality, R::child(p, "localityLbSetting"), out->mutable_locality_lb_setting(), r);
  }
  if (const YAML::Node hash = lb["consistentHash"]) return parseConsistentHash(hash, R::child(p, "consistentHash"), out->mutable_consistent_hash(), r);
  if (!lb["simple"].IsDefined()) return;
  std::string simple;
  r.string(lb["simple"], R::child(p, "simple"), &simple, true);
  if (simple == "ROUND_ROBIN") out->set_simple(v1::LoadBalancerSettings::ROUND_ROBIN);
  else if (simple == "RANDOM") out->set_simple(v1::LoadBalancerSettings::RANDOM);
  else if (simple == "LEAST_REQUEST") out->set_simple(v1::LoadBalancerSettings::LEAST_REQUEST);
  else if (!r.failed()) r.fail(R::child(p, "simple"), fmt::format("'{}' is not one of ROUND_ROBIN, RANDOM, LEAST_REQUEST", simple));
}

void parseTrafficPolicy(const YAML::Node& node, const std::string& path, v1::TrafficPolicy* out, R& r) {
  if (!node.IsDefined() || node.IsNull()) return;
  if (!r.mapping(node, path, {"loadBalancer", "connectionPool", "outlierDetection", "retryBudget"})) return;
  if (const YAML::Node rb = node["retryBudget"]) {
    std::string p = R::child(path, "retryBudget");
    if (!r.mapping(rb, p, {"percent", "minRetryConcurrency", "budgetInterval"})) return;
    auto* budget = out->mutable_retry_budget();
    if (const YAML::Node percent = rb["percent"]) {
      // Istio's DoubleValue: a plain number, 0 to 100.
      std::string text = percent.IsScalar() ? percent.Scalar() : "";
      char* end = nullptr;
      double value = text.empty() ? -1 : std::strtod(text.c_str(), &end);
      if (text.empty() || end != text.c_str() + text.size() || !(value >= 0 && value <= 100)) {
        return r.fail(R::child(p, "percent"), fmt::format("must be a number from 0 to 100 (got '{}')", text));
      }
      budget->set_percent(value);
    }
    if (rb["minRetryConcurrency"]) {
      uint32_t n = 0;
      r.unsignedInteger(rb["minRetryConcurrency"], R::child(p, "minRetryConcurrency"), &n, 1 << 20);
      budget->set_min_retry_concurrency(n);
    }
    if (rb["budgetInterval"]) {
      r.duration(rb["budgetInterval"], R::child(p, "budgetInterval"), budget->mutable_budget_interval());
      const auto& d = budget->budget_interval();
      // The budget counts in one-second buckets, a minute at most.
      if (!r.failed() && (d.nanos() != 0 || d.seconds() < 1 || d.seconds() > 60)) {
        r.fail(R::child(p, "budgetInterval"), "must be whole seconds from 1s to 60s");
      }
    }
  }
  if (const YAML::Node lb = node["loadBalancer"]) parseLoadBalancer(lb, R::child(path, "loadBalancer"), out->mutable_load_balancer(), r);
  if (const YAML::Node cp = node["connectionPool"]) {
    std::string p = R::child(path, "connectionPool");
    if (!r.mapping(cp, p, {"tcp", "http"})) return;
    auto* pool = out->mutable_connection_pool();
    if (const YAML::Node tcp = cp["tcp"]) {
      std::string tp = R::child(p, "tcp");
      if (!r.mapping(tcp, tp, {"maxConnections", "connectTimeout", "tcpKeepalive", "maxConnectionDuration", "idleTimeout"})) return;
      int32_t max = 0;
      auto* t = pool->mutable_tcp();
      r.integer(tcp["maxConnections"], R::child(tp, "maxConnections"), &max, 1, 1 << 30);
      t->set_max_connections(max);
      r.duration(tcp["connectTimeout"], R::child(tp, "connectTimeout"), t->mutable_connect_timeout());
      if (tcp["maxConnectionDuration"]) {
        r.duration(tcp["maxConnectionDuration"], R::child(tp, "maxConnectionDuration"), t->mutable_max_connection_duration());
        if (!r.failed() && t->max_connection_duration().seconds() == 0 && t->max_connection_duration().nanos() < 1000000) {
          r.fail(R::child(tp, "maxConnectionDuration"), "must be at least 1ms");
        }
      }
      if (tcp["idleTimeout"]) r.duration(tcp["idleTimeout"], R::child(tp, "idleTimeout"), t->mutable_idle_timeout());
      if (const YAML::Node ka = tcp["tcpKeepalive"]) {
        std::string kp = R::child(tp, "tcpKeepalive");
        if (!r.mapping(ka, kp, {"probes", "time", "interval"})) return;
        auto* k = t->mutable_tcp_keepalive();
        uint32_t probes = 0;
        r.unsignedInteger(ka["probes"], R::child(kp, "probes"), &probes, 127);  // the kernel's TCP_KEEPCNT bound
        k->set_probes(probes);
        for (auto [field, d] : {std::pair{"time", k->mutable_time()}, std::pair{"interval", k->mutable_interval()}}) {
          if (!ka[field]) continue;
          r.duration(ka[field], R::child(kp, field), d);
          // The kernel counts keepalive times in whole seconds, up to 32767.
          if (!r.failed() && (d->seconds() < 1 || d->nanos() != 0 || d->seconds() > 32767)) {
            r.fail(R::child(kp, field), "must be whole seconds from 1s to 32767s");
          }
        }
      }
    }
    if (const YAML::Node http = cp["http"]) {
      std::string hp = R::child(p, "http");
      if (!r.mapping(http, hp, {"http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection", "maxRetries",
                                "idleTimeout", "maxConcurrentStreams"})) {
        return;
      }
      int32_t v = 0;
      auto* h = pool->mutable_http();
      r.integer(http["http1MaxPendingRequests"], R::child(hp, "http1MaxPendingRequests"), &v, 1, 1 << 30);
      h->set_http1_max_pending_requests(std::exchange(v, 0));
      r.integer(http["http2MaxRequests"], R::child(hp, "http2MaxRequests"), &v, 1, 1 << 30);
      h->set_http2_max_requests(std::exchange(v, 0));
      r.integer(http["maxRequestsPerConnection"], R::child(hp, "maxRequestsPerConnection"), &v, 0, 1 << 30);
      h->set_max_requests_per_connection(std::exchange(v, 0));
      r.integer(http["maxRetries"], R::child(hp, "maxRetries"), &v, 0, 1 << 30);
      h->set_max_retries(std::exchange(v, 0));
      if (http["idleTimeout"]) r.duration(http["idleTimeout"], R::child(hp, "idleTimeout"), h->mutable_idle_timeout());
      r.integer(http["maxConcurrentStreams"], R::child(hp, "maxConcurrentStreams"), &v, 1, 0x7fffffff);
      h->set_max_concurrent_streams(v);
    }
  }
  if (const YAML::Node od = node["outlierDetection"]) {
    std::string p = R::child(path, "outlierDetection");
    if (!r.mapping(od, p, {"consecutive5xxErrors", "consecutiveGatewayErrors", "consecutiveLocalOriginFailures",
                           "splitExternalLocalOriginErrors", "interval", "baseEjectionTime", "maxEjectionPercent",
                           "minHealthPercent"})) {
      return;
    }
    auto* o = out->mutable_outlier_detection();
    uint32_t u = 0;
    if (od["consecutive5xxErrors"]) {
      r.unsignedInteger(od["consecutive5xxErrors"], R::child(p, "consecutive5xxErrors"), &u, 1 << 20);
      o->set_consecutive_5xx_errors(std::exchange(u, 0));
    }
    r.unsignedInteger(od["consecutiveGatewayErrors"], R::child(p, "consecutiveGatewayErrors"), &u, 1 << 20);
    o->set_consecutive_gateway_errors(std::exchange(u, 0));
    if (od["consecutiveLocalOriginFailures"]) {
      r.unsignedInteger(od["consecutiveLocalOriginFailures"], R::child(p, "consecutiveLocalOriginFailures"), &u, 1 << 20);
      o->set_consecutive_local_origin_failures(u);
    }
    bool split = false;
    r.boolean(od["splitExternalLocalOriginErrors"], R::child(p, "splitExternalLocalOriginErrors"), &split);
    o->set_split_external_local_origin_errors(split);
    r.duration(od["interval"], R::child(p, "interval"), o->mutable_interval());
    r.duration(od["baseEjectionTime"], R::child(p, "baseEjectionTime"), o->mutable_base_ejection_time());
    int32_t percent = 0;
    if (od["maxEjectionPercent"]) {
      r.integer(od["maxEjectionPercent"], R::child(p, "maxEjectionPercent"), &percent, 0, 100);
      o->set_max_ejection_percent(std::exchange(percent, 0));
    }
    r.integer(od["minHealthPercent"], R::child(p, "minHealthPercent"), &percent, 0, 100);
    o->set_min_health_percent(percent);
    for (auto [field, d] : {std::pair{"interval", &o->interval()}, std::pair{"baseEjectionTime", &o->base_ejection_time()}}) {
      if (od[field] && d->seconds() == 0 && d->nanos() < 1000000) r.fail(R::child(p, field), "must be at least 1ms");
    }
  }
}

}  // namespace

v1::DestinationRule parseDestinationRule(const ObjectMeta& meta, const YAML::Node& spec, R& r) {
  v1::DestinationRule dr;
  dr.set_name(meta.name);
  dr.set_namespace_(meta.ns);
  if (!r.mapping(spec, "spec", {"host", "trafficPolicy", "subsets"})) return dr;
  r.string(spec["host"], "spec.host", dr.mutable_host(), true);
  parseTrafficPolicy(spec["trafficPolicy"], "spec.trafficPolicy", dr.mutable_traffic_policy(), r);
  if (const YAML::Node subsets = spec["subsets"]; subsets && r.sequence(subsets, "spec.subsets")) {
    std::set<std::string> names;
    for (size_t i = 0; i < subsets.size() && !r.failed(); ++i) {
      std::string p = R::index("spec.subsets", i);
      if (!r.mapping(subsets[i], p, {"name", "labels", "trafficPolicy"})) break;
      auto* s = dr.add_subsets();
      r.string(subsets[i]["name"], R::child(p, "name"), s->mutable_name(), true);
      r.stringMap(subsets[i]["labels"], R::child(p, "labels"), s->mutable_labels());
      parseTrafficPolicy(subsets[i]["trafficPolicy"], R::child(p, "trafficPolicy"), s->mutable_traffic_policy(), r);
      if (!r.failed() && !names.insert(s->name()).second) {
        r.fail(R::child(p, "name"), fmt::format("subset '{}' is defined twice", s->name()));
      }
    }
  }
  return dr;
}

}  // namespace sluice::controller
