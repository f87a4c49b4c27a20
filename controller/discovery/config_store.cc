#include "discovery/config_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>

namespace sluice::controller {
namespace fs = std::filesystem;

namespace {

std::string fingerprintOf(const std::string& dir) {
  std::string out;
  std::error_code ec;
  std::vector<std::string> parts;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    auto time = e.last_write_time(ec).time_since_epoch().count();
    parts.push_back(fmt::format("{}:{}:{}", e.path().filename().string(), e.is_regular_file(ec) ? e.file_size(ec) : 0, time));
  }
  std::sort(parts.begin(), parts.end());
  for (const auto& p : parts) out += p + "\n";
  return out;
}

}  // namespace

bool ConfigStore::refresh(const std::string& dir) {
  std::string fingerprint = fingerprintOf(dir);
  {
    std::lock_guard lock(mutex_);
    if (fingerprint == fingerprint_) return false;
  }
  auto loaded = loadConfigDirectory(dir);
  std::lock_guard lock(mutex_);
  fingerprint_ = fingerprint;
  if (!loaded) {
    lastError_ = loaded.error().message();
    spdlog::error("configuration refused, the last good one stays in force: {}", lastError_);
    return false;
  }
  lastError_.clear();
  config_ = std::make_shared<const ConfigSet>(std::move(*loaded));
  ++generation_;
  spdlog::info("configuration generation {}: {} objects", generation_, config_->resources.size());
  changed_.notify_all();
  return true;
}

bool ConfigStore::accept(ConfigSet config, std::string problems) {
  // The content's fingerprint: every resource's name and content version.
  std::string fingerprint = "accepted\n";
  for (const auto& [name, loaded] : config.resources) fingerprint += name + "@" + loaded.resource.version() + "\n";
  std::lock_guard lock(mutex_);
  if (problems != lastError_ && !problems.empty()) spdlog::warn("configuration: objects left out: {}", problems);
  lastError_ = std::move(problems);
  if (fingerprint == fingerprint_) return false;
  fingerprint_ = std::move(fingerprint);
  config_ = std::make_shared<const ConfigSet>(std::move(config));
  ++generation_;
  spdlog::info("configuration generation {}: {} objects", generation_, config_->resources.size());
  changed_.notify_all();
  return true;
}

std::shared_ptr<const ConfigSet> ConfigStore::current(uint64_t* generation) const {
  std::lock_guard lock(mutex_);
  if (generation != nullptr) *generation = generation_;
  return config_;
}

uint64_t ConfigStore::waitForChange(uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return generation_ != seen; });
  return generation_;
}

std::string ConfigStore::lastError() const {
  std::lock_guard lock(mutex_);
  return lastError_;
}

}  // namespace sluice::controller
