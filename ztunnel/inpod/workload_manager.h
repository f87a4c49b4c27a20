// The tunnel's side of the agent <-> tunnel protocol (proto/sluice/zds/v1), on the control
// thread: connects to the node agent, and for every enrolled pod creates its listeners inside
// the pod's network namespace and hands them to one worker:
//   127.0.0.1:15001, [::1]:15001   outbound capture (connect4/6 rewrite to loopback)
//   [::]:15006 (dual-stack)        inbound plaintext (steered by sk_lookup); its fd goes back to
//                                  the agent in the Ack, for the sk_lookup socket map
//   [::]:15008 (dual-stack)        HBONE (mTLS + HTTP/2 CONNECT) with the pod's certificate
// All made by the PodSocketFactory: inside the pod, with the tunnel's mark and SO_REUSEPORT (a new tunnel can bind beside an old one).
// Acknowledges only when every listener is listening. Pods survive a lost agent connection;
// after a reconnect's replay, "snapshot sent" drops pods the replay did not mention.
// Removal: listeners stop accepting at once; connections drain (see WorkerOptions::drainTimeout).
// Replaced (a newer tunnel took over, see zds.proto): every pod is handed over (Worker::
// handOverPod), the agent connection ends and is never made again, and `onReplaced` runs (the
// tunnel closes its admin ports so the successor answers them).
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "proxy/worker.h"
#include "proxy/pod_runtime.h"
#include "sluice/common/error.h"
#include "sluice/zds/v1/zds.pb.h"

namespace sluice::ztunnel {

class WorkloadManager {
 public:
  // `certificates` (may be null: no identities) learns which identities this node's pods need.
  WorkloadManager(std::string zdsSocket, const PodSocketFactory& sockets, std::vector<std::unique_ptr<Worker>>& workers,
                  CertificateManager* certificates = nullptr, std::string trustDomain = "cluster.local");

  // Serves the agent until `stopping` or until replaced; reconnects with backoff when the agent
  // goes away.
  void run(const std::atomic<bool>& stopping);
  // Runs on the control thread when the agent says a newer tunnel took over. Set before run().
  void setOnReplaced(std::function<void()> onReplaced) { onReplaced_ = std::move(onReplaced); }
  // What must be there before the tunnel connects to the agent at all (its first configuration
  // from the controller): "" when ready, else what is missing. Set before run(). Until then
  // the agent has no tunnel: a running one (an upgrade's old tunnel) keeps every pod, and new
  // pods wait (fail closed) rather than be served without policy.
  void setConnectCheck(std::function<std::string()> missing) { connectCheck_ = std::move(missing); }
  // How long the first SnapshotSent's Ack waits for every pod's certificate: the agent hands the
  // pods over (and an upgrade's old tunnel lets go) once it has the Ack, so a tunnel
  // acknowledges when it can serve them. Below the agent's Ack timeout (10 s).
  static constexpr std::chrono::milliseconds kServingWait{5000};

  bool ready() const { return snapshotReceived_.load() && !replaced_.load(); }
  bool replaced() const { return replaced_.load(); }
  // When the agent said so (valid once replaced() is true).
  std::chrono::steady_clock::time_point replacedAt() const { return replacedAt_.load(); }
  bool connected() const { return connected_.load(); }
  std::vector<std::shared_ptr<PodRuntime>> pods() const;

 private:
  struct PodEntry {
    std::shared_ptr<PodRuntime> runtime;
    UniqueFd inbound;  // our own reference to the inbound listener, sent with every Ack
  };
  // Handles one request; returns the Ack and the descriptor to attach (or -1).
  std::pair<zds::v1::WorkloadResponse, int> handle(const zds::v1::WorkloadRequest& request,
                                                   std::vector<UniqueFd>& fds);
  Result<PodEntry> createPod(const zds::v1::WorkloadInfo& info, UniqueFd netns);
  void removePod(const std::string& uid);
  void handOverEveryPod();
  // "" when the tunnel has every pod's certificate, else the first one missing.
  std::string missingCertificate() const;

  std::string zdsSocket_;
  const PodSocketFactory& sockets_;
  std::vector<std::unique_ptr<Worker>>& workers_;
  CertificateManager* certificates_;
  std::string trustDomain_;
  mutable std::mutex mutex_;  // pods_ (read by the admin thread)
  std::map<std::string, PodEntry> pods_;
  std::set<std::string> seenInReplay_;
  size_t nextWorker_ = 0;
  std::atomic<bool> connected_{false}, snapshotReceived_{false}, replaced_{false};
  std::atomic<std::chrono::steady_clock::time_point> replacedAt_{};  // stored before replaced_
  std::function<void()> onReplaced_;
  std::function<std::string()> connectCheck_;
  // Control thread only: whether the first snapshot completed (accepts run at once from then
  // on), and until then the listeners whose accepts wait for it.
  bool serving_ = false;
  std::vector<std::function<void()>> notAccepting_;
};

}  // namespace sluice::ztunnel
