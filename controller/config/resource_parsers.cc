#include "config/resource_parsers.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "sluice/common/ip_block.h"
#include "sluice/common/k8s_names.h"
#include "sluice/common/retry_on.h"

namespace sluice::controller {
namespace v1 = config::v1;
using R = StrictReader;

namespace {

bool isIp(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// A mistyped block must be an error: in a DENY rule it would match nothing (fail open).
void checkIpBlocks(const google::protobuf::RepeatedPtrField<std::string>& blocks, const std::string& path, R& r) {
  for (int i = 0; i < blocks.size(); ++i) {
    if (auto block = parseIpBlock(blocks[i]); !block) r.fail(R::index(path, i), block.error());
  }
}

void parseSelector(const YAML::Node& node, const std::string& path, v1::WorkloadSelector* out, R& r) {
  if (!node.IsDefined() || node.IsNull()) return;
  if (!r.mapping(node, path, {"matchLabels"})) return;
  r.stringMap(node["matchLabels"], R::child(path, "matchLabels"), out->mutable_match_labels());
}

void parseStringMatch(const YAML::Node& node, const std::string& path, v1::StringMatch* out, R& r) {
  if (!r.mapping(node, path, {"exact", "prefix", "regex"})) return;
  if (node.size() != 1) return r.fail(path, "must have exactly one of exact, prefix, regex");
  if (node["exact"]) r.string(node["exact"], R::child(path, "exact"), out->mutable_exact());
  if (node["prefix"]) r.string(node["prefix"], R::child(path, "prefix"), out->mutable_prefix());
  if (node["regex"]) {
    r.string(node["regex"], R::child(path, "regex"), out->mutable_regex());
    // Compiled here as the tunnel will (RE2, Istio's syntax): a bad pattern is an error at
    // load, never a route that silently matches nothing.
    re2::RE2 compiled(out->regex(), re2::RE2::Quiet);
    if (!r.failed() && !compiled.ok()) r.fail(R::child(path, "regex"), fmt::format("is not a valid RE2 regex: {}", compiled.error()));
  }
}

void parseDestination(const YAML::Node& node, const std::string& path, v1::Destination* out, R& r) {
  if (!r.mapping(node, path, {"host", "subset", "port"})) return;
  r.string(node["host"], R::child(path, "host"), out->mutable_host(), true);
  r.string(node["subset"], R::child(path, "subset"), out->mutable_subset());
  if (node["port"]) {
    std::string portPath = R::child(path, "port");
    if (r.mapping(node["port"], portPath, {"number"})) {
      uint32_t port = 0;
      r.port(node["port"]["number"], R::child(portPath, "number"), &port, true);
      out->set_port(port);
    }
  }
}

// route: [{destination, weight}]; weights must sum to 100 when there is more than one.
void parseRouteDestinations(const YAML::Node& node, const std::string& path,
                            google::protobuf::RepeatedPtrField<v1::RouteDestination>* out, R& r) {
  if (!node.IsDefined()) return r.fail(path, "is required: at least one destination");
  if (!r.sequence(node, path)) return;
  if (node.size() == 0) return r.fail(path, "must list at least one destination");
  int total = 0;
  for (size_t i = 0; i < node.size() && !r.failed(); ++i) {
    std::string p = R::index(path, i);
    if (!r.mapping(node[i], p, {"destination", "weight"})) return;
    auto* d = out->Add();
    if (!node[i]["destination"]) return r.fail(R::child(p, "destination"), "is required");
    parseDestination(node[i]["destination"], R::child(p, "destination"), d->mutable_destination(), r);
    int32_t weight = 0;
    r.integer(node[i]["weight"], R::child(p, "weight"), &weight, 0, 100);
    d->set_weight(weight);
    total += weight;
  }
  if (!r.failed() && node.size() > 1 && total != 100) {
    r.fail(path, fmt::format("weights add up to {}, not 100: Istio rejects such a route, and traffic would be "
                             "split in proportions nobody wrote down",
                             total));
  }
}

// gRPC's status names (grpc/doc/statuscodes.md) as Istio's fault.abort.grpcStatus spells them.
std::optional<int32_t> grpcStatusCode(const std::string& name) {
  static const char* const kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                       "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                       "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  for (int32_t code = 0; code < static_cast<int32_t>(std::size(kNames)); ++code) {
    if (name == kNames[code]) return code;
  }
  return std::nullopt;
}

// Istio requires lowercase header names in matches (HTTP/2 sends them so, and HTTP/1.1 names
// compare case-insensitively): an uppercase one is a mistake that would never match.
void parseStringMatchMap(const YAML::Node& node, const std::string& path,
                         google::protobuf::Map<std::string, v1::StringMatch>* out, R& r) {
  if (!node) return;
  if (!node.IsMap()) return r.fail(path, "must be a mapping of name to {exact|prefix|regex}");
  for (const auto& entry : node) {
    std::string name = entry.first.Scalar();
    std::string p = R::child(path, name);
    if (name.empty()) return r.fail(path, "has an empty name");
    for (char c : name) {
      if (c >= 'A' && c <= 'Z') return r.fail(p, "names must be lowercase");
    }
    parseStringMatch(entry.second, p, &(*out)[name], r);
  }
}

void parseHttpMatch(const YAML::Node& node, const std::string& path, v1::HttpMatchRequest* out, R& r) {
  if (!r.mapping(node, path, {"name", "uri", "method", "headers", "port", "authority", "withoutHeaders", "queryParams",
                              "sourceLabels", "sourceNamespace"})) {
    return;
  }
  r.string(node["name"], R::child(path, "name"), out->mutable_name());
  if (node["uri"]) parseStringMatch(node["uri"], R::child(path, "uri"), out->mutable_uri(), r);
  if (node["method"]) parseStringMatch(node["method"], R::child(path, "method"), out->mutable_method(), r);
  if (node["authority"]) parseStringMatch(node["authority"], R::child(path, "authority"), out->mutable_authority(), r);
  parseStringMatchMap(node["headers"], R::child(path, "headers"), out->mutable_headers(), r);
  parseStringMatchMap(node["withoutHeaders"], R::child(path, "withoutHeaders"), out->mutable_without_headers(), r);
  if (const YAML::Node q = node["queryParams"]) {
    if (!q.IsMap()) return r.fail(R::child(path, "queryParams"), "must be a mapping of name to {exact|prefix|regex}");
    for (const auto& entry : q) {
      std::string name = entry.first.Scalar();
      parseStringMatch(entry.second, R::child(R::child(path, "queryParams"), name), &(*out->mutable_query_params())[name], r);
    }
  }
  uint32_t port = 0;
  r.port(node["port"], R::child(path, "port"), &port);
  out->set_port(port);
  r.stringMap(node["sourceLabels"], R::child(path, "sourceLabels"), out->mutable_source_labels());
  r.string(node["sourceNamespace"], R::child(path, "sourceNamespace"), out->mutable_source_namespace());
}

void parseHeaderOperations(const YAML::Node& node, const std::string& path, v1::HeaderOperations* out, R& r) {
  if (!node) return;
  if (!r.mapping(node, path, {"set", "add", "remove"})) return;
  r.stringMap(node["set"], R::child(path, "set"), out->mutable_set());
  r.stringMap(node["add"], R::child(path, "add"), out->mutable_add());
  r.stringList(node["remove"], R::child(path, "remove"), out->mutable_remove());
  auto checkName = [&](const std::string& name, const std::string& where) {
    if (name.empty() || name.find_first_of(" :\r\n\t") != std::string::npos) {
      r.fail(R::child(where, name), "is not a valid header name");
    }
  };
  for (const auto& [name, value] : out->set()) checkName(name, R::child(path, "set"));
  for (const auto& [name, value] : out->add()) checkName(name, R::child(path, "add"));
  for (const auto& name : out->remove()) checkName(name, R::child(path, "remove"));
  for (const auto* m : {&out->set(), &out->add()}) {
    for (const auto& [name, value] : *m) {
      if (value.find_first_of("\r\n") != std::string::npos || value.find('\0') != std::string::npos) {
        r.fail(R::child(path, name), "header values may not contain CR, LF or NUL");
      }
    }
  }
}

void parseHttpRoute(const YAML::Node& h, const std::string& p, v1::HttpRoute* route, R& r) {
  if (!r.mapping(h, p, {"name", "match", "route", "timeout", "retries", "fault", "mirror", "mirrorPercentage", "mirrors", "rewrite",
                        "redirect", "directResponse", "headers"})) {
    return;
  }
  r.string(h["name"], R::child(p, "name"), route->mutable_name());
  if (const YAML::Node match = h["match"]; match && r.sequence(match, R::child(p, "match"))) {
    for (size_t m = 0; m < match.size() && !r.failed(); ++m) {
      parseHttpMatch(match[m], R::index(R::child(p, "match"), m), route->add_match(), r);
    }
  }
  int actions = (h["route"] ? 1 : 0) + (h["redirect"] ? 1 : 0) + (h["directResponse"] ? 1 : 0);
  if (actions != 1) {
    return r.fail(p, "must have exactly one of route, redirect, directResponse");
  }
  if (h["route"]) parseRouteDestinations(h["route"], R::child(p, "route"), route->mutable_route(), r);
  if (const YAML::Node redirect = h["redirect"]) {
    std::string rp = R::child(p, "redirect");
    if (r.mapping(redirect, rp, {"uri", "authority", "redirectCode"})) {
      r.string(redirect["uri"], R::child(rp, "uri"), route->mutable_redirect()->mutable_uri());
      r.string(redirect["authority"], R::child(rp, "authority"), route->mutable_redirect()->mutable_authority());
      int32_t code = 301;
      r.integer(redirect["redirectCode"], R::child(rp, "redirectCode"), &code, 300, 399);
      if (!r.failed() && code != 301 && code != 302 && code != 303 && code != 307 && code != 308) {
        r.fail(R::child(rp, "redirectCode"), fmt::format("{} is not one of 301, 302, 303, 307, 308", code));
      }
      route->mutable_redirect()->set_redirect_code(static_cast<uint32_t>(code));
      if (!r.failed() && route->redirect().uri().empty() && route->redirect().authority().empty()) {
        r.fail(rp, "must set uri or authority");
      }
    }
  }
  if (const YAML::Node direct = h["directResponse"]) {
    std::string dp = R::child(p, "directResponse");
    if (r.mapping(direct, dp, {"status", "body"})) {
      int32_t status = 0;
      if (!direct["status"]) r.fail(R::child(dp, "status"), "is required");
      r.integer(direct["status"], R::child(dp, "status"), &status, 200, 599);
      route->mutable_direct_response()->set_status(static_cast<uint32_t>(status));
      if (const YAML::Node body = direct["body"]; body && r.mapping(body, R::child(dp, "body"), {"string"})) {
        r.string(body["string"], R::child(dp, "body.string"), route->mutable_direct_response()->mutable_body(), true);
        if (route->direct_response().body().size() > 64 * 1024) r.fail(R::child(dp, "body.string"), "is larger than 64 KiB");
      }
    }
  }
  if (const YAML::Node rewrite = h["rewrite"]) {
    std::string rp = R::child(p, "rewrite");
    if (r.mapping(rewrite, rp, {"uri", "authority"})) {
      r.string(rewrite["uri"], R::child(rp, "uri"), route->mutable_rewrite()->mutable_uri());
      r.string(rewrite["authority"], R::child(rp, "authority"), route->mutable_rewrite()->mutable_authority());
    }
  }
  if (const YAML::Node headers = h["headers"]) {
    std::string hp = R::child(p, "headers");
    if (r.mapping(headers, hp, {"request", "response"})) {
      parseHeaderOperations(headers["request"], R::child(hp, "request"), route->mutable_headers()->mutable_request(), r);
      parseHeaderOperations(headers["response"], R::child(hp, "response"), route->mutable_headers()->mutable_response(), r);
    }
  }
  r.duration(h["timeout"], R::child(p, "timeout"), route->mutable_timeout());
  if (const YAML::Node retries = h["retries"]) {
    std::string rp = R::child(p, "retries");
    if (r.mapping(retries, rp, {"attempts", "perTryTimeout", "retryOn"})) {
      int32_t attempts = 0;
      r.integer(retries["attempts"], R::child(rp, "attempts"), &attempts, 0, 100);
      route->mutable_retries()->set_attempts(attempts);
      r.duration(retries["perTryTimeout"], R::child(rp, "perTryTimeout"), route->mutable_retries()->mutable_per_try_timeout());
      r.string(retries["retryOn"], R::child(rp, "retryOn"), route->mutable_retries()->mutable_retry_on());
      if (auto on = parseRetryOn(route->retries().retry_on()); !on && !r.failed()) r.fail(R::child(rp, "retryOn"), on.error().message());
    }
  }
  if (const YAML::Node fault = h["fault"]) {
    std::string fp = R::child(p, "fault");
    if (r.mapping(fault, fp, {"delay", "abort"})) {
      if (const YAML::Node delay = fault["delay"]; delay && r.mapping(delay, R::child(fp, "delay"), {"fixedDelay", "percentage"})) {
        auto* d = route->mutable_fault()->mutable_delay();
        if (!delay["fixedDelay"]) r.fail(R::child(fp, "delay.fixedDelay"), "is required");
        r.duration(delay["fixedDelay"], R::child(fp, "delay.fixedDelay"), d->mutable_fixed_delay());
        double pct = 100;
        r.percentage(delay["percentage"], R::child(fp, "delay.percentage"), &pct);
        d->set_percentage(pct);
      }
      if (const YAML::Node abort = fault["abort"];
          abort && r.mapping(abort, R::child(fp, "abort"), {"httpStatus", "grpcStatus", "percentage"})) {
        auto* a = route->mutable_fault()->mutable_abort();
        int32_t status = 0;
        if (abort["httpStatus"].IsDefined() == abort["grpcStatus"].IsDefined()) {
          r.fail(R::child(fp, "abort"), "needs exactly one of httpStatus, grpcStatus");
        }
        r.integer(abort["httpStatus"], R::child(fp, "abort.httpStatus"), &status, 200, 599);
        a->set_http_status(status);
        if (abort["grpcStatus"]) {
          std::string name;
          r.string(abort["grpcStatus"], R::child(fp, "abort.grpcStatus"), &name, true);
          auto code = grpcStatusCode(name);
          if (code) a->set_grpc_status(*code);
          else if (!r.failed()) r.fail(R::child(fp, "abort.grpcStatus"), fmt::format("'{}' is not a gRPC status name (e.g. UNAVAILABLE)", name));
        }
        double pct = 100;
        r.percentage(abort["percentage"], R::child(fp, "abort.percentage"), &pct);
        a->set_percentage(pct);
      }
    }
  }
  if (h["mirror"]) parseDestination(h["mirror"], R::child(p, "mirror"), route->mutable_mirror(), r);
  double mirrorPct = 0;
  r.percentage(h["mirrorPercentage"], R::child(p, "mirrorPercentage"), &mirrorPct);
  route->set_mirror_percentage(mirrorPct);
  // The wire keeps 0 for "absent" (all requests, Istio's default); an explicit 0% mirrors
  // nothing, which is no mirror at all.
  if (h["mirrorPercentage"] && mirrorPct == 0) route->clear_mirror();
  if (const YAML::Node mirrors = h["mirrors"]) {
    std::string mp = R::child(p, "mirrors");
    if (h["mirror"] || h["mirrorPercentage"]) return r.fail(p, "takes mirror (with mirrorPercentage) or mirrors, not both");
    if (!r.sequence(mirrors, mp)) return;
    for (size_t i = 0; i < mirrors.size() && !r.failed(); ++i) {
      std::string ip = R::index(mp, i);
      if (!r.mapping(mirrors[i], ip, {"destination", "percentage"})) return;
      if (!mirrors[i]["destination"]) return r.fail(R::child(ip, "destination"), "is required");
      v1::HttpMirror mirror;
      parseDestination(mirrors[i]["destination"], R::child(ip, "destination"), mirror.mutable_destination(), r);
      double percent = 0;
      r.percentage(mirrors[i]["percentage"], R::child(ip, "percentage"), &percent);
      mirror.set_percentage(percent);
      if (!mirrors[i]["percentage"] || percent > 0) *route->add_mirrors() = std::move(mirror);
    }
  }
}

}  // namespace

ObjectMeta parseMeta(const YAML::Node& metadata, R& r) {
  ObjectMeta meta;
  // Kubernetes adds these; they are accepted and ignored because they carry no policy.
  if (!r.mapping(metadata, "metadata", {"name", "namespace", "labels", "annotations", "uid", "resourceVersion",
                                        "generation", "creationTimestamp"})) {
    return meta;
  }
  r.string(metadata["name"], "metadata.name", &meta.name, true);
  r.string(metadata["namespace"], "metadata.namespace", &meta.ns);
  r.string(metadata["uid"], "metadata.uid", &meta.uid);
  if (meta.ns.empty()) meta.ns = "default";
  r.stringMap(metadata["labels"], "metadata.labels", &meta.labels);
  r.stringMap(metadata["annotations"], "metadata.annotations", &meta.annotations);
  if (!r.failed() && !isDnsLabel(meta.name)) r.fail("metadata.name", fmt::format("'{}' is not a valid name (a-z, 0-9, '-', '.')", meta.name));
  if (!r.failed() && !isDnsLabel(meta.ns)) r.fail("metadata.namespace", fmt::format("'{}' is not a valid namespace", meta.ns));
  return meta;
}

v1::Workload parseWorkload(const ObjectMeta& meta, const YAML::Node& spec, R& r) {
  v1::Workload w;
  w.set_name(meta.name);
  w.set_namespace_(meta.ns);
  w.set_uid(meta.uid.empty() ? meta.ns + "/" + meta.name : meta.uid);
  *w.mutable_labels() = meta.labels;
  if (!r.mapping(spec, "spec", {"serviceAccount", "node", "addresses", "locality"})) return w;
  r.string(spec["serviceAccount"], "spec.serviceAccount", w.mutable_service_account());
  if (w.service_account().empty()) w.set_service_account("default");
  if (!r.failed() && !isDnsSubdomain(w.service_account())) {
    r.fail("spec.serviceAccount", fmt::format("'{}' is not a valid service account name (DNS-1123: a-z, 0-9, '-', '.')",
                                              w.service_account()));
  }
  r.string(spec["node"], "spec.node", w.mutable_node(), true);
  if (!r.failed() && !isDnsSubdomain(w.node())) {
    r.fail("spec.node", fmt::format("'{}' is not a valid node name (DNS-1123: a-z, 0-9, '-', '.')", w.node()));
  }
  r.stringList(spec["addresses"], "spec.addresses", w.mutable_addresses());
  for (int i = 0; i < w.addresses_size() && !r.failed(); ++i) {
    if (!isIp(w.addresses(i))) r.fail(R::index("spec.addresses", i), fmt::format("'{}' is not an IP address", w.addresses(i)));
  }
  if (const YAML::Node loc = spec["locality"]) {
    if (r.mapping(loc, "spec.locality", {"region", "zone", "subzone"})) {
      r.string(loc["region"], "spec.locality.region", w.mutable_locality()->mutable_region());
      r.string(loc["zone"], "spec.locality.zone", w.mutable_locality()->mutable_zone());
      r.string(loc["subzone"], "spec.locality.subzone", w.mutable_locality()->mutable_subzone());
    }
  } else {
    // As Kubernetes and Istio place a pod: the well-known topology labels.
    auto label = [&](const char* key, std::string* out) {
      if (auto it = meta.labels.find(key); it != meta.labels.end()) *out = it->second;
    };
    label("topology.kubernetes.io/region", w.mutable_locality()->mutable_region());
    label("topology.kubernetes.io/zone", w.mutable_locality()->mutable_zone());
    label("topology.istio.io/subzone", w.mutable_locality()->mutable_subzone());
  }
  const auto& l = w.locality();
  for (auto [part, value] : {std::pair{"region", &l.region()}, std::pair{"zone", &l.zone()}, std::pair{"subzone", &l.subzone()}}) {
    if (!r.failed() && (value->find('/') != std::string::npos || value->find('*') != std::string::npos)) {
      r.fail(std::string("spec.locality.") + part, fmt::format("'{}' must not hold '/' or '*'", *value));
    }
  }
  if (!r.failed() && ((l.region().empty() && !l.zone().empty()) || (l.zone().empty() && !l.subzone().empty()))) {
    r.fail("spec.locality", "a zone needs its region, a subzone its zone");
  }
  return w;
}

v1::Service parseService(const ObjectMeta& meta, const YAML::Node& spec, R& r) {
  v1::Service s;
  s.set_name(meta.name);
  s.set_namespace_(meta.ns);
  s.set_hostname(fmt::format("{}.{}.svc.cluster.local", meta.name, meta.ns));
  if (auto it = meta.annotations.find(kMirrorSafeAnnotation); it != meta.annotations.end()) {
    if (it->second != "true" && it->second != "false") {
      r.fail(std::string("metadata.annotations.") + kMirrorSafeAnnotation, "must be \"true\" or \"false\"");
    }
    s.set_mirror_safe(it->second == "true");
  }
  if (!r.mapping(spec, "spec", {"type", "clusterIP", "clusterIPs", "ports", "selector", "trafficDistribution"})) return s;
  r.string(spec["trafficDistribution"], "spec.trafficDistribution", s.mutable_traffic_distribution());
  if (!r.failed() && !s.traffic_distribution().empty() && s.traffic_distribution() != "PreferClose" &&
      s.traffic_distribution() != "PreferSameZone" && s.traffic_distribution() != "PreferSameNode") {
    r.fail("spec.trafficDistribution",
           fmt::format("'{}' is not one of PreferClose, PreferSameZone, PreferSameNode", s.traffic_distribution()));
  }
  std::string type;
  r.string(spec["type"], "spec.type", &type);
  if (!type.empty() && type != "ClusterIP") r.fail("spec.type", fmt::format("'{}' is not supported; only ClusterIP", type));
  std::string clusterIp;
  r.string(spec["clusterIP"], "spec.clusterIP", &clusterIp);
  if (!clusterIp.empty()) s.add_vips(clusterIp);
  google::protobuf::RepeatedPtrField<std::string> ips;
  r.stringList(spec["clusterIPs"], "spec.clusterIPs", &ips);
  for (const auto& ip : ips) {
    if (std::find(s.vips().begin(), s.vips().end(), ip) == s.vips().end()) s.add_vips(ip);
  }
  for (int i = 0; i < s.vips_size() && !r.failed(); ++i) {
    if (!isIp(s.vips(i))) r.fail("spec.clusterIPs", fmt::format("'{}' is not an IP address", s.vips(i)));
  }
  r.stringMap(spec["selector"], "spec.selector", s.mutable_selector());
  const YAML::Node ports = spec["ports"];
  if (!ports) r.fail("spec.ports", "is required");
  if (!r.sequence(ports, "spec.ports")) return s;
  std::set<uint32_t> seen;
  for (size_t i = 0; i < ports.size() && !r.failed(); ++i) {
    std::string p = R::index("spec.ports", i);
    if (!r.mapping(ports[i], p, {"name", "port", "targetPort", "protocol", "appProtocol"})) break;
    auto* port = s.add_ports();
    r.string(ports[i]["name"], R::child(p, "name"), port->mutable_name());
    uint32_t number = 0, target = 0;
    r.port(ports[i]["port"], R::child(p, "port"), &number, true);
    r.port(ports[i]["targetPort"], R::child(p, "targetPort"), &target);
    port->set_port(number);
    port->set_target_port(target == 0 ? number : target);
    std::string protocol = "TCP", appProtocol;
    r.string(ports[i]["protocol"], R::child(p, "protocol"), &protocol);
    if (protocol != "TCP") r.fail(R::child(p, "protocol"), fmt::format("'{}' is not supported; the mesh carries TCP", protocol));
    r.string(ports[i]["appProtocol"], R::child(p, "appProtocol"), &appProtocol);
    // Istio's protocol selection: appProtocol, else the port name's prefix ("http-web").
    std::string hint = !appProtocol.empty() ? appProtocol : port->name().substr(0, port->name().find('-'));
    std::string upper;
    for (char c : hint) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    port->set_protocol(upper == "HTTP" || upper == "HTTP2" || upper == "GRPC" ? upper : "TCP");
    if (!seen.insert(number).second) r.fail(R::child(p, "port"), fmt::format("port {} is listed twice", number));
  }
  return s;
}

v1::VirtualService parseVirtualService(const ObjectMeta& meta, const YAML::Node& spec, R& r) {
  v1::VirtualService vs;
  vs.set_name(meta.name);
  vs.set_namespace_(meta.ns);
  if (!r.mapping(spec, "spec", {"hosts", "http", "tcp"})) return vs;
  r.stringList(spec["hosts"], "spec.hosts", vs.mutable_hosts());
  if (!r.failed() && vs.hosts_size() == 0) r.fail("spec.hosts", "must name at least one host");
  if (const YAML::Node http = spec["http"]; http && r.sequence(http, "spec.http")) {
    for (size_t i = 0; i < http.size() && !r.failed(); ++i) parseHttpRoute(http[i], R::index("spec.http", i), vs.add_http(), r);
  }
  if (const YAML::Node tcp = spec["tcp"]; tcp && r.sequence(tcp, "spec.tcp")) {
    for (size_t i = 0; i < tcp.size() && !r.failed(); ++i) {
      std::string p = R::index("spec.tcp", i);
      if (!r.mapping(tcp[i], p, {"match", "route"})) break;
      auto* route = vs.add_tcp();
      if (const YAML::Node match = tcp[i]["match"]; match && r.sequence(match, R::child(p, "match"))) {
        for (size_t m = 0; m < match.size() && !r.failed(); ++m) {
          std::string mp = R::index(R::child(p, "match"), m);
          if (!r.mapping(match[m], mp, {"port"})) break;
          uint32_t port = 0;
          r.port(match[m]["port"], R::child(mp, "port"), &port);
          route->add_match()->set_port(port);
        }
      }
      parseRouteDestinations(tcp[i]["route"], R::child(p, "route"), route->mutable_route(), r);
    }
  }
  if (!r.failed() && vs.http_size() == 0 && vs.tcp_size() == 0) r.fail("spec", "has neither http nor tcp routes");
  return vs;
}

v1::AuthorizationPolicy parseAuthorizationPolicy(const ObjectMeta& meta, const YAML::Node& spec, R& r) {
  v1::AuthorizationPolicy ap;
  ap.set_name(meta.name);
  ap.set_namespace_(meta.ns);
  if (spec.IsNull()) return ap;  // {}: an ALLOW policy with no rules (denies everything selected)
  if (!r.mapping(spec, "spec", {"selector", "action", "rules"})) return ap;
  parseSelector(spec["selector"], "spec.selector", ap.mutable_selector(), r);
  std::string action = "ALLOW";
  r.string(spec["action"], "spec.action", &action);
  if (action == "DENY") ap.set_action(v1::AuthorizationPolicy::DENY);
  else if (action != "ALLOW" && !r.failed()) r.fail("spec.action", fmt::format("'{}' is not supported; ALLOW or DENY", action));
  if (const YAML::Node rules = spec["rules"]; rules && r.sequence(rules, "spec.rules")) {
    for (size_t i = 0; i < rules.size() && !r.failed(); ++i) {
      std::string p = R::index("spec.rules", i);
      if (!r.mapping(rules[i], p, {"from", "to"})) break;
      auto* rule = ap.add_rules();
      if (const YAML::Node from = rules[i]["from"]; from && r.sequence(from, R::child(p, "from"))) {
        for (size_t f = 0; f < from.size() && !r.failed(); ++f) {
          std::string fp = R::index(R::child(p, "from"), f);
          if (!r.mapping(from[f], fp, {"source"})) break;
          std::string sp = R::child(fp, "source");
          const YAML::Node src = from[f]["source"];
          if (!r.mapping(src, sp, {"principals", "notPrincipals", "namespaces", "notNamespaces", "ipBlocks", "notIpBlocks"})) break;
          auto* s = rule->add_from();
          r.stringList(src["principals"], R::child(sp, "principals"), s->mutable_principals());
          r.stringList(src["notPrincipals"], R::child(sp, "notPrincipals"), s->mutable_not_principals());
          r.stringList(src["namespaces"], R::child(sp, "namespaces"), s->mutable_namespaces());
          r.stringList(src["notNamespaces"], R::child(sp, "notNamespaces"), s->mutable_not_namespaces());
          r.stringList(src["ipBlocks"], R::child(sp, "ipBlocks"), s->mutable_ip_blocks());
          r.stringList(src["notIpBlocks"], R::child(sp, "notIpBlocks"), s->mutable_not_ip_blocks());
          checkIpBlocks(s->ip_blocks(), R::child(sp, "ipBlocks"), r);
          checkIpBlocks(s->not_ip_blocks(), R::child(sp, "notIpBlocks"), r);
        }
      }
      if (const YAML::Node to = rules[i]["to"]; to && r.sequence(to, R::child(p, "to"))) {
        for (size_t t = 0; t < to.size() && !r.failed(); ++t) {
          std::string tp = R::index(R::child(p, "to"), t);
          if (!r.mapping(to[t], tp, {"operation"})) break;
          std::string op = R::child(tp, "operation");
          if (!r.mapping(to[t]["operation"], op, {"ports", "notPorts"})) break;
          auto* o = rule->add_to();
          r.stringList(to[t]["operation"]["ports"], R::child(op, "ports"), o->mutable_ports());
          r.stringList(to[t]["operation"]["notPorts"], R::child(op, "notPorts"), o->mutable_not_ports());
        }
      }
    }
  }
  return ap;
}

v1::PeerAuthentication parsePeerAuthentication(const ObjectMeta& meta, const YAML::Node& spec, R& r) {
  v1::PeerAuthentication pa;
  pa.set_name(meta.name);
  pa.set_namespace_(meta.ns);
  auto mode = [&r](const YAML::Node& node, const std::string& path) {
    if (!r.mapping(node, path, {"mode"})) return v1::PeerAuthentication::UNSET;
    std::string m;
    r.string(node["mode"], R::child(path, "mode"), &m, true);
    if (m == "STRICT") return v1::PeerAuthentication::STRICT;
    if (m == "PERMISSIVE") return v1::PeerAuthentication::PERMISSIVE;
    if (m == "DISABLE") return v1::PeerAuthentication::DISABLE;
    if (m == "UNSET") return v1::PeerAuthentication::UNSET;
    if (!r.failed()) r.fail(R::child(path, "mode"), fmt::format("'{}' is not one of STRICT, PERMISSIVE, DISABLE, UNSET", m));
    return v1::PeerAuthentication::UNSET;
  };
  if (!r.mapping(spec, "spec", {"selector", "mtls", "portLevelMtls"})) return pa;
  parseSelector(spec["selector"], "spec.selector", pa.mutable_selector(), r);
  if (spec["mtls"]) pa.set_mode(mode(spec["mtls"], "spec.mtls"));
  if (const YAML::Node ports = spec["portLevelMtls"]) {
    if (!ports.IsMap()) {
      r.fail("spec.portLevelMtls", "must map ports to {mode: ...}");
    } else {
      for (const auto& entry : ports) {
        std::string p = R::child("spec.portLevelMtls", entry.first.Scalar());
        uint32_t port = 0;
        r.port(entry.first, p, &port, true);
        (*pa.mutable_port_level_mtls())[port] = mode(entry.second, p);
      }
    }
  }
  return pa;
}

}  // namespace sluice::controller
