// What the HTTP/1.1 and the HTTP/2 outbound proxies (http_outbound.h, http2_outbound.h) share:
// one app connection's socket endpoint, up to kMaxUpstreams upstream endpoints told apart by
// their op codes, the pod's connection counters, the idle and drain deadlines, and retiring
// once every endpoint is quiescent. The subclass owns the protocol: pump() moves bytes, and
// per-slot state of its own lives beside `upstreams_` (cleared in clearUpstream()).
//
// Invariants: an endpoint is destroyed only when quiescent (no io_uring operation can still
// name it); the handler retires only when finishing, not pumping, and every endpoint is gone.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/endpoint.h"
#include "engine/event_loop.h"
#include "proxy/config_snapshot.h"
#include "proxy/http_request_routing.h"
#include "proxy/mirror_request.h"
#include "proxy/request_record.h"
#include "proxy/upstream.h"
#include "proxy/worker_context.h"
#include "sluice/common/socket_address.h"
#include "sluice/common/unique_fd.h"

namespace sluice::ztunnel {

class L7Connection : public IoHandler, public EndpointOwner {
 public:
  static constexpr int kMaxUpstreams = 8;  // upstream connections one app connection keeps
  static constexpr uint8_t kOpStride = 8;  // op codes per endpoint (>= SocketEndpoint::kOpCount)

  L7Connection(WorkerContext& context, std::shared_ptr<PodRuntime> pod, SocketAddress peer, SocketAddress service);
  ~L7Connection() override;

  void onCompletion(uint8_t op, int res, uint32_t flags) final;
  void onTick(std::chrono::steady_clock::time_point now) final;
  void onBuffersAvailable() final;
  void onEndpointProgress() final { pump(); }
  void onEndpointConnected(Endpoint& endpoint, bool ok, FailReason reason) final;

 protected:
  struct UpstreamSlot {
    std::unique_ptr<Endpoint> endpoint;  // null: the slot is free
    std::string key;                     // the endpoint's address
    bool connected = false, closing = false;
    BreakerSlot connection;        // its destination's maxConnections count (empty: not limited)
    uint32_t requests = 0;         // requests it was given
    uint32_t maxRequests = 0;      // connectionPool.http.maxRequestsPerConnection (0: unlimited)
    // Not connected by then (tcp.connectTimeout), it failed: checked at the tick, for the
    // HBONE CONNECT no answer comes to (a socket's connect has its own timeout).
    std::chrono::steady_clock::time_point connectDeadline;
    // Its destination's connectionPool (proxy/upstream_policy.h): closed once idle after
    // maxDuration from openedAt (`expired`: it takes no new request meanwhile), or after
    // idleTimeout without requests (idleSince: since when, checked at the tick; 0: kept);
    // HTTP/2: at most maxStreams streams at once (0: unlimited).
    std::chrono::steady_clock::time_point openedAt;
    std::chrono::milliseconds maxDuration{0}, idleTimeout{0};
    std::optional<std::chrono::steady_clock::time_point> idleSince;
    bool expired = false;
    uint32_t maxStreams = 0;
    bool exhausted() const { return expired || (maxRequests != 0 && requests >= maxRequests); }
  };

  virtual void pump() = 0;
  // The deadline asked for with wakeAt() came (or an earlier one): handle what is due at `now`
  // and ask for the next one; pump() follows.
  virtual void onTimer(std::chrono::steady_clock::time_point /*now*/) {}
  // Aborts what is in flight (reset: the peers see resets) and closes every endpoint.
  virtual void finish(bool reset) = 0;
  // The upstream in `slot` could not be reached (counted already); pump() follows.
  virtual void upstreamConnectFailed(int slot) = 0;
  // The slot's endpoint is closed and gone: drop the subclass's state for it.
  virtual void clearUpstream(int /*slot*/) {}
  // The slot's connection carries no request now and none waits for it (it may be closed to
  // make room).
  virtual bool upstreamIdle(int slot) const = 0;

