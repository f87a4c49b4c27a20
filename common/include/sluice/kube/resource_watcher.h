// Keeps one Kubernetes resource (all pods, all VirtualServices, ...) mirrored in memory with
// the list/watch protocol: list (paged), then watch from the list's resourceVersion with
// bookmarks; a watch that ends is resumed from the last version seen; 410 Gone (as an HTTP
// status or an ERROR event) lists again; transport errors and malformed answers back off
// exponentially (with jitter) before the next try. A malformed event is refused with an error
// naming it and changes nothing: the watch is dropped and resumed from the last good version.
//
// One thread per watcher. Readers take immutable snapshots; onChange is called (on the
// watcher's thread) after every change is published.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "sluice/kube/kube_api_client.h"
#include "sluice/kube/watch_protocol.h"

namespace sluice::kube {

struct ResourceKind {
  std::string path;           // "/api/v1/pods", "/apis/networking.istio.io/v1/virtualservices"
  std::string apiVersion;     // of the objects: list items carry none, so it is set from here
  std::string kind;           // ditto
  std::string fieldSelector;  // e.g. "spec.nodeName=node1"; empty: all
  // A CustomResourceDefinition that may not be installed: a 404 on the list counts as an
  // empty, synced list, and the list is tried again after the longest back-off.
  bool optional = false;
};

struct WatcherOptions {
  size_t pageSize = 500;
  int watchTimeoutSeconds = 300;                           // the server ends a watch after this
  std::chrono::milliseconds initialBackoff{200};
  std::chrono::milliseconds maxBackoff{30000};
  std::chrono::seconds requestTimeout{60};                 // a list page
};

// Exponential back-off with "equal jitter": attempt n waits between half and all of
// min(max, initial * 2^n). Pure; `random01` in [0, 1).
std::chrono::milliseconds backoffDelay(const WatcherOptions& options, int attempt, double random01);

struct WatcherStats {
  uint64_t lists = 0, watches = 0, relistsGone = 0, malformed = 0, failures = 0, events = 0;
  std::string lastError;
  bool synced = false;  // a list has succeeded at least once
};

class ResourceWatcher {
 public:
  using Objects = std::map<std::string, nlohmann::json>;

  ResourceWatcher(const KubeApiClient& client, ResourceKind kind, WatcherOptions options = {},
                  std::function<void()> onChange = {});
  ~ResourceWatcher();
  ResourceWatcher(const ResourceWatcher&) = delete;
  ResourceWatcher& operator=(const ResourceWatcher&) = delete;

  void start();
  void stop();

  std::shared_ptr<const Objects> snapshot() const;
  WatcherStats stats() const;
  const ResourceKind& kind() const { return kind_; }

 private:
  void run();
  // Lists every page; returns false when an optional kind is not installed (empty, synced).
  Result<bool> listAll();
  // One watch request; returns true when the next step is a list (410), false to watch again.
  Result<bool> watchOnce();
  void publish(const ObjectCache& cache);
  void sleepFor(std::chrono::milliseconds delay);
  void noteFailure(const Error& error);

  const KubeApiClient& client_;
  ResourceKind kind_;
  WatcherOptions options_;
  std::function<void()> onChange_;

  ObjectCache cache_;  // the watcher thread's own
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::shared_ptr<const Objects> published_ = std::make_shared<Objects>();
  WatcherStats stats_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace sluice::kube
