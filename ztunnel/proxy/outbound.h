// Outbound (15001): connections the capture programs redirected from a pod's app. The
// original destination comes from the capture's table; the decision (decideOutbound, pure)
// says refuse, plain TCP to the destination, or HBONE to a mesh workload, and this acceptor
// only carries it out.
#pragma once

#include <memory>

#include "proxy/pod_acceptor.h"
#include "proxy/worker_context.h"

namespace sluice::ztunnel {

class OutboundAcceptor final : public PodAcceptor {
 public:
  using PodAcceptor::PodAcceptor;
  void onAccepted(UniqueFd fd) override;

 private:
  void startHbone(UniqueFd fd, const SocketAddress& peer, const SocketAddress& target,
                  std::shared_ptr<const WorkloadEntry> workload, std::shared_ptr<TcpSeries> series);
};

}  // namespace sluice::ztunnel
