// "Would this connect be redirected, and why?" answered without touching the kernel, by the
// kernel program's own decision code (bpf/sluice_decision.h, compiled into both) over the pod's
// capture plan; only the excluded-CIDR match (an LPM map in the kernel) is written here again.
#pragma once

#include <string>

#include "capture/pod_capture_plan.h"
#include "sluice/common/socket_address.h"

namespace sluice::agent {

struct OutboundVerdict {
  int reason;  // enum sluice_counter, or -1: the pod is not captured at all
  bool redirected;
  std::string why;
};

OutboundVerdict explainOutbound(const PodCapturePlan& plan, bool redirectOn, const SocketAddress& to,
                                bool socketHasTunnelMark = false);

// Human-readable name of a counter/reason ("redirected", "excluded_port", ...).
const char* reasonName(int reason);

}  // namespace sluice::agent
