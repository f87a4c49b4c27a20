// The node's end of the controller's discovery stream (proto/sluice/discovery/v1), on a thread
// of its own: subscribes as this node, applies each increment to its copy of the resources,
// builds a new ConfigSnapshot off the data path and publishes it, then ACKs; a snapshot that
// can't be built is NACKed with the reason and the last good one stays in force. With the
// controller gone, the node keeps serving; on reconnect it presents the versions it holds, so
// the controller resends only what changed.
#pragma once

#include <grpcpp/channel.h>

#include "identity/controller_link.h"

#include <atomic>
#include <map>
#include <mutex>
#include <string>

#include "proxy/node_traffic_state.h"
#include "proxy/config_snapshot.h"
#include "sluice/config/v1/config.pb.h"

namespace sluice::ztunnel {

class ConfigClient {
 public:
  // `traffic` (may be null): the node's state the snapshots it builds attach to (breakers, buckets).
  // `channel`: the controller channel to use for each new stream (it changes when the node
  // credential is renewed).
  ConfigClient(ChannelSource channel, std::string node, SnapshotStore& store, NodeTrafficState* traffic = nullptr)
      : channel_(std::move(channel)), node_(std::move(node)), store_(store), traffic_(traffic) {}

  void run(const std::atomic<bool>& stopping);

  bool connected() const { return connected_.load(); }
  std::string lastError() const;
  uint64_t acks() const { return acks_.load(); }
  uint64_t nacks() const { return nacks_.load(); }

 private:
  ChannelSource channel_;
  std::string node_;
  SnapshotStore& store_;
  NodeTrafficState* traffic_;
  std::map<std::string, config::v1::Resource> resources_;  // the last good set
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> acks_{0}, nacks_{0};
  mutable std::mutex errorMutex_;
  std::string lastError_;
};

}  // namespace sluice::ztunnel
