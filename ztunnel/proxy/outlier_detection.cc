#include "proxy/outlier_detection.h"

#include <algorithm>

namespace sluice::ztunnel {

Outcome outcomeOfStatus(int status) {
  if (status == 502 || status == 503 || status == 504) return Outcome::kGatewayError;
  if (status >= 500) return Outcome::kServerError;
  return Outcome::kSuccess;
}

bool recordOutcome(const OutlierPolicy& policy, EndpointOutlierState& state, Outcome outcome) {
  // A counter that reached its threshold trips (and starts again); 0 means that check is off.
  auto trips = [](uint32_t& counter, uint32_t threshold) {
    if (threshold == 0 || ++counter < threshold) return false;
    counter = 0;
    return true;
  };
  switch (outcome) {
    case Outcome::kSuccess:
      state.consecutive5xx = state.consecutiveGateway = 0;
      // A success of the connection itself (split mode) or of the whole exchange.
      state.consecutiveLocalOrigin = 0;
      return false;
    case Outcome::kServerError:
      state.consecutiveGateway = 0;
      return trips(state.consecutive5xx, policy.consecutive5xx);
    case Outcome::kGatewayError: {
      bool tripped = trips(state.consecutive5xx, policy.consecutive5xx);
      tripped |= trips(state.consecutiveGateway, policy.consecutiveGateway);
      return tripped;
    }
    case Outcome::kLocalOriginFailure: {
      if (policy.splitLocalOrigin) return trips(state.consecutiveLocalOrigin, policy.consecutiveLocalOrigin);
      // Not split: the failure is the 503 the proxy answers for it.
      bool tripped = trips(state.consecutive5xx, policy.consecutive5xx);
      tripped |= trips(state.consecutiveGateway, policy.consecutiveGateway);
      return tripped;
    }
  }
  return false;
}

bool mayEject(const OutlierPolicy& policy, size_t ejected, size_t total) {
  if (total == 0) return false;
  if (ejected == 0) return true;  // at least one host, whatever the percentage
  return (ejected + 1) * 100 <= total * policy.maxEjectionPercent;
}

std::chrono::milliseconds ejectionTime(const OutlierPolicy& policy, uint32_t priorEjections) {
  auto time = policy.baseEjection * (static_cast<int64_t>(priorEjections) + 1);
  return std::min(time, std::max(policy.maxEjection, policy.baseEjection));
}

uint32_t decayedEjections(const OutlierPolicy& policy, uint32_t ejections, SteadyTime since, SteadyTime now) {
  if (now <= since || policy.interval.count() <= 0) return ejections;
  auto intervals = (now - since) / policy.interval;
  return intervals >= ejections ? 0 : ejections - static_cast<uint32_t>(intervals);
}

bool ignoreEjections(const OutlierPolicy& policy, size_t healthy, size_t total) {
  return total > 0 && healthy * 100 < total * policy.minHealthPercent;
}

void OutlierTracker::expire(EndpointOutlierState& state, SteadyTime now) const {
  if (state.inForce && !state.ejected(now)) {
    state.inForce = false;
    state.lastChange = state.ejectedUntil;  // the multiplier decays from the return
    inForce_.fetch_sub(1, std::memory_order_relaxed);
  }
}

bool OutlierTracker::record(const std::string& serviceKey, size_t hostCount, const OutlierPolicy& policy,
                            const std::string& host, Outcome outcome) {
  if (!policy.enabled) return false;
  if (outcome == Outcome::kSuccess && tracked_.load(std::memory_order_relaxed) == 0) return false;
  SteadyTime now = clock_();
  std::lock_guard lock(mutex_);
  auto& endpoints = services_[serviceKey];
  auto it = endpoints.find(host);
  if (it == endpoints.end()) {
    if (outcome == Outcome::kSuccess) {
      if (endpoints.empty()) services_.erase(serviceKey);
      return false;
    }
    it = endpoints.emplace(host, EndpointOutlierState{}).first;
    tracked_.fetch_add(1, std::memory_order_relaxed);
  }
  EndpointOutlierState& state = it->second;
  expire(state, now);
  bool ejectNow = recordOutcome(policy, state, outcome) && !state.ejected(now);
  if (ejectNow) {
    size_t ejected = 0;
    for (auto& [_, other] : endpoints) {
      expire(other, now);
      ejected += other.inForce ? 1 : 0;
    }
    ejectNow = mayEject(policy, ejected, std::max(hostCount, endpoints.size()));
  }
  if (ejectNow) {
    uint32_t prior = decayedEjections(policy, state.ejections, state.lastChange, now);
    state.ejectedUntil = now + ejectionTime(policy, prior);
    state.ejections = prior + 1;
    state.lastChange = now;
    state.inForce = true;
    inForce_.fetch_add(1, std::memory_order_relaxed);
    ejectionsTotal_.fetch_add(1, std::memory_order_relaxed);
  } else if (outcome == Outcome::kSuccess) {
    // Healthy again: forget it once the multiplier has decayed too.
    state.ejections = decayedEjections(policy, state.ejections, state.lastChange, now);
    if (state.ejections == 0 && state.clean()) {
      endpoints.erase(it);
      tracked_.fetch_sub(1, std::memory_order_relaxed);
      if (endpoints.empty()) services_.erase(serviceKey);
    }
  }
  return ejectNow;
}

bool OutlierTracker::ejected(const std::string& serviceKey, const std::string& host) const {
  if (inForce_.load(std::memory_order_relaxed) == 0) return false;
  SteadyTime now = clock_();
  std::lock_guard lock(mutex_);
  auto service = services_.find(serviceKey);
  if (service == services_.end()) return false;
  auto it = service->second.find(host);
  if (it == service->second.end()) return false;
  expire(it->second, now);
  return it->second.inForce;
}

size_t OutlierTracker::ejectedNow() const {
  SteadyTime now = clock_();
  std::lock_guard lock(mutex_);
  size_t n = 0;
  for (const auto& [_, endpoints] : services_) {
    for (const auto& [__, state] : endpoints) n += state.ejected(now) ? 1 : 0;
  }
  return n;
}

std::vector<OutlierTracker::EndpointView> OutlierTracker::describe() const {
  SteadyTime now = clock_();
  std::lock_guard lock(mutex_);
  std::vector<EndpointView> out;
  for (const auto& [service, endpoints] : services_) {
    for (const auto& [host, state] : endpoints) {
      auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(state.ejectedUntil - now).count();
      out.push_back({service, host, state.ejected(now), state.ejections, std::max<int64_t>(remaining, 0),
                     state.consecutive5xx, state.consecutiveGateway, state.consecutiveLocalOrigin});
    }
  }
  return out;
}

}  // namespace sluice::ztunnel
