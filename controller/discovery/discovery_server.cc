#include "discovery/discovery_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "discovery/node_identity.h"

namespace sluice::controller {
namespace d1 = discovery::v1;

void computeIncrement(const ConfigSet& config, const std::map<std::string, std::string>& known, d1::DiscoveryResponse* out) {
  for (const auto& [name, loaded] : config.resources) {
    auto it = known.find(name);
    if (it == known.end() || it->second != loaded.resource.version()) *out->add_resources() = loaded.resource;
  }
  for (const auto& [name, _] : known) {
    if (!config.resources.contains(name)) out->add_removed(name);
  }
}

grpc::Status DiscoveryServer::Stream(grpc::ServerContext* context,
                                     grpc::ServerReaderWriter<d1::DiscoveryResponse, d1::DiscoveryRequest>* stream) {
  d1::DiscoveryRequest hello;
  if (!stream->Read(&hello)) return grpc::Status(grpc::StatusCode::CANCELLED, "no subscription");
  if (hello.node().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first request must name the node");
  const std::string node = hello.node();
  // On the mTLS port the node is who its certificate says, whatever it claims.
  if (context->auth_context() && context->auth_context()->IsPeerAuthenticated()) {
    std::string proven = authenticatedNode(*context, trustDomain_);
    if (proven != node) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          fmt::format("the node certificate names node '{}', not '{}'", proven, node));
    }
  }
  // What the node holds: acknowledged versions per resource (its own word on reconnect).
  std::map<std::string, std::string> acked(hello.known_versions().begin(), hello.known_versions().end());
  {
    std::lock_guard lock(mutex_);
    auto& status = nodes_[node];
    status.node = node;
    status.connected = true;
  }
  spdlog::info("node {} subscribed ({} resources already held)", node, acked.size());
  uint64_t generation = 0, nonce = 0;
  bool first = true;
  while (!context->IsCancelled()) {
    uint64_t current = 0;
    auto config = store_.current(&current);
    if (first || current != generation) {
      d1::DiscoveryResponse response;
      computeIncrement(*config, acked, &response);
      response.set_system_version(std::to_string(current));
      response.set_nonce(std::to_string(++nonce));
      bool empty = response.resources_size() == 0 && response.removed_size() == 0;
      if (!empty || first) {
        size_t bytes = response.ByteSizeLong();
        if (!stream->Write(response)) break;
        {
          std::lock_guard lock(mutex_);
          auto& status = nodes_[node];
          status.sentGeneration = current;
          status.responses++;
          status.bytesSent += bytes;
        }
        d1::DiscoveryRequest reply;
        if (!stream->Read(&reply)) break;
        std::lock_guard lock(mutex_);
        auto& status = nodes_[node];
        if (reply.response_nonce() != response.nonce()) {
          spdlog::warn("node {} answered nonce {} for {}", node, reply.response_nonce(), response.nonce());
        }
        if (reply.error_detail().empty()) {
          for (const auto& r : response.resources()) acked[r.name()] = r.version();
          for (const auto& n : response.removed()) acked.erase(n);
          status.ackedGeneration = current;
          status.acks++;
          status.lastNack.clear();
        } else {
          // Refused: nothing changes in what the node holds; the next change retries.
          status.nacks++;
          status.lastNack = reply.error_detail();
          spdlog::warn("node {} refused generation {}: {}", node, current, reply.error_detail());
        }
      }
      generation = current;
      first = false;
    }
    store_.waitForChange(generation, std::chrono::milliseconds(200));
  }
  std::lock_guard lock(mutex_);
  nodes_[node].connected = false;
  spdlog::info("node {} disconnected", node);
  return grpc::Status::OK;
}

std::vector<NodeStatus> DiscoveryServer::nodes() const {
  std::lock_guard lock(mutex_);
  std::vector<NodeStatus> out;
  for (const auto& [_, s] : nodes_) out.push_back(s);
  return out;
}

}  // namespace sluice::controller
