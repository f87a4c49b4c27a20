// What capture means for one pod, decided from its addresses, labels and annotations: a pure
// function, so every rule is covered by a table of cases. The agent only carries the plan out.
//
// Opt-out (the pod is left alone entirely):
//   label      istio.io/dataplane-mode: none     (Istio ambient's own opt-out)
//   annotation sluice.io/capture: disabled
// Exclusions (Istio's sidecar annotation names, which operators already use):
//   traffic.sidecar.istio.io/excludeOutboundPorts:    "5432,6379"
//   traffic.sidecar.istio.io/excludeInboundPorts:     "9090"
//   traffic.sidecar.istio.io/excludeOutboundIPRanges: "10.0.0.0/8,fd00::/8"
#pragma once

#include <array>
#include <map>
#include <string>
#include <vector>

#include "sluice/common/error.h"
#include "sluice_capture.h"

namespace sluice::agent {

inline constexpr const char* kDataplaneModeLabel = "istio.io/dataplane-mode";
inline constexpr const char* kCaptureAnnotation = "sluice.io/capture";
inline constexpr const char* kExcludeOutboundPorts = "traffic.sidecar.istio.io/excludeOutboundPorts";
inline constexpr const char* kExcludeInboundPorts = "traffic.sidecar.istio.io/excludeInboundPorts";
inline constexpr const char* kExcludeOutboundRanges = "traffic.sidecar.istio.io/excludeOutboundIPRanges";

struct PodCaptureSpec {
  std::vector<std::string> addresses;  // "10.244.0.2", "fd00:10:244::2"
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

// A CIDR as the kernel's LPM trie holds it: IPv6 or IPv4-mapped, with its prefix length in
// that 128-bit space.
struct CaptureCidr {
  uint8_t addr[16];
  uint32_t prefixBits;
  bool operator==(const CaptureCidr&) const = default;
};

struct PodCapturePlan {
  bool optedOut = false;
  std::string optOutReason;  // which label/annotation opted the pod out
  sluice_pod pod{};          // flags left 0: redirection is switched on separately
  std::vector<CaptureCidr> excludedCidrs;
};

// Fails naming the annotation and the offending value when the spec can't be honoured
// exactly (an unparsable port, more ports than the kernel map holds, a bad CIDR, ...): a pod
// whose exclusions would be silently dropped must not start.
Result<PodCapturePlan> planPodCapture(const PodCaptureSpec& spec);

// An address as 16 bytes, IPv4 mapped into IPv6.
Result<std::array<uint8_t, 16>> addressBytes(std::string_view ip);

}  // namespace sluice::agent
