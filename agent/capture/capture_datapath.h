// CaptureDatapath: owns the capture BPF programs of one node, and every map and link they use.
//
// Lifecycle (libbpf skeleton): open -> set the tunnel mark (.rodata) -> reuse pinned maps ->
// load -> attach (or adopt pinned links, swapping in the new programs atomically) -> pin.
// Maps and links are pinned under <pinDir>/v1/, so capture keeps working while the agent is
// stopped, and a restarted agent adopts the very same maps: no state is lost or duplicated,
// and there is no instant without redirection.
//
// Pin layout:   <pinDir>/v1/maps/<map>          every map
//               <pinDir>/v1/links/<program>     cgroup-attached programs (node cgroup root)
//               <pinDir>/v1/links/sk_lookup/<netns cookie>   one per enrolled pod, each with the
//                                                            pod's own instance of the inbound
//                                                            program (its cookie baked in)
#pragma once

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capture/pod_capture_plan.h"
#include "sluice/common/error.h"
#include "sluice/common/unique_fd.h"
#include "sluice_capture.h"

struct sluice_capture;  // the generated skeleton
struct bpf_link;
struct bpf_program;

namespace sluice::agent {

struct CaptureOptions {
  std::string pinDir;      // bpffs folder of this node's agent
  std::string cgroupPath;  // cgroup v2 folder whose subtree is captured (the node's root)
  uint32_t tunnelMark = 0;  // SO_MARK of the tunnel's sockets: never redirected
  uint32_t deliveryMark = 0;  // SO_MARK of its inbound delivery sockets: never redirected either
};

struct MapFill {
  std::string name;
  uint32_t maxEntries = 0;
  uint32_t entries = 0;  // counted by iterating keys
};

struct AttachPoint {
  std::string program;
  std::string target;  // cgroup path, or "netns <cookie>"
  std::string pin;
};

class CaptureDatapath {
 public:
  static Result<std::unique_ptr<CaptureDatapath>> open(const CaptureOptions& options);
  ~CaptureDatapath();
  CaptureDatapath(const CaptureDatapath&) = delete;
  CaptureDatapath& operator=(const CaptureDatapath&) = delete;

  // True when this start adopted maps and links pinned by an earlier agent.
  bool adopted() const { return adopted_; }
  const CaptureOptions& options() const { return options_; }

  // Installs a pod's configuration with redirection off, its counters, address index and
  // excluded CIDRs, and attaches sk_lookup to its namespace. Idempotent for the same pod.
  Status installPod(uint64_t netnsCookie, int netnsFd, const PodCapturePlan& plan);
  // Switches redirection on or off for an installed pod.
  Status setRedirect(uint64_t netnsCookie, bool on);
  // Places the tunnel's inbound (15006) listener of a pod in the sk_lookup socket map.
  Status setInboundListener(uint64_t netnsCookie, int family, int listenerFd);
  // Removes everything of the pod: config, counters, addresses, CIDRs, listeners, sk_lookup link.
  Status removePod(uint64_t netnsCookie);
  // Closes a leaving pod while its namespace lives on: its listeners leave the socket map and
  // redirection stays on, so sk_lookup drops what it would have captured and outbound connects
  // still go to the (now absent) tunnel: nothing reaches or leaves the pod in plaintext.
  Status closePod(uint64_t netnsCookie);
  // Whether the pod's network namespace is gone (its sk_lookup link reports no namespace; a pod
  // without a link has nothing left to keep).
  Result<bool> namespaceGone(uint64_t netnsCookie);

  // The pod's configuration as the kernel holds it (nullopt when not installed).
  Result<std::optional<sluice_pod>> podConfig(uint64_t netnsCookie) const;
  // Counters summed over CPUs.
  Result<sluice_counters> counters(uint64_t netnsCookie) const;
  std::vector<uint64_t> installedPods() const;

  // The inbound program attached to a pod's namespace, for running it in the kernel on chosen
  // inputs (BPF_PROG_TEST_RUN; tests/agent/sk_lookup_decision_test.cc).
  Result<UniqueFd> podInboundProgram(uint64_t netnsCookie) const;

  void setTrace(bool enabled);
  int traceRingFd() const;

  std::vector<MapFill> mapFill() const;
  std::vector<AttachPoint> attachPoints() const;

  // Removes every pin (and so detaches every program once this object is gone).
  Status uninstall();

 private:
  void removeInboundListeners(uint64_t netnsCookie);  // both families; absent ones are fine
  explicit CaptureDatapath(CaptureOptions options) : options_(std::move(options)) {}
  Status loadAndAttach();
  std::string mapsDir() const { return options_.pinDir + "/v1/maps"; }
  std::string linksDir() const { return options_.pinDir + "/v1/links"; }
  std::string skLookupPin(uint64_t netnsCookie) const;
  // Loads the pod's own instance of the inbound program (its netns cookie set, the node's maps
  // reused) and hands it to `use` (attach, or replace a pinned link's program).
  Status withPodInbound(uint64_t netnsCookie, const std::function<Status(bpf_program*)>& use);

  CaptureOptions options_;
  sluice_capture* skel_ = nullptr;
  bool adopted_ = false;
  struct LinkDeleter {
    void operator()(struct bpf_link* link) const;
  };
  // Our descriptors of the links; closing one detaches nothing (the pins keep them attached).
  using LinkPtr = std::unique_ptr<struct bpf_link, LinkDeleter>;
  std::vector<LinkPtr> links_;              // cgroup programs
  std::map<uint64_t, LinkPtr> podLinks_;    // sk_lookup per enrolled pod, by netns cookie
};

}  // namespace sluice::agent
