#include "proxy/http_request_routing.h"

#include "proxy/hbone_request.h"
#include "sluice/common/hex.h"

namespace sluice::ztunnel {

namespace {

HttpRouting answer(std::shared_ptr<const ServiceEntry> service, int status, std::string flag, std::string body,
                   std::vector<l7::HttpHeader> extra = {}) {
  HttpRouting r;
  r.local = LocalAnswer{status, std::move(flag), std::move(body), std::move(extra)};
  r.service = std::move(service);
  return r;
}

// splitmix64's finalizer: an independent-looking draw from another random value.
uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

const WorkloadEntry* podWorkload(const ConfigSnapshot& config, const std::vector<std::string>& addresses) {
  for (const auto& address : addresses) {
    if (auto w = config.workloadsByIp.find(address); w != config.workloadsByIp.end()) return w->second.get();
  }
  return nullptr;
}

HttpRouting routeHttpRequest(const ConfigSnapshot& config, const SocketAddress& service, const HttpSource& source,
                             l7::HttpHead& request, Choice choice, uint64_t targetRandom) {
  auto entry = config.servicesByVip.find(service.toString());
  if (entry == config.servicesByVip.end()) return answer(nullptr, 503, "NC", "the service is no longer known");
  const auto& called = entry->second;
  l7::RouteMatch match = l7::matchRoute(*entry->second->httpRoutes, request, {source.servicePort, source.ns, source.labels});
  if (match.rule == nullptr) return answer(called, 404, "NR", "no route matched");
  const l7::HttpRouteRule& rule = *match.rule;
  // Answers from here on name the rule that led to them (access log: route_name).
  auto answer = [&rule](std::shared_ptr<const ServiceEntry> about, int status, std::string flag, std::string body,
                        std::vector<l7::HttpHeader> extra = {}) {
    HttpRouting r = ztunnel::answer(std::move(about), status, std::move(flag), std::move(body), std::move(extra));
    r.rule = &rule;
    return r;
  };
  // Fault injection (before the route's action, as Envoy's fault filter runs before the
  // router): a delay, then perhaps the fault's own answer.
  l7::FaultChoice fault = rule.fault ? l7::chooseFault(*rule.fault, mix(targetRandom ^ choice.random)) : l7::FaultChoice{};
  if (fault.abort) {
    HttpRouting aborted = answer(called, rule.fault->abortStatus != 0 ? rule.fault->abortStatus : 200,
                                 fault.delay.count() > 0 ? "DI,FI" : "FI", "fault filter abort");
    aborted.local->grpcStatus = rule.fault->abortGrpcStatus;
    aborted.delay = fault.delay;
    return aborted;
  }
  auto delayed = [&fault](HttpRouting r) {
    r.delay = fault.delay;
    return r;
  };
  if (rule.directResponse) return delayed(answer(called, rule.directResponse->status, "", rule.directResponse->body));
  if (rule.redirect) {
    return delayed(answer(called, rule.redirect->code, "", "", {{"location", l7::redirectLocation(*rule.redirect, request)}}));
  }
  const l7::RouteTarget* target = l7::pickTarget(rule, targetRandom);
  auto destination = target != nullptr ? config.servicesByHost.find(target->host) : config.servicesByHost.end();
  if (destination == config.servicesByHost.end()) return answer(called, 503, "NC", "the route's destination is not a known service");
  uint16_t port = target->port != 0 ? target->port : service.port();
  const ServiceEntry& destinationService = *destination->second;
  const LbPolicy& policy = destinationService.loadBalancerFor(target->subset);
  std::optional<std::string> newCookie;
  choice.sourceIp = source.ip;
  if (policy.kind == LbPolicy::Kind::kConsistentHash) {
    const std::string* cookie = request.find("cookie");
    HashInput input{policy.key == LbPolicy::HashKey::kHeader ? request.find(policy.keyName) : nullptr,
                    cookie != nullptr ? std::string_view(*cookie) : std::string_view{}, request.query(), source.ip};
    choice.hash = requestHash(policy, input, targetRandom ^ choice.random, &newCookie);
  }
  const ServiceEntry::Endpoint* endpoint =
      pickEndpoint(destinationService, target->subset, target->subset.empty() ? nullptr : &target->subsetLabels, choice);
  if (endpoint == nullptr) return answer(destination->second, 503, "UH", "no healthy upstream");
  auto address = SocketAddress::fromIp(endpoint->address, targetPortOf(*destination->second, port));
  if (!address) return answer(destination->second, 503, "UH", "no healthy upstream");
  l7::applyRewrite(rule, match.matcher, request);
  HttpRouting routed;
  routed.rule = &rule;
  routed.delay = fault.delay;
  routed.timeout = rule.timeout;
  routed.endpoint = *address;
  routed.endpointHost = endpoint->host;
  routed.target = target;
  routed.subset = target->subset;
  routed.service = destination->second;
  if (newCookie) routed.responseAdd.push_back({"set-cookie", setCookieValue(policy, *newCookie)});
  if (auto w = config.workloadsByIp.find(address->ip()); w != config.workloadsByIp.end()) routed.workload = w->second;
  for (size_t m = 0; m < rule.mirrors.size(); ++m) {
    // Each mirror draws on its own (independent shares, as Envoy's request_mirror_policies).
    uint64_t draw = mix(targetRandom + 0x9e3779b97f4a7c15ULL * (m + 1));
    if (!l7::mirrorChosen(rule.mirrors[m].percent, draw)) continue;
    Choice mirrorChoice = choice;
    mirrorChoice.hash.reset();  // the mirror's own load balancer, not the primary's key
    mirrorChoice.random = mix(draw ^ choice.random);
    routed.mirrors.push_back(routeMirror(config, rule.mirrors[m], service.port(), mirrorChoice));
  }
  return routed;
}

HttpRouting::Mirror routeMirror(const ConfigSnapshot& config, const l7::HttpRouteRule::Mirror& mirror, uint16_t servicePort,
                                const Choice& choice) {
  HttpRouting::Mirror out;
  out.destination = mirror.target.host;
  auto destination = config.servicesByHost.find(mirror.target.host);
  if (destination == config.servicesByHost.end()) return out;
  const ServiceEntry& service = *destination->second;
  out.destination = service.key;
  out.connectTimeout = service.poolFor(mirror.target.subset).policy.connectTimeout;
  const ServiceEntry::Endpoint* endpoint =
      pickEndpoint(service, mirror.target.subset, mirror.target.subset.empty() ? nullptr : &mirror.target.subsetLabels, choice);
  if (endpoint == nullptr) return out;
  uint16_t port = mirror.target.port != 0 ? mirror.target.port : servicePort;
  auto address = SocketAddress::fromIp(endpoint->address, targetPortOf(service, port));
  if (!address) return out;
  out.endpoint = *address;
  if (auto w = config.workloadsByIp.find(address->ip()); w != config.workloadsByIp.end()) out.workload = w->second;
  return out;
}

bool rerouteForRetry(const ConfigSnapshot& config, HttpRouting& routing, Choice choice) {
  if (routing.service == nullptr || routing.target == nullptr) return false;
  const ServiceEntry& service = *routing.service;
  const l7::RouteTarget& target = *routing.target;
  choice.avoidHost = routing.endpointHost;
  const ServiceEntry::Endpoint* endpoint =
      pickEndpoint(service, target.subset, target.subset.empty() ? nullptr : &target.subsetLabels, choice);
  if (endpoint == nullptr) return false;
  auto address = SocketAddress::fromIp(endpoint->address, routing.endpoint.port());
  if (!address) return false;
  routing.endpoint = *address;
  routing.endpointHost = endpoint->host;
  auto w = config.workloadsByIp.find(address->ip());
  routing.workload = w != config.workloadsByIp.end() ? w->second : nullptr;
  return true;
}

void decorateRequest(const l7::HttpRouteRule& rule, l7::HttpHead& request, std::mt19937_64& random) {
  rule.requestHeaders.apply(request);
  if (request.find("traceparent") == nullptr) request.set("traceparent", randomTraceparent(random));
  if (request.find("x-request-id") == nullptr) {
    // A version 4 UUID (RFC 9562): 122 random bits, version 4, variant 10.
    uint64_t a = random(), b = random();
    std::string id;
    id.reserve(36);
    appendHex(id, a >> 32, 8);
    id += '-';
    appendHex(id, a >> 16, 4);
    id += "-4";
    appendHex(id, a, 3);
    id += '-';
    appendHex(id, 0x8000 | (b >> 48 & 0x3fff), 4);
    id += '-';
    appendHex(id, b, 12);
    request.set("x-request-id", id);
  }
}

}  // namespace sluice::ztunnel
