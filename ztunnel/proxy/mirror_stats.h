// Node-wide counts of mirrored requests (VirtualService `mirror`), by mirror destination, for
// /metrics. Mirrors are a share of the traffic of the routes that ask for them, so one lock
// per copy costs little.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace sluice::ztunnel {

class MirrorStats {
 public:
  struct Counts {
    uint64_t sent = 0;     // the copy left (its connection was opened)
    uint64_t dropped = 0;  // not sent: the worker's in-flight bound, a body over the bound, no endpoint
    uint64_t failed = 0;   // the mirror could not be reached, reset, or timed out before answering
    int64_t active = 0;    // copies in flight now
  };
  enum class Outcome { kSent, kDropped, kFailed };
  void count(const std::string& destination, Outcome outcome) {
    std::lock_guard lock(mutex_);
    Counts& c = counts_[destination];
    (outcome == Outcome::kSent ? c.sent : outcome == Outcome::kDropped ? c.dropped : c.failed)++;
  }
  // A copy's handler came (+1) or went (-1).
  void active(const std::string& destination, int delta) {
    std::lock_guard lock(mutex_);
    counts_[destination].active += delta;
  }
  std::map<std::string, Counts> counts() const {
    std::lock_guard lock(mutex_);
    return counts_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, Counts> counts_;
};

}  // namespace sluice::ztunnel
