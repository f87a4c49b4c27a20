#include "analyze/analyzer.h"

#include <fmt/format.h>

#include <map>
#include <set>

namespace sluice::controller {
namespace v1 = config::v1;
namespace {

using Severity = Finding::Severity;

bool labelsMatch(const google::protobuf::Map<std::string, std::string>& selector,
                 const google::protobuf::Map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

// Resolves a host as Istio does: a short name is relative to the referring object's namespace.
std::string fqdn(const std::string& host, const std::string& ns) {
  if (host.find('.') != std::string::npos) return host;
  return fmt::format("{}.{}.svc.cluster.local", host, ns);
}

double seconds(const google::protobuf::Duration& d) { return double(d.seconds()) + d.nanos() / 1e9; }

bool isIdempotentMethod(const std::string& m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" || m == "TRACE";
}

// Whether every request `later` matches is also matched by `earlier` (so `later` never runs).
bool matchCovers(const v1::HttpMatchRequest& earlier, const v1::HttpMatchRequest& later) {
  if (earlier.has_uri()) {
    if (!later.has_uri()) return false;
    const auto& e = earlier.uri();
    const auto& l = later.uri();
    if (e.has_exact()) {
      if (!(l.has_exact() && l.exact() == e.exact())) return false;
    } else if (e.has_prefix()) {
      std::string ls = l.has_exact() ? l.exact() : l.has_prefix() ? l.prefix() : "";
      if (l.has_regex() || ls.rfind(e.prefix(), 0) != 0) return false;
    } else {
      return false;  // regexes are not compared
    }
  }
  if (earlier.has_method() && !(later.has_method() && later.method().SerializeAsString() == earlier.method().SerializeAsString())) {
    return false;
  }
  for (const auto& [name, m] : earlier.headers()) {
    auto it = later.headers().find(name);
    if (it == later.headers().end() || it->second.SerializeAsString() != m.SerializeAsString()) return false;
  }
  return earlier.port() == 0 || earlier.port() == later.port();
}

bool routeCovers(const v1::HttpRoute& earlier, const v1::HttpRoute& later) {
  if (earlier.match_size() == 0) return true;  // a catch-all shadows everything after it
  if (later.match_size() == 0) return false;
  for (const auto& l : later.match()) {
    bool covered = false;
    for (const auto& e : earlier.match()) covered = covered || matchCovers(e, l);
    if (!covered) return false;
  }
  return true;
}

class Analyzer {
 public:
  explicit Analyzer(const ConfigSet& config) : config_(config) {
    for (const auto* s : config.services()) services_[s->hostname()] = s;
    for (const auto& [name, loaded] : config.resources) {
      if (loaded.resource.has_destination_rule()) {
        const auto& dr = loaded.resource.destination_rule();
        rules_[fqdn(dr.host(), dr.namespace_())] = &dr;
      }
      if (loaded.resource.has_virtual_service()) {
        const auto& vs = loaded.resource.virtual_service();
        for (const auto& h : vs.hosts()) routesByHost_[fqdn(h, vs.namespace_())].push_back(&vs);
      }
    }
  }

  std::vector<Finding> run() {
    for (const auto& [name, loaded] : config_.resources) {
      const auto& r = loaded.resource;
      std::string object = name.substr(0, name.find('/')) + " " + name.substr(name.find('/') + 1);
      if (r.has_destination_rule()) checkDestinationRule(loaded.file, object, r.destination_rule());
      if (r.has_virtual_service()) checkVirtualService(loaded.file, object, r.virtual_service());
      if (r.has_authorization_policy()) {
        checkSelector(loaded.file, object, r.authorization_policy().namespace_(), r.authorization_policy().selector());
      }
      if (r.has_peer_authentication()) {
        checkSelector(loaded.file, object, r.peer_authentication().namespace_(), r.peer_authentication().selector());
      }
      if (r.has_local_rate_limit()) checkLocalRateLimit(loaded.file, object, r.local_rate_limit());
    }
    return std::move(findings_);
  }

 private:
  void add(Severity severity, std::string code, const std::string& file, const std::string& object, std::string field,
           std::string message) {
    findings_.push_back({severity, std::move(code), file, object, std::move(field), std::move(message)});
  }

  void checkDestinationRule(const std::string& file, const std::string& object, const v1::DestinationRule& dr) {
    auto service = services_.find(fqdn(dr.host(), dr.namespace_()));
    if (service == services_.end()) {
      add(Severity::kError, "host-not-found", file, object, "spec.host",
          fmt::format("no Service has host {}: this rule applies to nothing", fqdn(dr.host(), dr.namespace_())));
      return;
    }
    checkTrafficPolicy(file, object, dr.traffic_policy(), dr.traffic_policy().has_outlier_detection(), "spec.trafficPolicy");
    for (int i = 0; i < dr.subsets_size(); ++i) {
      const auto& subset = dr.subsets(i);
      checkTrafficPolicy(file, object, subset.traffic_policy(),
                         subset.traffic_policy().has_outlier_detection() || dr.traffic_policy().has_outlier_detection(),
                         fmt::format("spec.subsets[{}].trafficPolicy", i));
      bool any = false;
      for (const auto& e : service->second->endpoints()) any = any || labelsMatch(subset.labels(), e.labels());
      if (!any) {
        add(Severity::kError, "subset-matches-nothing", file, object, fmt::format("spec.subsets[{}]", i),
            fmt::format("subset {} selects no endpoint of {}: traffic routed to it has nowhere to go and fails",
                        subset.name(), service->first));
      }
    }
  }

  // `outlierDetection`: the policy's own or the one it inherits.
  void checkTrafficPolicy(const std::string& file, const std::string& object, const v1::TrafficPolicy& policy,
                          bool outlierDetection, const std::string& path) {
    const auto& locality = policy.load_balancer().locality_lb_setting();
    bool localityOn = policy.load_balancer().has_locality_lb_setting() && (!locality.has_enabled() || locality.enabled());
    if (localityOn && !outlierDetection) {
      add(Severity::kWarning, "locality-without-outlier-detection", file, object, path + ".loadBalancer.localityLbSetting",
          "localityLbSetting is in force only with outlierDetection (as in Istio): without it, traffic is not kept "
          "local and never fails over");
    }
    // A budget that limits nothing lets retries multiply the load of a failing destination.
    if (policy.has_retry_budget() && policy.retry_budget().has_percent() && policy.retry_budget().percent() >= 100) {
      add(Severity::kWarning, "retry-budget-disabled", file, object, path + ".retryBudget.percent",
          "a retry budget of 100% limits nothing: when the destination fails, every request may be retried and "
          "the load on it multiplies (Sluice's default is 20%)");
    }
    const auto& od = policy.outlier_detection();
    if (policy.has_outlier_detection() && od.has_max_ejection_percent() && od.max_ejection_percent() == 100 &&
        od.min_health_percent() == 0) {
      add(Severity::kWarning, "eject-every-endpoint", file, object, path + ".outlierDetection.maxEjectionPercent",
          "maxEjectionPercent 100 with minHealthPercent 0 lets every endpoint be ejected at once; traffic then goes to "
          "all of them again (panic), so ejection protects nothing when it matters most");
    }
  }

  void checkDestination(const std::string& file, const std::string& object, const std::string& ns,
                        const v1::Destination& d, const std::string& field) {
    std::string host = fqdn(d.host(), ns);
    if (!services_.contains(host)) {
      add(Severity::kError, "host-not-found", file, object, field + ".host",
          fmt::format("no Service has host {}: requests routed here fail", host));
      return;
    }
    if (d.subset().empty()) return;
    auto rule = rules_.find(host);
    bool defined = false;
    if (rule != rules_.end()) {
      for (const auto& s : rule->second->subsets()) defined = defined || s.name() == d.subset();
    }
    if (!defined) {
      add(Severity::kError, "subset-not-defined", file, object, field + ".subset",
          fmt::format("no DestinationRule for {} defines subset {}: requests routed here fail", host, d.subset()));
    }
  }

  void checkVirtualService(const std::string& file, const std::string& object, const v1::VirtualService& vs) {
    for (int i = 0; i < vs.http_size(); ++i) {
      const auto& route = vs.http(i);
      std::string path = fmt::format("spec.http[{}]", i);
      for (int d = 0; d < route.route_size(); ++d) {
        checkDestination(file, object, vs.namespace_(), route.route(d).destination(), fmt::format("{}.route[{}].destination", path, d));
      }
      if (route.has_retries() && route.retries().attempts() > 0) {
        bool onlyIdempotent = route.match_size() > 0;
        for (const auto& m : route.match()) {
          onlyIdempotent = onlyIdempotent && m.has_method() && m.method().has_exact() && isIdempotentMethod(m.method().exact());
        }
        if (!onlyIdempotent) {
          add(Severity::kWarning, "retry-non-idempotent", file, object, path + ".retries",
              "retries on a route that POST and PATCH requests can take: a retried request may be applied twice "
              "(match on idempotent methods, or set attempts: 0)");
        }
        if (route.has_timeout() && route.retries().has_per_try_timeout()) {
          double total = route.retries().attempts() * seconds(route.retries().per_try_timeout());
          if (total > seconds(route.timeout())) {
            add(Severity::kWarning, "retries-exceed-timeout", file, object, path + ".retries",
                fmt::format("{} attempts x {:g}s per try = {:g}s exceeds the route timeout of {:g}s: the last "
                            "attempts can never complete",
                            route.retries().attempts(), seconds(route.retries().per_try_timeout()), total,
                            seconds(route.timeout())));
          }
        }
      }
      // `mirror`, or each of `mirrors`: a destination that exists, and one a copy can safely reach.
      std::vector<std::pair<const v1::Destination*, std::string>> mirrors;
      if (route.has_mirror()) mirrors.emplace_back(&route.mirror(), path + ".mirror");
      for (int m = 0; m < route.mirrors_size(); ++m) {
        mirrors.emplace_back(&route.mirrors(m).destination(), fmt::format("{}.mirrors[{}].destination", path, m));
      }
      for (const auto& [mirror, field] : mirrors) {
        auto target = services_.find(fqdn(mirror->host(), vs.namespace_()));
        if (target == services_.end()) {
          checkDestination(file, object, vs.namespace_(), *mirror, field);
        } else if (!target->second->mirror_safe()) {
          add(Severity::kWarning, "mirror-side-effects", file, object, field,
              fmt::format("mirroring to {}, which is not annotated {}: \"true\": every mirrored request is executed "
                          "there for real (writes happen twice)",
                          target->first, "sluice.io/mirror-safe"));
        }
      }
      for (int j = 0; j < i; ++j) {
        if (routeCovers(vs.http(j), route)) {
          add(Severity::kWarning, "route-shadowed", file, object, path,
              fmt::format("every request this route matches is already taken by spec.http[{}]: it never applies", j));
          break;
        }
      }
    }
    for (int i = 0; i < vs.tcp_size(); ++i) {
      for (int d = 0; d < vs.tcp(i).route_size(); ++d) {
        checkDestination(file, object, vs.namespace_(), vs.tcp(i).route(d).destination(),
                         fmt::format("spec.tcp[{}].route[{}].destination", i, d));
      }
    }
  }

  void checkLocalRateLimit(const std::string& file, const std::string& object, const v1::LocalRateLimit& limit) {
    std::string host = fqdn(limit.host(), limit.namespace_());
    auto service = services_.find(host);
    if (service == services_.end()) {
      add(Severity::kError, "host-not-found", file, object, "spec.host",
          fmt::format("no Service has host {}: this limit applies to nothing", host));
      return;
    }
    // The tunnel keeps the first by name (the resources' order); a second is dead weight.
    auto [first, inserted] = rateLimitsByHost_.emplace(host, object);
    if (!inserted) {
      add(Severity::kError, "duplicate-rate-limit", file, object, "spec.host",
          fmt::format("{} already limits {}: only one LocalRateLimit per host applies (that one)", first->second, host));
    }
    bool http = false;
    for (const auto& p : service->second->ports()) http = http || p.protocol() != "TCP";
    if (!http) {
      add(Severity::kWarning, "rate-limit-on-tcp", file, object, "spec.host",
          fmt::format("{} has no HTTP, HTTP2 or GRPC port: requests are limited only on those, so this limits nothing", host));
    }
    std::set<std::string> names;
    for (const auto* vs : routesByHost_[host]) {
      for (const auto& route : vs->http()) names.insert(route.name());
    }
    for (int i = 0; i < limit.routes_size(); ++i) {
      if (!names.contains(limit.routes(i))) {
        add(Severity::kError, "route-not-found", file, object, fmt::format("spec.routes[{}]", i),
            fmt::format("no VirtualService for {} has an http route named {}: this part of the limit applies to nothing",
                        host, limit.routes(i)));
      }
    }
  }

  void checkSelector(const std::string& file, const std::string& object, const std::string& ns,
                     const v1::WorkloadSelector& selector) {
    if (selector.match_labels().empty()) return;  // namespace-wide
    for (const auto* w : config_.workloads()) {
      if (w->namespace_() == ns && labelsMatch(selector.match_labels(), w->labels())) return;
    }
    add(Severity::kWarning, "selects-nothing", file, object, "spec.selector",
        fmt::format("no workload in namespace {} has these labels: the policy has no effect (a typo?)", ns));
  }

  const ConfigSet& config_;
  std::map<std::string, const v1::Service*> services_;
  std::map<std::string, const v1::DestinationRule*> rules_;
  std::map<std::string, std::vector<const v1::VirtualService*>> routesByHost_;  // by FQDN host
  std::map<std::string, std::string> rateLimitsByHost_;  // the LocalRateLimit kept per FQDN host
  std::vector<Finding> findings_;
};

}  // namespace

std::string Finding::format() const {
  return fmt::format("{} [{}] {}: {}: {}: {}", severity == Severity::kError ? "ERROR" : "WARNING", code, file, object,
                     field, message);
}

std::vector<Finding> analyze(const ConfigSet& config) { return Analyzer(config).run(); }

}  // namespace sluice::controller
