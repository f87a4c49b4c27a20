// What every handler of one worker may use: the loop, the options, the configuration, the
// node's identities, the socket factory, the HBONE pool, the per-source caps. One per worker,
// owned by the Worker; handlers hold a reference (they never outlive their worker's loop).
#pragma once

#include <atomic>
#include <chrono>
#include <random>
#include <string>

#include "capture/orig_dst_table.h"
#include "engine/event_loop.h"
#include "http2/http2_session.h"
#include "identity/certificate_manager.h"
#include "proxy/config_snapshot.h"
#include "proxy/hbone_pool.h"
#include "l7/retry_policy.h"
#include "proxy/outlier_detection.h"
#include "proxy/pod_socket_factory.h"
#include "proxy/rate_limiter.h"
#include "proxy/source_limiter.h"

namespace sluice::ztunnel {

class HboneClient;
class MirrorStats;

struct WorkerOptions {
  int index = 0;
  EventLoopOptions loop;
  std::chrono::milliseconds connectTimeout{10000};
  std::chrono::milliseconds idleTimeout{std::chrono::hours(1)};
  std::chrono::milliseconds drainTimeout{30000};
  std::string trustDomain = "cluster.local";  // HBONE peers must prove an identity in it
  std::chrono::milliseconds poolIdleTimeout{30000};  // an HBONE client connection without streams
  // An accepted HBONE connection must complete TLS and prove its identity this soon after the
  // accept, however slowly it trickles bytes.
  std::chrono::milliseconds handshakeTimeout{5000};
  // A server-side HBONE connection without streams for this long is closed (GOAWAY + FIN);
  // longer than any client's pool idle timeout, so well-behaved clients close first.
  std::chrono::milliseconds hboneIdleTimeout{120000};
  // Ciphertext waiting for one HBONE connection's socket; above it the tunnel stops reading
  // from that peer until the socket takes it (a peer that never reads cannot grow memory).
  size_t maxQueuedCiphertext = 1 << 20;
  // Of the worker's receive buffers, what one pod's connections may hold at once.
  uint64_t podBufferShareBytes = 8 << 20;
  // 1 MiB per stream covers a LAN's bandwidth-delay product many times over; 4 MiB per
  // connection caps what one hostile connection can make us hold.
  http2::SessionLimits hboneLimits{.streamWindow = 1 << 20, .connectionWindow = 4 << 20};
};

// Per-source connection caps, shared by all workers (owned by main).
struct SourceLimits {
  SourceLimiter plaintext{1024};  // 15006
  SourceLimiter hbone{512};       // 15008
};

struct WorkerContext {
  EventLoop& loop;
  const WorkerOptions& options;
  const SnapshotStore& config;
  const agent::OrigDstTable* origDst;         // null in tests: every outbound accept is refused
  const CertificateManager* certificates;     // null: no identities on this node, plaintext only
  const PodSocketFactory& sockets;
  SourceLimits& limits;
  HbonePool<HboneClient>& pool;
  std::atomic<size_t>& live;                  // relays of this worker
  OutlierTracker* outliers;                   // the node's outlier detection (null: none, in tests)
  l7::RetryBudgets* retryBudgets;             // the node's retry budgets (null: no retries, in tests)
  RateLimiters* rateLimiters;                 // the node's per-principal rate-limit buckets (null: none, in tests)
  MirrorStats* mirrorStats;                   // the node's mirrored-request counts (null: not counted, in tests)
  std::mt19937_64 random{std::random_device{}()};  // weighted splits, random LB, trace ids
  uint64_t sequence = 0;                            // round robin
  OutstandingRequests outstanding;                  // LEAST_REQUEST: requests in flight per endpoint
  size_t mirrorsInFlight = 0;                       // MirrorRequest handlers alive (bounded)
};

}  // namespace sluice::ztunnel
