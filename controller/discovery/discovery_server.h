// The controller's side of the discovery stream (proto/sluice/discovery/v1): one gRPC stream
// per node. For each node it tracks what was sent, acknowledged and refused; a response holds
// only the resources whose version differs from what the node acknowledged, plus removals:
// an update of one object sends one object, and a reconnecting node that presents its versions
// gets only what changed meanwhile.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "discovery/config_store.h"
#include "sluice/discovery/v1/discovery.grpc.pb.h"

namespace sluice::controller {

struct NodeStatus {
  std::string node;
  bool connected = false;
  uint64_t sentGeneration = 0, ackedGeneration = 0;
  uint64_t responses = 0, acks = 0, nacks = 0;
  uint64_t bytesSent = 0;
  std::string lastNack;
};

// Resources of `config` whose versions differ from `known`, and names in `known` no longer in
// `config`: the increment that brings a node holding `known` up to date. Pure.
void computeIncrement(const ConfigSet& config, const std::map<std::string, std::string>& known,
                      discovery::v1::DiscoveryResponse* out);

class DiscoveryServer final : public discovery::v1::Discovery::Service {
 public:
  // `trustDomain`: a subscriber that presents a node certificate (the mTLS port) must
  // subscribe as the node it names.
  explicit DiscoveryServer(const ConfigStore& store, std::string trustDomain = "cluster.local")
      : store_(store), trustDomain_(std::move(trustDomain)) {}
  grpc::Status Stream(grpc::ServerContext* context,
                      grpc::ServerReaderWriter<discovery::v1::DiscoveryResponse, discovery::v1::DiscoveryRequest>* stream) override;
  std::vector<NodeStatus> nodes() const;

 private:
  const ConfigStore& store_;
  std::string trustDomain_;
  mutable std::mutex mutex_;
  std::map<std::string, NodeStatus> nodes_;
};

}  // namespace sluice::controller
