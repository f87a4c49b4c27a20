#include "sluice/kube/resource_watcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

namespace sluice::kube {

std::chrono::milliseconds backoffDelay(const WatcherOptions& options, int attempt, double random01) {
  double ceiling = static_cast<double>(options.initialBackoff.count());
  for (int i = 0; i < attempt && ceiling < static_cast<double>(options.maxBackoff.count()); ++i) ceiling *= 2;
  ceiling = std::min(ceiling, static_cast<double>(options.maxBackoff.count()));
  return std::chrono::milliseconds(static_cast<int64_t>(ceiling / 2 + ceiling / 2 * std::clamp(random01, 0.0, 1.0)));
}

ResourceWatcher::ResourceWatcher(const KubeApiClient& client, ResourceKind kind, WatcherOptions options,
                                 std::function<void()> onChange)
    : client_(client), kind_(std::move(kind)), options_(options), onChange_(std::move(onChange)) {}

ResourceWatcher::~ResourceWatcher() { stop(); }

void ResourceWatcher::start() { thread_ = std::thread([this] { run(); }); }

void ResourceWatcher::stop() {
  stopping_ = true;
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const ResourceWatcher::Objects> ResourceWatcher::snapshot() const {
  std::lock_guard lock(mutex_);
  return published_;
}

WatcherStats ResourceWatcher::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void ResourceWatcher::sleepFor(std::chrono::milliseconds delay) {
  std::unique_lock lock(mutex_);
  wake_.wait_for(lock, delay, [this] { return stopping_.load(); });
}

void ResourceWatcher::noteFailure(const Error& error) {
  spdlog::warn("kubernetes {}: {}", kind_.path, error.message());
  std::lock_guard lock(mutex_);
  ++stats_.failures;
  stats_.lastError = error.message();
}

void ResourceWatcher::publish(const ObjectCache& cache) {
  {
    std::lock_guard lock(mutex_);
    published_ = std::make_shared<const Objects>(cache.objects);
  }
  if (onChange_) onChange_();
}

Result<bool> ResourceWatcher::listAll() {
  ObjectCache fresh;
  std::string continueToken;
  do {
    auto answer = client_.get(kind_.path + listQuery(options_.pageSize, continueToken, kind_.fieldSelector),
                              options_.requestTimeout);
    if (!answer) return fail(std::move(answer.error()));
    if (answer->status == 410 && !continueToken.empty()) {
      // The continue token expired between pages: start the list over.
      continueToken.clear();
      fresh = ObjectCache{};
      continue;
    }
    if (answer->status == 404 && kind_.optional) {
      cache_ = ObjectCache{};
      {
        std::lock_guard lock(mutex_);
        ++stats_.lists;
        stats_.synced = true;
      }
      publish(cache_);
      return false;
    }
    if (answer->status != 200) {
      return fail(fmt::format("list {}: HTTP {}: {}", kind_.path, answer->status, answer->body.substr(0, 300)));
    }
    auto page = parseListPage(answer->body);
    if (!page) return fail(std::move(page.error()).context("list " + kind_.path));
    for (auto& item : page->items) {
      item["apiVersion"] = kind_.apiVersion;
      item["kind"] = kind_.kind;
      std::string key = objectKey(item);  // first: json's operator= takes its argument by value
      fresh.objects[key] = std::move(item);
    }
    fresh.resourceVersion = page->resourceVersion;
    continueToken = page->continueToken;
  } while (!continueToken.empty() && !stopping_);
  cache_ = std::move(fresh);
  {
    std::lock_guard lock(mutex_);
    ++stats_.lists;
    stats_.synced = true;
  }
  publish(cache_);
  return true;
}

Result<bool> ResourceWatcher::watchOnce() {
  bool relist = false;
  std::optional<Error> malformed;
  auto onLine = [&](std::string_view line) {
    auto event = parseWatchEvent(line);
    if (!event) {
      malformed = std::move(event.error()).context("watch " + kind_.path);
      return false;
    }
    if (event->type == WatchEvent::Type::kError) {
      if (event->errorCode == 410) {
        relist = true;
      } else {
        malformed = Error(fmt::format("watch {}: ERROR {}: {}", kind_.path, event->errorCode, event->errorMessage));
      }
      return false;
    }
    if (event->type != WatchEvent::Type::kBookmark) {
      event->object["apiVersion"] = kind_.apiVersion;
      event->object["kind"] = kind_.kind;
    }
    // Only a validated event reaches the cache: a malformed one changed nothing above.
    bool changed = cache_.apply(*event);
    {
      std::lock_guard lock(mutex_);
      ++stats_.events;
    }
    if (changed) publish(cache_);
    return true;
  };
  {
    std::lock_guard lock(mutex_);
    ++stats_.watches;
  }
  auto idle = std::chrono::seconds(options_.watchTimeoutSeconds + 30);
  auto answer = client_.stream(kind_.path + watchQuery(cache_.resourceVersion, options_.watchTimeoutSeconds, kind_.fieldSelector),
                               onLine, stopping_, idle);
  if (malformed) {
    std::lock_guard lock(mutex_);
    ++stats_.malformed;
    return fail(std::move(*malformed));
  }
  if (!answer) return fail(std::move(answer.error()));
  if (answer->status == 410 || relist) return true;
  if (answer->status != 200) {
    return fail(fmt::format("watch {}: HTTP {}: {}", kind_.path, answer->status, answer->body.substr(0, 300)));
  }
  return false;
}

void ResourceWatcher::run() {
  std::mt19937_64 random(std::random_device{}());
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  bool needList = true;
  int failures = 0;
  while (!stopping_) {
    Status step;
    if (needList) {
      auto listed = listAll();
      if (listed && !*listed) {  // an optional kind that is not installed: look again later
        sleepFor(options_.maxBackoff);
        continue;
      }
      if (listed) needList = false;
      step = listed ? Status{} : fail(std::move(listed.error()));
    } else {
      auto watched = watchOnce();
      if (watched && *watched) {
        std::lock_guard lock(mutex_);
        ++stats_.relistsGone;
        needList = true;
      }
      step = watched ? Status{} : fail(std::move(watched.error()));
    }
    if (stopping_) break;
    if (step) {
      failures = 0;
      continue;
    }
    noteFailure(step.error());
    sleepFor(backoffDelay(options_, failures++, unit(random)));
  }
}

}  // namespace sluice::kube
