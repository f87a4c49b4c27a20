#include "proxy/circuit_breaker.h"

namespace sluice::ztunnel {

uint32_t limitOf(const ConnectionPoolPolicy& policy, PoolResource resource) {
  switch (resource) {
    case PoolResource::kConnections: return policy.maxConnections;
    case PoolResource::kPendingRequests: return policy.maxPendingRequests;
    case PoolResource::kRequests: return policy.maxRequests;
    case PoolResource::kRetries: return policy.maxRetries;
    case PoolResource::kCount: break;
  }
  return ConnectionPoolPolicy::kUnlimited;
}

bool CircuitBreaker::tryAcquire(PoolResource resource, uint32_t limit) {
  auto& open = open_[index(resource)];
  uint32_t now = open.load(std::memory_order_relaxed);
  // Compare-and-swap, so two workers racing for the last one cannot both take it.
  do {
    if (now >= limit) {
      overflows_[index(resource)].fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  } while (!open.compare_exchange_weak(now, now + 1, std::memory_order_relaxed));
  return true;
}

void CircuitBreaker::release(PoolResource resource) { open_[index(resource)].fetch_sub(1, std::memory_order_relaxed); }

std::optional<BreakerSlot> DestinationPool::acquire(PoolResource resource) const {
  uint32_t limit = limitOf(policy, resource);
  if (breaker == nullptr || limit == ConnectionPoolPolicy::kUnlimited) return BreakerSlot{};
  if (!breaker->tryAcquire(resource, limit)) return std::nullopt;
  return BreakerSlot(breaker, resource);
}

std::shared_ptr<CircuitBreaker> CircuitBreakers::get(const std::string& destination) {
  std::lock_guard lock(mutex_);
  auto& breaker = breakers_[destination];
  if (!breaker) breaker = std::make_shared<CircuitBreaker>();
  return breaker;
}

void CircuitBreakers::retainOnly(const std::set<std::string>& keep) {
  std::lock_guard lock(mutex_);
  std::erase_if(breakers_, [&keep](const auto& entry) { return !keep.contains(entry.first) && entry.second.use_count() == 1; });
}

std::vector<CircuitBreakers::View> CircuitBreakers::describe() const {
  std::lock_guard lock(mutex_);
  std::vector<View> out;
  for (const auto& [destination, breaker] : breakers_) {
    View v{destination, {}, {}};
    for (size_t i = 0; i < static_cast<size_t>(PoolResource::kCount); ++i) {
      v.open[i] = breaker->open(static_cast<PoolResource>(i));
      v.overflows[i] = breaker->overflows(static_cast<PoolResource>(i));
    }
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace sluice::ztunnel
