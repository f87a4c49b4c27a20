// "Would this connect be redirected, and why?" answered without touching the kernel: the same
// rules, in the same order, as outbound_decision() in bpf/sluice_capture.bpf.c, as a pure
// function over the pod's capture plan. The kernel tests check that both agree.
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
