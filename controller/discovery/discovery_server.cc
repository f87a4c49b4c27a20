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
    // The revoked nodes are the controller's own resource, never in a configuration.
    if (name != kRevokedNodesResource && !config.resources.contains(name)) out->add_removed(name);
  }
}

DiscoveryServer::DiscoveryServer(const ConfigStore& store, std::string trustDomain, DiscoveryLimits limits,
                                 const RevocationFile* revocations)
    : store_(store), trustDomain_(std::move(trustDomain)), limits_(limits), revocations_(revocations),
      watchdog_([this] { watch(); }) {}

DiscoveryServer::~DiscoveryServer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  watchdog_.join();
}

// One stream's place in live_, from its start to its end (on every path).
class DiscoveryServer::LiveStream {
 public:
  LiveStream(DiscoveryServer& server, uint64_t id) : server_(server), id_(id) {}
  ~LiveStream() {
    std::lock_guard lock(server_.mutex_);
    server_.live_.erase(id_);
  }
  uint64_t id() const { return id_; }

 private:
  DiscoveryServer& server_;
  uint64_t id_;
};

void DiscoveryServer::setWaiting(uint64_t id, bool waiting) {
  std::lock_guard lock(mutex_);
  auto it = live_.find(id);
  if (it == live_.end()) return;
  if (waiting) it->second.waitingSince = std::chrono::steady_clock::now();
  else it->second.waitingSince.reset();
}

void DiscoveryServer::cancelRevoked(const NodeRevocations& revocations) {
  for (auto& [id, s] : live_) {
    if (!s.caller) continue;
    if (auto ok = revocations.check(s.caller->node, s.caller->issuedAt); !ok) {
      spdlog::warn("cancelling a discovery stream: {}", ok.error().message());
      s.context->TryCancel();
      s.caller.reset();  // once
    }
  }
}

void DiscoveryServer::watch() {
  std::unique_lock lock(mutex_);
  std::shared_ptr<const NodeRevocations> enforced;
  while (!stopping_) {
    wake_.wait_for(lock, std::chrono::milliseconds(100));
    if (revocations_) {
      // A stream admitted before a revocation was read is checked again when the list changes.
      auto latest = revocations_->current();
      if (latest != enforced) cancelRevoked(*latest);
      enforced = std::move(latest);
    }
    auto now = std::chrono::steady_clock::now();
    for (auto& [id, s] : live_) {
      if (!peerOverdue(s.waitingSince, limits_.ackDeadline, now)) continue;
      // Under the lock: the stream cannot end (and its context go) meanwhile.
      s.context->TryCancel();
      s.waitingSince.reset();
    }
  }
}

void DiscoveryServer::forgetOldNodes() {
  for (auto it = nodes_.begin(); nodes_.size() > limits_.maxRememberedNodes && it != nodes_.end();) {
    it = it->second.connected ? std::next(it) : nodes_.erase(it);
  }
}

grpc::Status DiscoveryServer::Stream(grpc::ServerContext* context,
                                     grpc::ServerReaderWriter<d1::DiscoveryResponse, d1::DiscoveryRequest>* stream) {
  std::optional<LiveStream> live;
  {
    std::lock_guard lock(mutex_);
    if (live_.size() >= limits_.maxStreams) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          fmt::format("the controller serves at most {} discovery streams at once", limits_.maxStreams));
    }
    uint64_t id = ++nextId_;
    live_[id] = Live{context, std::chrono::steady_clock::now()};  // its first request is due
    live.emplace(*this, id);
  }
  d1::DiscoveryRequest hello;
  if (!stream->Read(&hello)) return grpc::Status(grpc::StatusCode::CANCELLED, "no subscription");
  setWaiting(live->id(), false);
  if (hello.node().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first request must name the node");
  const std::string node = hello.node();
  // On the mTLS port the node is who its certificate says, whatever it claims, and its
  // credential must not be revoked.
  if (context->auth_context() && context->auth_context()->IsPeerAuthenticated()) {
    auto caller = authenticatedCaller(*context, trustDomain_);
    std::string proven = caller ? caller->node : "";
    if (proven != node) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          fmt::format("the node certificate names node '{}', not '{}'", proven, node));
    }
    std::lock_guard lock(mutex_);
    if (revocations_) {
      if (auto ok = revocations_->current()->check(caller->node, caller->issuedAt); !ok) {
        spdlog::warn("discovery refused: {}", ok.error().message());
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, ok.error().message());
      }
    }
    live_[live->id()].caller = std::move(caller);
  }
  // What the node holds: acknowledged versions per resource (its own word on reconnect).
  std::map<std::string, std::string> acked(hello.known_versions().begin(), hello.known_versions().end());
  {
    std::lock_guard lock(mutex_);
    auto& status = nodes_[node];
    status.node = node;
    status.connected = true;
    ++status.streams;
    forgetOldNodes();
  }
  spdlog::info("node {} subscribed ({} resources already held)", node, acked.size());
  uint64_t generation = 0, nonce = 0;
  bool first = true;
  std::shared_ptr<const NodeRevocations> sentRevocations;
  while (!context->IsCancelled()) {
    uint64_t current = 0;
    auto config = store_.current(&current);
    // The revoked nodes travel as one more resource (checked at every wake-up, 200 ms at most).
    auto revocations = revocations_ ? revocations_->current() : nullptr;
    if (first || current != generation || revocations != sentRevocations) {
      d1::DiscoveryResponse response;
      computeIncrement(*config, acked, &response);
      if (revocations && (!revocations->empty() || acked.contains(kRevokedNodesResource))) {
        auto resource = revokedNodesResource(*revocations);
        auto known = acked.find(resource.name());
        if (known == acked.end() || known->second != resource.version()) *response.add_resources() = std::move(resource);
      }
      sentRevocations = revocations;
      response.set_system_version(std::to_string(current));
      response.set_nonce(std::to_string(++nonce));
      bool empty = response.resources_size() == 0 && response.removed_size() == 0;
      if (!empty || first) {
        size_t bytes = response.ByteSizeLong();
        setWaiting(live->id(), true);  // taking the response, then acknowledging it, is the peer's part
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
        setWaiting(live->id(), false);
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
  auto& status = nodes_[node];
  status.streams = status.streams > 0 ? status.streams - 1 : 0;
  status.connected = status.streams > 0;
  if (status.connected) {
    spdlog::info("node {}: one of its {} streams ended (its tunnel was upgraded)", node, status.streams + 1);
  } else {
    spdlog::info("node {} disconnected", node);
  }
  return grpc::Status::OK;
}

std::vector<NodeStatus> DiscoveryServer::nodes() const {
  std::lock_guard lock(mutex_);
  std::vector<NodeStatus> out;
  for (const auto& [_, s] : nodes_) out.push_back(s);
  return out;
}

}  // namespace sluice::controller
