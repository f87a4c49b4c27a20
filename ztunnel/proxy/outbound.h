// Outbound (15001): connections the capture programs redirected from a pod's app. The
// original destination comes from the capture's table; the decision (decideOutbound, pure)
// says refuse, plain TCP to the destination, or HBONE to a mesh workload, and this acceptor
// only carries it out.
#pragma once

#include <functional>
#include <memory>

#include "engine/relay.h"
#include "proxy/outbound_decision.h"
#include "proxy/pod_acceptor.h"
#include "proxy/worker_context.h"

namespace sluice::ztunnel {

class OutboundAcceptor final : public PodAcceptor {
 public:
  using PodAcceptor::PodAcceptor;
  void onAccepted(UniqueFd fd) override;

 private:
  // `held` (may be null) lives as long as the relay: the connection's circuit-breaker count.
  void startHbone(UniqueFd fd, RelayInfo info, std::shared_ptr<const WorkloadEntry> workload, std::shared_ptr<void> held);
  // What the relay tells outlier detection once it knows whether its upstream connected
  // (empty: the service does not detect outliers).
  std::function<void(bool)> connectOutcomeRecorder(const OutboundDecision& decision) const;
};

}  // namespace sluice::ztunnel
