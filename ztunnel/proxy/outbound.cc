#include "proxy/outbound.h"

#include <spdlog/spdlog.h>

#include "engine/socket_endpoint.h"
#include "proxy/hbone_request.h"
#include "proxy/http2_outbound.h"
#include "proxy/http_version_sniffer.h"
#include "proxy/outbound_decision.h"
#include "proxy/socket_relay.h"
#include "proxy/upstream.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {

void OutboundAcceptor::onAccepted(UniqueFd fd) {
  PodRuntime& pod = *pod_;
  if (pod.draining) return;  // closed: the pod is leaving
  SocketAddress peer = peerAddress(fd.get());
  auto dst = context_.origDst != nullptr ? context_.origDst->take(pod.netnsCookie, peer)
                                         : Result<SocketAddress>(fail("no original-destination table"));
  if (!dst) return refuse(pod, std::move(fd), FailReason::kNoOriginalDestination);
  auto config = context_.config.current();
  std::string sourceIp = peer.ip();  // consistentHash useSourceIp
  OutboundDecision decision =
      decideOutbound(unmapped(*dst), *config, {context_.random(), context_.sequence++, std::nullopt, sourceIp, nullptr});
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
  auto series = pod.tcp.series(outboundTcpLabels(*config, pod, unmapped(*dst).toString(), decision.target.ip(),
                                                 context_.options.trustDomain));
  // A mesh workload is reached over HBONE whenever this node has identities.
  if (decision.workload && context_.certificates != nullptr) {
    return startHbone(std::move(fd), peer, decision.target, decision.workload, std::move(series));
  }
  startSocketRelay(context_, {pod_, Direction::kOutbound, peer, decision.target, "TCP", "", std::move(series)}, std::move(fd));
}

void OutboundAcceptor::startHbone(UniqueFd fd, const SocketAddress& peer, const SocketAddress& target,
                                  std::shared_ptr<const WorkloadEntry> workload, std::shared_ptr<TcpSeries> series) {
  PodRuntime& pod = *pod_;
  Relay& relay = newRelay(context_, {pod_, Direction::kOutbound, peer, target, "HBONE", "", std::move(series)});
  auto up = openUpstream(context_, pod_, {peer, target, std::move(workload)}, relay, relay, Relay::kUpOps);
  if (!up) {
    spdlog::warn("{}: {}", pod.key(), up.error().message);
    relay.abort(false);  // it holds no endpoint yet: it only retires
    return refuse(pod, std::move(fd), up.error().reason);
  }
  relay.setPeerIdentity(up->peerIdentity);
  (void)setNoDelay(fd.get());
  auto down = std::make_unique<SocketEndpoint>(context_.loop, relay, relay, Relay::kDownOps, std::move(fd), &pod.buffers);
  relay.attach(std::move(down), std::move(up->endpoint));
}

}  // namespace sluice::ztunnel
