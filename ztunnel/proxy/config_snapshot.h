// The configuration the data path decides by: immutable once published, versioned, swapped
// atomically. Workers take a reference per new connection, so an update never changes what an
// established connection was decided with, and a reader never sees half an update.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace sluice::ztunnel {

struct ConfigSnapshot {
  uint64_t version = 0;
  // Istio's outboundTrafficPolicy: ALLOW_ANY passes unknown destinations through;
  // REGISTRY_ONLY refuses them (there is no registry before the controller issue: all unknown).
  enum class OutboundPolicy { kAllowAny, kRegistryOnly } outboundPolicy = OutboundPolicy::kAllowAny;
};

class SnapshotStore {
 public:
  SnapshotStore() : current_(std::make_shared<const ConfigSnapshot>()) {}
  std::shared_ptr<const ConfigSnapshot> current() const { return current_.load(std::memory_order_acquire); }
  // Publishes `next` with a version one above the current one.
  void publish(ConfigSnapshot next) {
    next.version = current()->version + 1;
    current_.store(std::make_shared<const ConfigSnapshot>(next), std::memory_order_release);
  }

 private:
  std::atomic<std::shared_ptr<const ConfigSnapshot>> current_;
};

}  // namespace sluice::ztunnel
