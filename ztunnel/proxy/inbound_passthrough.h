// Inbound passthrough (15006): plaintext connections to a pod that sk_lookup steered to the
// tunnel (the original destination is the accepted socket's local address). The decision
// (decideInbound, pure: PeerAuthentication, AuthorizationPolicy) says refuse or relay to the
// app; each source address may hold at most SourceLimits::plaintext connections here.
#pragma once

#include <memory>

#include "proxy/pod_acceptor.h"
#include "proxy/worker_context.h"

namespace sluice::ztunnel {

class InboundPassthroughAcceptor final : public PodAcceptor {
 public:
  using PodAcceptor::PodAcceptor;
  void onAccepted(UniqueFd fd) override;
};

}  // namespace sluice::ztunnel
