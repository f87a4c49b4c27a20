#include "kubernetes/kube_config_source.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "kubernetes/kube_objects.h"

namespace sluice::controller::kube {

using nlohmann::json;

std::vector<ResourceKind> meshResourceKinds() {
  auto crd = [](std::string group, std::string plural, std::string kind) {
    return ResourceKind{.path = "/apis/" + group + "/" + plural, .apiVersion = group, .kind = std::move(kind), .fieldSelector = {},
                        .optional = true};
  };
  return {
      {.path = "/api/v1/pods", .apiVersion = "v1", .kind = "Pod", .fieldSelector = {}, .optional = false},
      {.path = "/api/v1/services", .apiVersion = "v1", .kind = "Service", .fieldSelector = {}, .optional = false},
      crd("networking.istio.io/v1", "virtualservices", "VirtualService"),
      crd("networking.istio.io/v1", "destinationrules", "DestinationRule"),
      crd("security.istio.io/v1", "authorizationpolicies", "AuthorizationPolicy"),
      crd("security.istio.io/v1", "peerauthentications", "PeerAuthentication"),
      crd("sluice.io/v1alpha1", "localratelimits", "LocalRateLimit"),
  };
}

std::vector<ApiResourceNeed> meshApiResources() {
  std::vector<ApiResourceNeed> out;
  for (const auto& kind : meshResourceKinds()) {
    // "/api/v1/pods" -> ("", pods); "/apis/<group>/<version>/<plural>" -> (group, plural).
    std::string_view path = kind.path;
    std::string resource(path.substr(path.rfind('/') + 1));
    std::string group;
    if (path.starts_with("/apis/")) group = std::string(path.substr(6, path.find('/', 6) - 6));
    out.push_back({group, resource, "the controller's configuration: " + kind.kind + " objects (list, watch)"});
  }
  return out;
}

AssembledConfig assembleConfig(const std::vector<std::shared_ptr<const ResourceWatcher::Objects>>& snapshots) {
  AssembledConfig out;
  for (const auto& snapshot : snapshots) {
    for (const auto& [key, object] : *snapshot) {
      std::string what = fmt::format("{} {}", object.value("kind", "?"), key);
      auto doc = loaderDocument(object);
      if (!doc) {
        out.refused.push_back(what + ": " + doc.error().message());
        continue;
      }
      if (!*doc) continue;  // not a mesh object (a pod without an address yet, ...)
      ConfigSet one;
      // The loader reads YAML; JSON is YAML. The "file" names the object in errors.
      auto loaded = loadConfigText("kubernetes " + what, (*doc)->dump(), one);
      if (loaded) loaded = mergeConfig(out.config, std::move(one));
      if (!loaded) out.refused.push_back(loaded.error().message());
    }
  }
  finishConfig(out.config);
  return out;
}

KubernetesSource::KubernetesSource(ApiServer server, ConfigStore& store, WatcherOptions options, std::vector<ResourceKind> kinds)
    : client_(std::move(server)), store_(store) {
  for (auto& kind : kinds) {
    watchers_.push_back(std::make_unique<ResourceWatcher>(client_, std::move(kind), options, [this] {
      std::lock_guard lock(mutex_);
      dirty_ = true;
      wake_.notify_all();
    }));
  }
}

KubernetesSource::~KubernetesSource() { stop(); }

void KubernetesSource::start() {
  for (auto& w : watchers_) w->start();
  thread_ = std::thread([this] { run(); });
}

void KubernetesSource::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  for (auto& w : watchers_) w->stop();
}

void KubernetesSource::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait(lock, [this] { return dirty_ || stopping_; });
    if (stopping_) break;
    // A burst of events (a rollout) becomes one configuration: wait for it to settle a little.
    wake_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stopping_; });
    dirty_ = false;
    lock.unlock();
    bool synced = true;
    std::vector<std::shared_ptr<const ResourceWatcher::Objects>> snapshots;
    for (const auto& w : watchers_) {
      synced = synced && w->stats().synced;
      snapshots.push_back(w->snapshot());
    }
    if (synced) {
      auto assembled = assembleConfig(snapshots);
      std::string problems;
      for (const auto& r : assembled.refused) problems += (problems.empty() ? "" : "; ") + r;
      store_.accept(std::move(assembled.config), problems);
      lock.lock();
      refused_ = std::move(assembled.refused);
    } else {
      lock.lock();
    }
  }
}

json KubernetesSource::status() const {
  json kinds = json::array();
  for (const auto& w : watchers_) {
    auto s = w->stats();
    kinds.push_back({{"path", w->kind().path}, {"synced", s.synced}, {"lists", s.lists}, {"watches", s.watches},
                     {"relistsGone", s.relistsGone}, {"malformedEvents", s.malformed}, {"failures", s.failures},
                     {"events", s.events}, {"lastError", s.lastError}});
  }
  std::lock_guard lock(mutex_);
  return {{"apiServer", client_.server().url}, {"kinds", kinds}, {"refused", refused_}};
}

}  // namespace sluice::controller::kube
