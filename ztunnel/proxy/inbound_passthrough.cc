#include "proxy/inbound_passthrough.h"

#include <spdlog/spdlog.h>

#include "proxy/hbone_request.h"
#include "proxy/inbound_decision.h"
#include "proxy/socket_relay.h"

namespace sluice::ztunnel {

void InboundPassthroughAcceptor::onAccepted(UniqueFd fd) {
  PodRuntime& pod = *pod_;
  if (pod.refusesNewConnections()) return;
  SocketAddress peer = peerAddress(fd.get());
  auto lease = context_.limits.plaintext.acquire(unmapped(peer).ip());
  if (!lease) return refuse(pod, std::move(fd), FailReason::kSourceLimit);
  // sk_lookup kept the original destination as the accepted socket's local address.
  SocketAddress target = unmapped(localAddress(fd.get()));
  auto config = context_.config.current();
  InboundDecision verdict = decideInbound({false, "", unmapped(peer).ip(), target.toString()}, {pod.ns, pod.addresses, pod.labels}, *config);
  if (verdict.verdict != InboundDecision::Verdict::kAllow) {
    spdlog::debug("{}: plaintext from {} refused: {}", pod.key(), peer.toString(), verdict.reason);
    FailReason reason = verdict.verdict == InboundDecision::Verdict::kPlaintextRefused ? FailReason::kPlaintextRefused
                        : verdict.verdict == InboundDecision::Verdict::kDenied         ? FailReason::kDenied
                                                                                       : FailReason::kPolicyRefused;
    return refuse(pod, std::move(fd), reason);
  }
  auto series = pod.tcp.series(inboundTcpLabels(*config, pod, unmapped(peer).ip(), "", false, context_.options.trustDomain));
  startSocketRelay(context_, {pod_, Direction::kInbound, peer, verdict.target, "TCP", "", std::move(series)}, std::move(fd),
                   std::move(lease));
}

}  // namespace sluice::ztunnel
