// Polling, and what e2e tests read of a running tunnel: its live connections (admin endpoint), descriptors,
// descriptor limit and resident memory (/proc).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "simcluster/mesh_node.h"
#include "sluice/common/process.h"

namespace sluice {

// Polls `condition` every 200 ms until it holds (true) or `timeout` passes (false).
inline bool waitFor(const std::function<bool()>& condition, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    ::usleep(200000);
  }
  return false;
}

// Connections the tunnel relays now (all pods, draining ones included), or -1 when unknown.
inline int64_t activeConnections(const sim::MeshNode& node) {
  auto body = node.httpGet("127.0.0.1:15000", "/stats/connections");
  if (!body) return -1;
  auto j = nlohmann::json::parse(*body, nullptr, false);
  return j.is_object() ? j.value("active", int64_t{-1}) : -1;
}

inline bool waitForActive(const sim::MeshNode& node, int64_t want, std::chrono::seconds timeout = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (activeConnections(node) == want) return true;
    ::usleep(100000);
  }
  return false;
}

inline size_t openFds(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid))) ++n;
  return n;
}

// The soft RLIMIT_NOFILE of a process, from /proc/<pid>/limits.
inline uint64_t openFileLimit(pid_t pid) {
  std::ifstream limits(fmt::format("/proc/{}/limits", pid));
  std::string line;
  while (std::getline(limits, line)) {
    if (line.rfind("Max open files", 0) == 0) return std::stoull(line.substr(26));
  }
  return 1024;
}

inline uint64_t rssKiB(pid_t pid) { return procStatusValue(fmt::format("/proc/{}/status", pid), "VmRSS"); }
// The anonymous part of RSS: heap, stacks and receive buffers, not shared libraries' pages.
inline uint64_t anonymousRssKiB(pid_t pid) { return procStatusValue(fmt::format("/proc/{}/status", pid), "RssAnon"); }

}  // namespace sluice
