// The node agent: owns the node's capture datapath, the record of enrolled pods, and the link
// to the tunnel, and carries out the enrollment protocol:
//
//   ADD:  plan (labels/annotations) -> install kernel config with redirection OFF -> hand the
//         netns to the tunnel -> tunnel acknowledges (listeners exist, inbound listener fd
//         attached) -> place the listener in the sk_lookup map -> redirection ON -> persist.
//         Any failure undoes every step and fails the pod's creation: an app never runs
//         uncaptured while the agent believes it is captured (no silent bypass).
//   DEL:  redirection OFF -> tunnel drains the pod -> kernel config removed -> persist.
//   Tunnel (re)connects: replay every enrolled pod, then "snapshot sent"; a tunnel still
//   connected before (an upgrade) is then told it is replaced, and drains.
//
// Every public method is safe to call from any thread; one mutex serialises them, so the
// enrollment steps of two pods never interleave.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "capture/capture_datapath.h"
#include "capture/transparent_delivery.h"
#include "daemon/pod_metadata.h"
#include "daemon/pod_record.h"
#include "daemon/tunnel_link.h"
#include "sluice/common/error.h"
#include "sluice/common/socket_address.h"

namespace sluice::agent {

struct AgentOptions {
  std::string node = "node";
  CaptureOptions capture;
  std::string stateDir;     // pods.json lives here
  std::string podRegistry;  // folder of pod metadata "<namespace>_<name>.json" (simulated API server)
  PodMetadataLookup podMetadata;  // pods' metadata (the Kubernetes API); unset: from podRegistry
  std::chrono::milliseconds tunnelWait{10000};  // how long an ADD waits for a tunnel to connect
  std::chrono::milliseconds ackTimeout{10000};
};

// A CNI invocation as sluice-cni forwards it.
struct CniPodRequest {
  std::string command;  // ADD, DEL, CHECK
  std::string containerId;
  std::string netnsPath;
  std::string ns, name, uid;
  std::vector<std::string> addresses;  // from prevResult
};

class Agent {
 public:
  static Result<std::unique_ptr<Agent>> start(AgentOptions options);

  Status addPod(const CniPodRequest& request);
  // DEL closes the pod (PodRecord::closing) rather than dropping its capture at once.
  Status delPod(const CniPodRequest& request);
  Status checkPod(const CniPodRequest& request);
  // Removes the capture state of closed pods whose namespace is gone (called every second).
  void collectClosedPods();

  // A tunnel connected: attach it and replay every enrolled pod to it.
  Status tunnelConnected(UniqueFd connection);

  nlohmann::json status();
  nlohmann::json pods();
  Result<nlohmann::json> pod(const std::string& key);
  Result<nlohmann::json> explain(const std::string& key, const SocketAddress& to);

  // Trace subscription: the ring buffer is written only while at least one subscriber exists.
  void traceSubscribe();
  void traceUnsubscribe();
  int traceRingFd() const { return datapath_->traceRingFd(); }
  // "namespace/name" of the pod with that netns cookie, or "" when unknown.
  std::string podKeyByCookie(uint64_t cookie);

 private:
  explicit Agent(AgentOptions options) : options_(std::move(options)) {}
  Status reconcileAtStart();
  TransparentDelivery transparentDelivery() const;
  Status persist();  // mu_ held
  Status enrollWithTunnel(const PodRecord& pod, int netnsFd);  // mu_ held
  nlohmann::json podJson(const PodRecord& pod);  // mu_ held
  PodRecord* findByContainer(const std::string& containerId);  // mu_ held
  PodRecord* findByKey(const std::string& key);  // mu_ held
  PodRecord recordFor(const CniPodRequest& request) const;

  AgentOptions options_;
  std::unique_ptr<CaptureDatapath> datapath_;
  TunnelLink tunnel_;
  std::mutex mu_;
  std::vector<PodRecord> pods_;
  int traceSubscribers_ = 0;
  uint64_t replays_ = 0;
  uint64_t handovers_ = 0;       // previous tunnels told they were replaced (upgrades)
  bool tunnelReplayed_ = false;  // the connected tunnel acknowledged its replay's SnapshotSent
};

}  // namespace sluice::agent
