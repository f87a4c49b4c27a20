// A pod as the tunnel holds it while the pod is enrolled: identity, its network namespace (the
// tunnel's sockets for this pod are created inside it), and live counters. Shared by the pod's
// listeners and connections on a worker and by the admin thread, which only reads counters.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/buffer_pool.h"
#include "proxy/fail_reason.h"
#include "proxy/request_metrics.h"
#include "proxy/tcp_metrics.h"
#include "sluice/common/unique_fd.h"

namespace sluice::ztunnel {

enum class Direction { kOutbound = 0, kInbound = 1 };


struct PodCounters {
  std::array<std::atomic<uint64_t>, 2> opened{};      // by Direction
  std::array<std::atomic<uint64_t>, 2> closed{};
  std::array<std::atomic<uint64_t>, 2> bytesFromClient{};  // client -> server
  std::array<std::atomic<uint64_t>, 2> bytesToClient{};    // server -> client
  std::array<std::atomic<uint64_t>, static_cast<size_t>(FailReason::kCount)> failed{};
  std::atomic<int64_t> active{0};
};

struct PodRuntime {
  std::string uid, name, ns, serviceAccount;
  std::string identity;  // spiffe://<trust-domain>/ns/<ns>/sa/<serviceAccount>; "" when the node has no credentials
  std::vector<std::string> addresses;
  std::map<std::string, std::string> labels;  // as the node agent saw them (policy fallback)
  UniqueFd netns;
  uint64_t netnsCookie = 0;
  int worker = 0;  // every listener and connection of the pod lives on this worker
  PodCounters counters;
  RequestMetrics requests;  // L7: the pod's outbound requests (reporter=source)
  TcpMetrics tcp;           // connections by peer (both directions)
  std::atomic<bool> draining{false};
  // Draining because a newer tunnel took the pod over (ZDS Replaced), not because the pod is
  // leaving: the app is still there, so HBONE streams that arrive are still served.
  std::atomic<bool> handedOver{false};
  // Worker-thread only: the pod's share of its worker's receive buffers, and when its draining
  // connections are reset (set when the pod is removed).
  BufferShare buffers;
  std::optional<std::chrono::steady_clock::time_point> drainDeadline;
  std::string key() const { return ns + "/" + name; }
  // A connection accepted (or an HBONE stream opened) now is dropped only when the pod is
  // leaving; once handed over, what still reaches this tunnel is served (the app is there).
  bool refusesNewConnections() const { return draining && !handedOver; }
};

}  // namespace sluice::ztunnel
