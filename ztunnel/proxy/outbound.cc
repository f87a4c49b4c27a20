#include "proxy/outbound.h"

#include <spdlog/spdlog.h>

#include "engine/socket_endpoint.h"
#include "proxy/hbone_client.h"
#include "proxy/hbone_request.h"
#include "proxy/outbound_decision.h"
#include "proxy/socket_relay.h"
#include "proxy/stream_endpoint.h"
#include "sluice/common/pki.h"
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
  OutboundDecision decision = decideOutbound(unmapped(*dst), *config, {context_.random(), context_.sequence++});
  if (decision.action == OutboundDecision::Action::kRefuse) {
    spdlog::debug("{}: refused {}: {}", pod.key(), dst->toString(), decision.reason);
    return refuse(pod, std::move(fd), FailReason::kPolicyRefused);
  }
  // A mesh workload is reached over HBONE whenever this node has identities.
  if (decision.workload && context_.certificates != nullptr) {
    return startHbone(std::move(fd), peer, decision.target, *decision.workload);
  }
  startSocketRelay(context_, {pod_, Direction::kOutbound, peer, decision.target}, std::move(fd));
}

void OutboundAcceptor::startHbone(UniqueFd fd, const SocketAddress& peer, const SocketAddress& target,
                                  const WorkloadEntry& workload) {
  PodRuntime& pod = *pod_;
  auto certificate = context_.certificates->get(pod.identity);
  if (!certificate) return refuse(pod, std::move(fd), FailReason::kNoCertificate);
  std::string expected = pki::spiffeIdFor(context_.options.trustDomain, workload.ns, workload.serviceAccount);
  PoolKey key = poolKey(pod.uid, pod.identity, expected, target);
  HboneClient* client = context_.pool.find(key);
  if (client == nullptr) {
    auto dialled = HboneClient::dial(context_, pod_, *certificate, key, expected);
    if (!dialled) {
      spdlog::warn("{}: HBONE to {}: {}", pod.key(), key.destination, dialled.error().message());
      return refuse(pod, std::move(fd), FailReason::kSocketError);
    }
    client = *dialled;
  }
  auto& random = context_.random;
  auto stream = client->session().connect({target.toString(), forwardedFor(peer), traceparent(random(), random(), random())});
  if (!stream) {
    spdlog::warn("{}: HBONE CONNECT to {}: {}", pod.key(), target.toString(), stream.error().message());
    return refuse(pod, std::move(fd), FailReason::kHboneProtocol);
  }
  (void)setNoDelay(fd.get());
  Relay& relay = newRelay(context_, {pod_, Direction::kOutbound, peer, target, "HBONE", expected});
  auto down = std::make_unique<SocketEndpoint>(context_.loop, relay, relay, Relay::kDownOps, std::move(fd), &pod.buffers);
  auto up = std::make_unique<StreamEndpoint>(*client, *stream, StreamEndpoint::Side::kClient, relay, pod.counters);
  relay.attach(std::move(down), std::move(up));
  client->requestFlush();
}

}  // namespace sluice::ztunnel
