// Caps the connections one source address may hold on a listener kind (15006, 15008) across
// all workers, so one host cannot take every descriptor and buffer of the node: a connection
// over the cap is refused at accept (counted as `source_limit`). Thread-safe: workers share it.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace sluice::ztunnel {

class SourceLimiter {
 public:
  // 0: no limit.
  explicit SourceLimiter(size_t maxPerSource) : max_(maxPerSource) {}

  // A lease on one connection from `source`, given back when the lease is destroyed; null when
  // `source` already holds the maximum. The limiter must outlive its leases.
  std::shared_ptr<void> acquire(const std::string& source) {
    std::lock_guard lock(mutex_);
    size_t& held = held_[source];
    if (max_ != 0 && held >= max_) {
      if (held == 0) held_.erase(source);
      return nullptr;
    }
    ++held;
    // Non-null (a null shared_ptr would read as "refused"); the deleter gives the slot back.
    return std::shared_ptr<void>(static_cast<void*>(this), [this, source](void*) { giveBack(source); });
  }
  size_t held(const std::string& source) const {
    std::lock_guard lock(mutex_);
    auto it = held_.find(source);
    return it == held_.end() ? 0 : it->second;
  }
  size_t limit() const { return max_; }

 private:
  void giveBack(const std::string& source) {
    std::lock_guard lock(mutex_);
    auto it = held_.find(source);
    if (it != held_.end() && --it->second == 0) held_.erase(it);
  }
  size_t max_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, size_t> held_;
};

}  // namespace sluice::ztunnel
