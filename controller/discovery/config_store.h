// The controller's current configuration: the last good load of the directory, with a
// generation that grows on every accepted change. A refused change leaves it as it was and is
// remembered (lastError) for the operator. Thread-safe; waiters are woken on every change.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "config/config_loader.h"

namespace sluice::controller {

class ConfigStore {
 public:
  // Loads `dir` if it changed since the last look (names, sizes, modification times).
  // Returns true when a new configuration was accepted.
  bool refresh(const std::string& dir);

  // Takes a configuration assembled elsewhere (the Kubernetes source). `problems` (objects left
  // out, and why) becomes lastError. Returns true when the content changed (a new generation).
  bool accept(ConfigSet config, std::string problems);

  std::shared_ptr<const ConfigSet> current(uint64_t* generation = nullptr) const;
  // Waits up to `timeout` for a generation newer than `seen`; returns the current generation.
  uint64_t waitForChange(uint64_t seen, std::chrono::milliseconds timeout) const;
  std::string lastError() const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::shared_ptr<const ConfigSet> config_ = std::make_shared<ConfigSet>();
  uint64_t generation_ = 0;
  std::string fingerprint_;
  std::string lastError_;
};

}  // namespace sluice::controller
