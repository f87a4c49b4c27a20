// The controller's side of the discovery stream (proto/sluice/discovery/v1): one gRPC stream
// per node. For each node it tracks what was sent, acknowledged and refused; a response holds
// only the resources whose version differs from what the node acknowledged, plus removals:
// an update of one object sends one object, and a reconnecting node that presents its versions
// gets only what changed meanwhile.
//
// Bounded, because every byte a subscriber sends is hostile and the synchronous gRPC server
// holds a thread per stream: at most `maxStreams` streams at once (more are refused with
// RESOURCE_EXHAUSTED, and the caller caps gRPC's threads to match), a subscriber must send its
// first request and acknowledge each response within `ackDeadline` or its stream is cancelled
// (a watchdog thread; waiting for the next change is not waiting on the peer), and at most
// `maxRememberedNodes` nodes are remembered for /debug/nodes (disconnected ones are forgotten
// first).
//
// On the mTLS port a revoked node (node_revocations.h) cannot subscribe, and its open streams
// are cancelled within the watchdog's period (100 ms) of the revocation being read.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "discovery/config_store.h"
#include "discovery/node_identity.h"
#include "discovery/node_revocations.h"
#include "sluice/discovery/v1/discovery.grpc.pb.h"

namespace sluice::controller {

struct NodeStatus {
  std::string node;
  bool connected = false;  // at least one stream open
  // Open streams: a node's tunnel and, during its upgrade, its successor subscribe at once.
  uint32_t streams = 0;
  uint64_t sentGeneration = 0, ackedGeneration = 0;
  uint64_t responses = 0, acks = 0, nacks = 0;
  uint64_t bytesSent = 0;
  std::string lastNack;
};

// Resources of `config` whose versions differ from `known`, and names in `known` no longer in
// `config`: the increment that brings a node holding `known` up to date. Pure.
void computeIncrement(const ConfigSet& config, const std::map<std::string, std::string>& known,
                      discovery::v1::DiscoveryResponse* out);

struct DiscoveryLimits {
  size_t maxStreams = 1024;
  std::chrono::milliseconds ackDeadline{30000};
  size_t maxRememberedNodes = 4096;
};

// Whether a stream waiting on its peer since `since` (none: not waiting) is past `deadline`.
inline bool peerOverdue(std::optional<std::chrono::steady_clock::time_point> since, std::chrono::milliseconds deadline,
                        std::chrono::steady_clock::time_point now) {
  return since && now - *since >= deadline;
}

class DiscoveryServer final : public discovery::v1::Discovery::Service {
 public:
  // `trustDomain`: a subscriber that presents a node certificate (the mTLS port) must
  // subscribe as the node it names.
  // `revocations`: none means no node is revoked.
  explicit DiscoveryServer(const ConfigStore& store, std::string trustDomain = "cluster.local", DiscoveryLimits limits = {},
                           const RevocationFile* revocations = nullptr);
  ~DiscoveryServer() override;
  DiscoveryServer(const DiscoveryServer&) = delete;
  DiscoveryServer& operator=(const DiscoveryServer&) = delete;
  grpc::Status Stream(grpc::ServerContext* context,
                      grpc::ServerReaderWriter<discovery::v1::DiscoveryResponse, discovery::v1::DiscoveryRequest>* stream) override;
  std::vector<NodeStatus> nodes() const;
  const DiscoveryLimits& limits() const { return limits_; }

 private:
  // A stream in flight: its context (cancelled by the watchdog when late) and since when it
  // waits on its peer.
  struct Live {
    grpc::ServerContext* context;
    std::optional<std::chrono::steady_clock::time_point> waitingSince;
    std::optional<NodeCaller> caller;  // set on the mTLS port once the first request is read
  };
  class LiveStream;  // registers a stream for its lifetime
  void setWaiting(uint64_t id, bool waiting);
  void watch();
  void cancelRevoked(const NodeRevocations& revocations);  // mutex_ held
  void forgetOldNodes();  // mutex_ held

  const ConfigStore& store_;
  std::string trustDomain_;
  DiscoveryLimits limits_;
  const RevocationFile* revocations_;
  mutable std::mutex mutex_;
  std::map<std::string, NodeStatus> nodes_;
  std::map<uint64_t, Live> live_;
  uint64_t nextId_ = 0;
  bool stopping_ = false;
  std::condition_variable wake_;
  std::thread watchdog_;
};

}  // namespace sluice::controller
