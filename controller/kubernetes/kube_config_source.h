// The controller's configuration from the Kubernetes API (instead of a YAML directory): one
// ResourceWatcher per kind the mesh reads, and on every change the configuration assembled
// again from their snapshots and offered to the ConfigStore. Nothing is published until every
// kind has been listed once (a half-listed cluster would push routes without their services).
//
// Object by object, unlike the directory's all or nothing: one object the loader refuses (a
// VirtualService with a field Sluice does not support, a headless Service) is left out and
// named in the store's lastError and in status(); the rest of the mesh's configuration goes on.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "discovery/config_store.h"
#include "sluice/kube/resource_watcher.h"
#include "sluice/common/process_requirements.h"

namespace sluice::controller::kube {

// The generic list/watch client (common/include/sluice/kube).
using namespace sluice::kube;

// Pods, Services, and the Istio and Sluice kinds the loader supports (CRDs are optional).
std::vector<ResourceKind> meshResourceKinds();

// The same kinds as RBAC names them (group, plural), for --print-requirements and the chart.
std::vector<ApiResourceNeed> meshApiResources();

struct AssembledConfig {
  ConfigSet config;
  std::vector<std::string> refused;  // "<Kind> <ns>/<name>: why"
};

// The configuration of these objects (every watcher's snapshot), finished (endpoints, versions).
AssembledConfig assembleConfig(const std::vector<std::shared_ptr<const ResourceWatcher::Objects>>& snapshots);

class KubernetesSource {
 public:
  KubernetesSource(ApiServer server, ConfigStore& store, WatcherOptions options = {},
                   std::vector<ResourceKind> kinds = meshResourceKinds());
  ~KubernetesSource();
  KubernetesSource(const KubernetesSource&) = delete;
  KubernetesSource& operator=(const KubernetesSource&) = delete;

  void start();
  void stop();
  // Per kind: lists, watches, relists, malformed events, failures, last error, synced; and
  // the objects left out of the last configuration.
  nlohmann::json status() const;

 private:
  void run();

  KubeApiClient client_;
  ConfigStore& store_;
  std::vector<std::unique_ptr<ResourceWatcher>> watchers_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool dirty_ = false;
  bool stopping_ = false;
  std::vector<std::string> refused_;
  std::thread thread_;
};

}  // namespace sluice::controller::kube