  // The app's socket, as endpoint 0 (op codes [0, kOpStride)).
  void adoptClient(UniqueFd fd);
  // Starts connecting `slot` (free) to `address`, an endpoint of the destination `pool`
  // describes; the outcome arrives in onEndpointConnected. Fails with kOverflow (nothing
  // opened) when the destination has its maxConnections open.
  std::expected<void, UpstreamFailure> openUpstreamIn(int slot, const SocketAddress& address,
                                                      const std::shared_ptr<const WorkloadEntry>& workload,
                                                      const DestinationPool& pool);
  // One `resource` of the routed request's destination (in flight: http2MaxRequests; waiting
  // for its connection: http1MaxPendingRequests), held by `into` (the request's record);
  // false when the destination has as many as it may (answer 503 UO).
  static bool admit(const HttpRouting& routing, PoolResource resource, BreakerSlot& into);
  // The connectionPool of the destination `routing` chose (none: no limits).
  static const DestinationPool& poolOf(const HttpRouting& routing);
  int freeSlot() const;
  // At the tick: closes the slot's connection when idle past its idle timeout, or past its
  // maximum duration (marked expired then, so it takes no new request).
  void expireUpstream(int slot, std::chrono::steady_clock::time_point now);
  // Closes one idle upstream connection counted by `breaker` (its count is given back); false
  // when there is none.
  bool closeIdleUpstreamOf(const CircuitBreaker* breaker);
  int slotOf(const Endpoint& endpoint) const;
  void closeUpstream(int slot, bool reset);
  // Aborts the app's endpoint and every upstream (the base half of finish()).
  void abortAll(bool reset);
  void reapClosedUpstreams();
  void maybeRetire();
  void touch() { lastActivity_ = context_.loop.now(); }
  // One io_uring timeout per connection, for its earliest deadline (fault delays, route
  // timeouts): asking for a later time than the armed one changes nothing (onTimer asks
  // again), an earlier one moves it.
  void wakeAt(std::chrono::steady_clock::time_point when);
  // What both protocols do with a request head: its record (source labels from `self`, the
  // pod's workload in `config`, or null) and its routing decision, noted in the record.
  RequestRecord beginRecord(const WorkloadEntry* self, const l7::HttpHead& head, bool grpc, std::string protocol);
  HttpRouting route(const ConfigSnapshot& config, const WorkloadEntry* self, l7::HttpHead& head, RequestRecord& record);
  // Where a routed request went, for outlier detection: its outcome is noted once (then the
  // target is cleared), from the response's status or the failure that stopped it.
  struct OutlierTarget {
    std::shared_ptr<const ServiceEntry> service;  // null: nothing to note
    std::string subset, host;
  };
  static OutlierTarget outlierTarget(const HttpRouting& routing) {
    return {routing.service, routing.subset, routing.endpointHost};
  }
  void noteOutcome(OutlierTarget& target, Outcome outcome);
  // The destination's LocalRateLimit: a token from the request's bucket, or the 429 (RL) the
  // request is answered with instead (gRPC: RESOURCE_EXHAUSTED).
  void applyRateLimit(const RateLimitEntry& limit, HttpRouting& routing);
  // Whether the request routed by `routing` (its method, `retriesSoFar`, its body `replayable`)
  // is tried again after `result`: the route's retry policy and the destination's budget say
  // yes and another endpoint was chosen into `routing`. Then the caller waits `backoff`.
  // The retry's count (maxRetries) goes into `record` (a retry over the limit is not made).
  bool planRetry(const ConfigSnapshot& config, HttpRouting& routing, const l7::AttemptResult& result, int retriesSoFar,
                 std::string_view method, bool replayable, RequestRecord& record, std::chrono::milliseconds& backoff);
  // The request was sent whole: a copy goes to each of the `mirrors` routing chose, from this
  // connection's client, given up at `routeTimeout` (else MirrorRequest::kDefaultTimeout);
  // `fill` writes the protocol's request into it. Dropped (counted) when the mirror has no
  // endpoint or the body was not kept whole (`bodyKept` false).
  void sendMirrors(const std::vector<HttpRouting::Mirror>& mirrors, bool bodyKept, std::chrono::milliseconds routeTimeout,
                   const std::function<void(MirrorCopy&)>& fill);
  void countFromClient(size_t n) {
    pod_->counters.bytesFromClient[static_cast<size_t>(Direction::kOutbound)] += n;
    series_->received += n;
  }
  void countToClient(size_t n) {
    pod_->counters.bytesToClient[static_cast<size_t>(Direction::kOutbound)] += n;
    series_->sent += n;
  }

  WorkerContext& context_;
  std::shared_ptr<PodRuntime> pod_;
  SocketAddress peer_, service_;
  std::string peerIp_;  // peer_.ip(), kept for the requests' hash keys
  std::unique_ptr<Endpoint> down_;
  std::array<UpstreamSlot, kMaxUpstreams> upstreams_;
  bool finishing_ = false, retired_ = false, pumping_ = false;

 private:
  static constexpr uint8_t kTimerOp = kOpStride * (kMaxUpstreams + 1);  // after every endpoint's ops
  void countClosed();
  bool timerArmed_ = false;
  bool pendingWake_ = false;  // wakeAt found no submission entry: onTick calls onTimer
  std::chrono::steady_clock::time_point timerAt_;
  __kernel_timespec timerSpec_{};  // read by the kernel until the timeout completes: a member
  std::shared_ptr<TcpSeries> series_;  // Istio's TCP metrics for this connection (never null)
  std::chrono::steady_clock::time_point lastActivity_;
};

}  // namespace sluice::ztunnel
