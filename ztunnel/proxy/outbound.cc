#include "proxy/outbound.h"

#include <spdlog/spdlog.h>

#include "engine/socket_endpoint.h"
#include "proxy/hbone_request.h"
#include "proxy/http2_outbound.h"
#include "proxy/http_request_routing.h"
#include "proxy/http_version_sniffer.h"
#include "proxy/outbound_decision.h"
#include "proxy/socket_relay.h"
#include "proxy/upstream.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {

void OutboundAcceptor::onAccepted(UniqueFd fd) {
  PodRuntime& pod = *pod_;
  if (pod.refusesNewConnections()) return;
  SocketAddress peer = peerAddress(fd.get());
  auto dst = context_.origDst != nullptr ? context_.origDst->take(pod.netnsCookie, peer)
                                         : Result<SocketAddress>(fail("no original-destination table"));
  if (!dst) return refuse(pod, std::move(fd), FailReason::kNoOriginalDestination);
  auto config = context_.config.current();
  std::string sourceIp = peer.ip();  // consistentHash useSourceIp
  Choice choice{context_.random(), context_.sequence++, std::nullopt, sourceIp, nullptr, context_.outliers};
  choice.client = podWorkload(*config, pod.addresses);  // locality preference
  OutboundDecision decision = decideOutbound(unmapped(*dst), *config, choice);
  if (decision.action == OutboundDecision::Action::kRefuse) {
    spdlog::debug("{}: refused {}: {}", pod.key(), dst->toString(), decision.reason);
    return refuse(pod, std::move(fd), FailReason::kPolicyRefused);
  }
  if (decision.action == OutboundDecision::Action::kHttp) {
    // An HTTP port: HTTP/1.1 or h2c, by the first bytes; then every request is routed on its own.
    context_.loop.add<HttpVersionSniffer>(context_, pod_, peer, decision.target, std::move(fd)).start();
    return;
  }
  if (decision.action == OutboundDecision::Action::kHttp2) {
    // An HTTP2 or GRPC port: every stream is routed on its own (proxy/http2_outbound.h).
    context_.loop.add<Http2Outbound>(context_, pod_, peer, decision.target).start(std::move(fd));
    return;
  }
  // connectionPool.tcp.maxConnections of the destination (service or subset), for the node.
  const DestinationPool& destination =
      decision.serviceEntry ? decision.serviceEntry->poolFor(decision.subset) : DestinationPool::none();
  std::optional<BreakerSlot> connection = destination.acquire(PoolResource::kConnections);
  if (!connection) {
    spdlog::debug("{}: refused {}: {} has its maxConnections open", pod.key(), dst->toString(), decision.serviceEntry->key);
    return refuse(pod, std::move(fd), FailReason::kOverflow);
  }
  // Held by the relay until it is gone (a shared_ptr only when something is counted).
  std::shared_ptr<void> held = connection->held() ? std::make_shared<BreakerSlot>(std::move(*connection)) : nullptr;
  auto series = pod.tcp.series(outboundTcpLabels(*config, pod, unmapped(*dst).toString(), decision.target.ip(),
                                                 context_.options.trustDomain));
  RelayInfo info{pod_, Direction::kOutbound, peer, decision.target, "TCP", "", std::move(series)};
  info.connectOutcome = connectOutcomeRecorder(decision);
  // The destination's connectTimeout (DestinationRule tcp.connectTimeout), else the tunnel's.
  info.connectTimeout = destination.policy.connectTimeoutOr(context_.options.connectTimeout);
  const UpstreamConnectionPolicy& life = destination.policy.connections;  // tcp.idleTimeout, maxConnectionDuration
  info.idleTimeout = life.tcpIdleTimeout;
  info.maxDuration = life.maxConnectionDuration;
  // A mesh workload is reached over HBONE whenever this node has identities.
  if (decision.workload && context_.certificates != nullptr) {
    info.protocol = "HBONE";
    return startHbone(std::move(fd), std::move(info), decision.workload, std::move(held));
  }
  startSocketRelay(context_, std::move(info), std::move(fd), std::move(held), life.keepalive ? &*life.keepalive : nullptr);
}

std::function<void(bool)> OutboundAcceptor::connectOutcomeRecorder(const OutboundDecision& decision) const {
  // TCP services' outlier detection: a connection that could not be made (refused, timed
  // out, the destination's tunnel answered 503) is a local-origin failure of its endpoint.
  if (context_.outliers == nullptr || decision.serviceEntry == nullptr || decision.endpointHost.empty()) return nullptr;
  const OutlierPolicy& policy = decision.serviceEntry->outlierFor(decision.subset);
  if (!policy.enabled) return nullptr;
  return [outliers = context_.outliers, service = decision.serviceEntry, policy, host = decision.endpointHost](bool connected) {
    outliers->record(service->key, service->hostCount, policy, host,
                     connected ? Outcome::kSuccess : Outcome::kLocalOriginFailure);
  };
}

void OutboundAcceptor::startHbone(UniqueFd fd, RelayInfo info, std::shared_ptr<const WorkloadEntry> workload,
                                  std::shared_ptr<void> held) {
  PodRuntime& pod = *pod_;
  SocketAddress peer = info.peer, target = info.target;
  auto connectOutcome = info.connectOutcome;
  Relay& relay = newRelay(context_, std::move(info));
  relay.hold(std::move(held));
  auto up = openUpstream(context_, pod_, {peer, target, std::move(workload), relay.info().connectTimeout}, relay, relay,
                         Relay::kUpOps);
  if (!up) {
    spdlog::warn("{}: {}", pod.key(), up.error().message);
    if (connectOutcome) connectOutcome(false);
    relay.abort(false);  // it holds no endpoint yet: it only retires
    return refuse(pod, std::move(fd), up.error().reason);
  }
  relay.setPeerIdentity(up->peerIdentity);
  (void)setNoDelay(fd.get());
  auto down = std::make_unique<SocketEndpoint>(context_.loop, relay, relay, Relay::kDownOps, std::move(fd), &pod.buffers);
  relay.attach(std::move(down), std::move(up->endpoint));
}

}  // namespace sluice::ztunnel
