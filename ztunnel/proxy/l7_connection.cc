#include "proxy/l7_connection.h"

#include <spdlog/spdlog.h>

#include "engine/socket_endpoint.h"
#include "sluice/common/assert.h"

namespace sluice::ztunnel {

L7Connection::L7Connection(WorkerContext& context, std::shared_ptr<PodRuntime> pod, SocketAddress peer, SocketAddress service)
    : context_(context), pod_(std::move(pod)), peer_(peer), service_(service), peerIp_(peer.ip()), lastActivity_(context.loop.now()) {
  ++context_.live;
  pod_->counters.active++;
  pod_->counters.opened[static_cast<size_t>(Direction::kOutbound)]++;
  // The app's connection to the service (its requests go to many endpoints: no destination workload).
  series_ = pod_->tcp.series(
      outboundTcpLabels(*context_.config.current(), *pod_, service_.toString(), "", context_.options.trustDomain));
  series_->opened++;
}

L7Connection::~L7Connection() {
  if (!retired_) countClosed();
}

void L7Connection::countClosed() {
  pod_->counters.closed[static_cast<size_t>(Direction::kOutbound)]++;
  series_->closed++;
  pod_->counters.active--;
  --context_.live;
}

void L7Connection::adoptClient(UniqueFd fd) {
  (void)setNoDelay(fd.get());
  down_ = std::make_unique<SocketEndpoint>(context_.loop, *this, *this, 0, std::move(fd), &pod_->buffers);
}

void L7Connection::onCompletion(uint8_t op, int res, uint32_t flags) {
  if (op == kTimerOp) {
    timerArmed_ = false;
    if (!finishing_) {
      onTimer(std::chrono::steady_clock::now());
      pump();
    }
    maybeRetire();
    return;
  }
  int index = op / kOpStride;
  Endpoint* endpoint = index == 0 ? down_.get() : upstreams_[index - 1].endpoint.get();
  SLUICE_ASSERT(endpoint != nullptr, "completion for an endpoint that is gone");
  endpoint->onCompletion(op, res, flags);
  reapClosedUpstreams();
  maybeRetire();
}

void L7Connection::wakeAt(std::chrono::steady_clock::time_point when) {
  if (finishing_ || (timerArmed_ && when >= timerAt_)) return;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
  io_uring_sqe* sqe = context_.loop.sqe();
  if (sqe == nullptr) {
    // No submission entry now: the next tick looks again (deadlines are late, not lost).
    pendingWake_ = true;
    return;
  }
  timerSpec_ = {ns / 1000000000, ns % 1000000000};
  // steady_clock is CLOCK_MONOTONIC, the clock absolute io_uring timeouts count on.
  if (timerArmed_) {
    io_uring_prep_timeout_update(sqe, &timerSpec_, context_.loop.token(*this, kTimerOp), IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(sqe, EventLoop::ignoredToken());
  } else {
    io_uring_prep_timeout(sqe, &timerSpec_, 0, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(sqe, context_.loop.token(*this, kTimerOp));
    timerArmed_ = true;
  }
  timerAt_ = when;
}

void L7Connection::onBuffersAvailable() {
  if (down_) down_->onBuffersAvailable();
  for (auto& u : upstreams_) {
    if (u.endpoint) u.endpoint->onBuffersAvailable();
  }
  pump();
}

void L7Connection::onTick(std::chrono::steady_clock::time_point now) {
  if (finishing_) return;
  // Idle as a TCP connection is (Istio's idleTimeout): no bytes either way, whatever requests
  // are open, so one whose upstream never answers cannot hold the connection forever.
  bool idle = now - lastActivity_ > context_.options.idleTimeout;
  bool drained = pod_->drainDeadline && now >= *pod_->drainDeadline;
  if (idle || drained) {
    finish(true);
    maybeRetire();
    return;
  }
  for (int i = 0; i < kMaxUpstreams; ++i) {
    UpstreamSlot& u = upstreams_[i];
    if (u.endpoint && !u.connected && !u.closing && now >= u.connectDeadline) {
      pod_->counters.failed[static_cast<size_t>(FailReason::kConnectTimeout)]++;
      upstreamConnectFailed(i);
      pump();
    }
    expireUpstream(i, now);
  }
  if (pendingWake_) {
    pendingWake_ = false;
    onTimer(std::chrono::steady_clock::now());
    pump();
    return;
  }
  // A draining pod's connections get to react (HTTP/2 sends GOAWAY) even while idle.
  if (pod_->draining) pump();
}

void L7Connection::onEndpointConnected(Endpoint& endpoint, bool ok, FailReason reason) {
  int slot = slotOf(endpoint);
  if (slot < 0 || finishing_) return;
  if (ok) {
    upstreams_[slot].connected = true;
  } else {
    if (reason != FailReason::kCount) pod_->counters.failed[static_cast<size_t>(reason)]++;
    upstreamConnectFailed(slot);
  }
  pump();
}

std::expected<void, UpstreamFailure> L7Connection::openUpstreamIn(int slot, const SocketAddress& address,
                                                                  const std::shared_ptr<const WorkloadEntry>& workload,
                                                                  const DestinationPool& pool) {
  UpstreamSlot& u = upstreams_[slot];
  SLUICE_ASSERT(!u.endpoint, "opening an upstream in a slot in use");
  std::optional<BreakerSlot> connection = pool.acquire(PoolResource::kConnections);
  // At the destination's maximum, a connection of ours to another of its endpoints that
  // nothing uses makes room (round robin over a dual-stack pod's two addresses would else
  // refuse every other request of a keep-alive client under maxConnections: 1).
  if (!connection && closeIdleUpstreamOf(pool.breaker.get())) connection = pool.acquire(PoolResource::kConnections);
  if (!connection) {
    pod_->counters.failed[static_cast<size_t>(FailReason::kOverflow)]++;
    return std::unexpected(UpstreamFailure{FailReason::kOverflow, "the destination has its maxConnections open"});
  }
  auto timeout = pool.policy.connectTimeoutOr(context_.options.connectTimeout);
  const UpstreamConnectionPolicy& life = pool.policy.connections;
  auto opened = openUpstream(context_, pod_, {peer_, address, workload, timeout, life.keepalive ? &*life.keepalive : nullptr}, *this, *this,
                             static_cast<uint8_t>((slot + 1) * kOpStride));
  if (!opened) {
    pod_->counters.failed[static_cast<size_t>(opened.error().reason)]++;
    spdlog::debug("{}: {}", pod_->key(), opened.error().message);
    return std::unexpected(opened.error());
  }
  u.endpoint = std::move(opened->endpoint);
  u.key = address.toString();
  u.connection = std::move(*connection);
  u.maxRequests = pool.policy.maxRequestsPerConnection;
  u.connectDeadline = context_.loop.now() + timeout;
  u.openedAt = context_.loop.now();
  u.maxDuration = life.maxConnectionDuration;
  u.idleTimeout = life.upstreamIdleTimeout();
  u.maxStreams = life.maxConcurrentStreams;
  return {};
}

const DestinationPool& L7Connection::poolOf(const HttpRouting& routing) {
  return routing.service ? routing.service->poolFor(routing.subset) : DestinationPool::none();
}

bool L7Connection::admit(const HttpRouting& routing, PoolResource resource, BreakerSlot& into) {
  auto slot = poolOf(routing).acquire(resource);
  if (!slot) return false;
  into = std::move(*slot);
  return true;
}

RequestRecord L7Connection::beginRecord(const WorkloadEntry* self, const l7::HttpHead& head, bool grpc, std::string protocol) {
  return beginRequest(sourceWorkloadLabels(self, *pod_, context_.options.trustDomain), head, grpc, std::move(protocol),
                      context_.loop.now());
}

HttpRouting L7Connection::route(const ConfigSnapshot& config, const WorkloadEntry* self, l7::HttpHead& head,
                                RequestRecord& record) {
  Choice choice{context_.random(), context_.sequence++, std::nullopt, {}, &context_.outstanding, context_.outliers};
  choice.client = self;  // locality preference
  HttpRouting routing = routeHttpRequest(config, service_, {service_.port(), pod_->ns, self ? &self->labels : nullptr, peerIp_},
                                         head, choice, context_.random());
  if (!routing.local && routing.service && routing.service->rateLimit) applyRateLimit(*routing.service->rateLimit, routing);
  recordRouting(record, routing, context_.options.trustDomain);
  // Every routed request adds to its destination's retry budget.
  if (context_.retryBudgets != nullptr && routing.service && !routing.local) {
    context_.retryBudgets->request(routing.service->retryBudgetKey(routing.subset), context_.loop.now());
  }
  return routing;
}

void L7Connection::applyRateLimit(const RateLimitEntry& limit, HttpRouting& routing) {
  auto key = rateLimitKey(limit, routing.rule != nullptr ? routing.rule->name : "", pod_->identity);
  if (!key) return;
  std::shared_ptr<TokenBucket> bucket;
  if (auto shared = limit.buckets.find(*key); shared != limit.buckets.end()) {
    bucket = shared->second;
  } else if (context_.rateLimiters != nullptr) {
    bucket = context_.rateLimiters->get(*key, limit.bucket, context_.loop.now());
  }
  if (bucket == nullptr) return;
  RateDecision d = bucket->take(context_.loop.now());
  // Envoy's local_ratelimit headers (draft 03), on every answer of a limited destination.
  std::vector<l7::HttpHeader> headers{{"x-ratelimit-limit", std::to_string(d.limit)},
                                      {"x-ratelimit-remaining", std::to_string(d.remaining)},
                                      {"x-ratelimit-reset", std::to_string(d.resetSeconds)}};
  if (d.allowed) {
    routing.responseAdd.insert(routing.responseAdd.end(), headers.begin(), headers.end());
    return;
  }
  routing.local = LocalAnswer{429, "RL", "local_rate_limited", std::move(headers), 8 /* RESOURCE_EXHAUSTED */};
}

void L7Connection::noteOutcome(OutlierTarget& target, Outcome outcome) {
  if (target.service == nullptr) return;
  const ServiceEntry& service = *target.service;
  if (context_.outliers != nullptr && !target.host.empty()) {
    context_.outliers->record(service.key, service.hostCount, service.outlierFor(target.subset), target.host, outcome);
  }
  target = {};
}

bool L7Connection::planRetry(const ConfigSnapshot& config, HttpRouting& routing, const l7::AttemptResult& result,
                             int retriesSoFar, std::string_view method, bool replayable, RequestRecord& record,
                             std::chrono::milliseconds& backoff) {
  if (routing.rule == nullptr || routing.service == nullptr || context_.retryBudgets == nullptr) return false;
  if (!l7::shouldRetry(routing.rule->retries, result, retriesSoFar, method, replayable)) return false;
  // maxRetries (in flight, node-wide) before the budget: a retry the breaker refuses spends none of it.
  std::optional<BreakerSlot> retrySlot = poolOf(routing).acquire(PoolResource::kRetries);
  if (!retrySlot) return false;  // counted as an overflow
  auto inFlight = context_.retryBudgets->tryRetry(routing.service->retryBudgetKey(routing.subset),
                                                  routing.service->retryBudgetFor(routing.subset), context_.loop.now());
  if (!inFlight) return false;  // counted as denied
  Choice choice{context_.random(), context_.sequence++, std::nullopt, peerIp_, &context_.outstanding, context_.outliers};
  choice.client = podWorkload(config, pod_->addresses);  // a retry fails over by locality too
  if (!rerouteForRetry(config, routing, choice)) return false;
  backoff = l7::retryBackoff(retriesSoFar, context_.random());
  record.retry = std::move(*retrySlot);  // the previous try's retry, if any, is over
  record.retryInFlight = std::move(*inFlight);
  return true;
}

void L7Connection::expireUpstream(int slot, std::chrono::steady_clock::time_point now) {
  UpstreamSlot& u = upstreams_[slot];
  if (!u.endpoint || !u.connected || u.closing) return;
  // connectionPool.tcp.maxConnectionDuration: no new request from now on; closed once idle.
  if (outlived(u.openedAt, u.maxDuration, now)) u.expired = true;
  if (!upstreamIdle(slot)) {
    u.idleSince.reset();
    return;
  }
  if (!u.idleSince) u.idleSince = now;
  // connectionPool.http.idleTimeout: no request for that long (0: kept).
  bool idleTooLong = u.idleTimeout.count() > 0 && now - *u.idleSince >= u.idleTimeout;
  if (u.expired || idleTooLong) closeUpstream(slot, false);
}

void L7Connection::sendMirrors(const std::vector<HttpRouting::Mirror>& mirrors, bool bodyKept,
                               std::chrono::milliseconds routeTimeout, const std::function<void(MirrorCopy&)>& fill) {
  for (const HttpRouting::Mirror& mirror : mirrors) {
    if (!mirror.endpoint || !bodyKept) {
      countMirror(context_, mirror.destination, MirrorStats::Outcome::kDropped);
      continue;
    }
    // (Fields by name: an aggregate of the shared_ptr-holding UpstreamTarget trips GCC 12's
    // -Wmaybe-uninitialized.)
    MirrorCopy copy;
    copy.upstream.peer = peer_;
    copy.upstream.target = *mirror.endpoint;
    copy.upstream.workload = mirror.workload;
    copy.upstream.connectTimeout = mirror.connectTimeout;
    copy.destination = mirror.destination;
    copy.deadline = context_.loop.now() + (routeTimeout.count() > 0 ? routeTimeout : MirrorRequest::kDefaultTimeout);
    fill(copy);
    launchMirror(context_, pod_, std::move(copy));
  }
}

int L7Connection::freeSlot() const {
  for (int i = 0; i < kMaxUpstreams; ++i) {
    if (!upstreams_[i].endpoint) return i;
  }
  return -1;
}

bool L7Connection::closeIdleUpstreamOf(const CircuitBreaker* breaker) {
  for (int i = 0; i < kMaxUpstreams; ++i) {
    const UpstreamSlot& u = upstreams_[i];
    if (u.endpoint && !u.closing && u.connection.breaker() == breaker && upstreamIdle(i)) {
      closeUpstream(i, false);
      return true;
    }
  }
  return false;
}

int L7Connection::slotOf(const Endpoint& endpoint) const {
  for (int i = 0; i < kMaxUpstreams; ++i) {
    if (upstreams_[i].endpoint.get() == &endpoint) return i;
  }
  return -1;
}

void L7Connection::closeUpstream(int slot, bool reset) {
  UpstreamSlot& u = upstreams_[slot];
  if (!u.endpoint || u.closing) return;
  u.closing = true;
  // A closing connection carries nothing more: the destination may open another at once
  // (maxConnections counts the connections that can carry requests).
  u.connection.reset();
  u.endpoint->abort(reset);
}

void L7Connection::abortAll(bool reset) {
  if (timerArmed_) {
    // The timeout completes (cancelled) and the handler can retire then; without an entry
    // for the removal it completes at its time (a fault delay or route timeout: bounded).
    if (io_uring_sqe* sqe = context_.loop.sqe()) {
      io_uring_prep_timeout_remove(sqe, context_.loop.token(*this, kTimerOp), 0);
      io_uring_sqe_set_data64(sqe, EventLoop::ignoredToken());
    }
  }
  if (down_) down_->abort(reset);
  for (int i = 0; i < kMaxUpstreams; ++i) closeUpstream(i, reset);
}

void L7Connection::reapClosedUpstreams() {
  for (int i = 0; i < kMaxUpstreams; ++i) {
    UpstreamSlot& u = upstreams_[i];
    if (u.endpoint && u.closing && u.endpoint->quiescent()) {
      u.endpoint->close();
      u = UpstreamSlot{};
      clearUpstream(i);
    }
  }
}

void L7Connection::maybeRetire() {
  if (!finishing_ || retired_ || pumping_ || timerArmed_) return;
  reapClosedUpstreams();
  for (const auto& u : upstreams_) {
    if (u.endpoint) return;
  }
  if (down_ && !down_->quiescent()) return;
  if (down_) down_->close();
  retired_ = true;
  countClosed();
  context_.loop.retire(*this);
}

}  // namespace sluice::ztunnel
