#include "engine/worker.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <future>

#include "engine/socket_ops.h"
#include "proxy/inbound_decision.h"
#include "proxy/outbound_decision.h"
#include "sluice/common/assert.h"

namespace sluice::ztunnel {
namespace {

constexpr uint16_t kBufferGroup = 1;

}  // namespace

Worker::Worker(WorkerOptions options, const SnapshotStore& config, const agent::OrigDstTable* origDst,
               const CertificateManager* certificates)
    : options_(std::move(options)), config_(config), origDst_(origDst), certificates_(certificates) {}

Worker::~Worker() { stop(); }

Status Worker::start() {
  // The ring is created on the worker thread itself: SINGLE_ISSUER binds it to its creator.
  std::promise<Status> ready;
  auto started = ready.get_future();
  thread_ = std::thread([this, &ready] {
    auto ring = Ring::create(options_.ringEntries);
    if (!ring) {
      ready.set_value(std::unexpected(std::move(ring.error())));
      return;
    }
    ring_.emplace(std::move(*ring));
    auto buffers = BufferRing::create(ring_->get(), kBufferGroup, options_.bufferCount, options_.bufferSize);
    if (!buffers) {
      ready.set_value(std::unexpected(std::move(buffers.error())));
      return;
    }
    buffers_.emplace(std::move(*buffers));
    features_ = ring_->features().describe();
    wakeFd_.reset(::eventfd(0, EFD_CLOEXEC));
    hostNetns_.reset(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!wakeFd_ || !hostNetns_) {
      ready.set_value(std::unexpected(errnoError("worker eventfd/netns")));
      return;
    }
    armWake();
    armTick();
    ready.set_value({});
    run();
    // Tear-down on the owning thread: buffers before the ring they are registered with.
    buffers_.reset();
    ring_.reset();
  });
  Status status = started.get();
  if (!status) {
    thread_.join();
    return status;
  }
  return {};
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  post([] {});
  thread_.join();
  for (auto& slot : slots_) {
    if (slot.listener && slot.listener->fd >= 0) ::close(slot.listener->fd);
    if (slot.relay) {
      if (slot.relay->down >= 0) ::close(slot.relay->down);
      if (slot.relay->up >= 0) ::close(slot.relay->up);
    }
    if (slot.tunnel && slot.tunnel->fd >= 0) ::close(slot.tunnel->fd);
  }
  slots_.clear();
}

void Worker::post(std::function<void()> task) {
  {
    std::lock_guard lock(tasksMutex_);
    tasks_.push_back(std::move(task));
  }
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wakeFd_.get(), &one, sizeof(one));
}

void Worker::run() {
  io_uring* ring = ring_->get();
  while (!stopping_) {
    int rc = io_uring_submit_and_wait(ring, 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      spdlog::error("worker {}: io_uring_submit_and_wait: {}", options_.index, std::strerror(-rc));
    }
    unsigned head, count = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring, head, cqe) {
      handle(cqe);
      ++count;
    }
    io_uring_cq_advance(ring, count);
  }
}

uint32_t Worker::allocSlot() {
  if (!freeSlots_.empty()) {
    uint32_t slot = freeSlots_.back();
    freeSlots_.pop_back();
    return slot;
  }
  slots_.emplace_back();
  return static_cast<uint32_t>(slots_.size() - 1);
}

void Worker::freeSlot(uint32_t slot) {
  slots_[slot].listener.reset();
  slots_[slot].relay.reset();
  slots_[slot].tunnel.reset();
  ++slots_[slot].generation;  // completions still naming the old generation are stale
  freeSlots_.push_back(slot);
}

void Worker::armWake() {
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_read(sqe, wakeFd_.get(), &wakeValue_, sizeof(wakeValue_), 0);
  io_uring_sqe_set_data64(sqe, OpToken{Op::kWake, 0, 0}.encode());
}

void Worker::armTick() {
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_timeout(sqe, &tickInterval_, 0, 0);
  io_uring_sqe_set_data64(sqe, OpToken{Op::kTick, 0, 0}.encode());
}

void Worker::handle(io_uring_cqe* cqe) {
  OpToken t = OpToken::decode(cqe->user_data);
  if (t.op == Op::kWake) {
    std::vector<std::function<void()>> tasks;
    {
      std::lock_guard lock(tasksMutex_);
      tasks.swap(tasks_);
    }
    for (auto& task : tasks) task();
    if (!stopping_) armWake();
    return;
  }
  if (t.op == Op::kTick) {
    onTick();
    if (!stopping_) armTick();
    return;
  }
  if (t.op == Op::kCancel) return;
  if (t.slot >= slots_.size() || (slots_[t.slot].generation & 0xffffffu) != t.generation) {
    // Stale: the slot was freed after this operation was submitted. A buffer it carries is ours
    // to give back.
    if (cqe->flags & IORING_CQE_F_BUFFER) {
      buffers_->taken();
      buffers_->recycle(static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
    }
    return;
  }
  switch (t.op) {
    case Op::kAccept: onAccept(t.slot, cqe->res, cqe->flags); break;
    case Op::kConnect: onConnect(t.slot, cqe->res); break;
    case Op::kConnectTimeout:
      --slots_[t.slot].relay->inflight;
      maybeFinish(t.slot);
      break;
    case Op::kRecvDown: onRecv(t.slot, true, cqe->res, cqe->flags); break;
    case Op::kRecvUp: onRecv(t.slot, false, cqe->res, cqe->flags); break;
    case Op::kSendUp: onSend(t.slot, true, cqe->res); break;
    case Op::kSendDown: onSend(t.slot, false, cqe->res); break;
    case Op::kShutdownUp: onShutdown(t.slot, true, cqe->res); break;
    case Op::kShutdownDown: onShutdown(t.slot, false, cqe->res); break;
    case Op::kTunnelConnect: onTunnelConnect(t.slot, cqe->res); break;
    case Op::kTunnelConnectTimeout:
      --slots_[t.slot].tunnel->inflight;
      maybeFinishTunnel(t.slot);
      break;
    case Op::kTunnelRecv: onTunnelRecv(t.slot, cqe->res, cqe->flags); break;
    case Op::kTunnelSend: onTunnelSend(t.slot, cqe->res); break;
    default: break;
  }
}

void Worker::addListener(UniqueFd fd, ListenerKind kind, std::shared_ptr<PodRuntime> pod) {
  uint32_t slot = allocSlot();
  slots_[slot].listener = Listener{fd.release(), kind, std::move(pod), false};
  armAccept(slot);
}

void Worker::armAccept(uint32_t slot) {
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_multishot_accept(sqe, slots_[slot].listener->fd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, token(Op::kAccept, slot));
}

void Worker::drainPod(const std::shared_ptr<PodRuntime>& pod) {
  pod->draining = true;
  for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
    auto& l = slots_[slot].listener;
    if (!l || l->pod != pod || l->closing) continue;
    l->closing = true;
    io_uring_sqe* sqe = ring_->sqe();
    io_uring_prep_cancel64(sqe, token(Op::kAccept, slot), 0);
    io_uring_sqe_set_data64(sqe, OpToken{Op::kCancel, 0, 0}.encode());
  }
  draining_.emplace_back(pod, std::chrono::steady_clock::now() + options_.drainTimeout);
}

void Worker::onAccept(uint32_t slot, int res, uint32_t flags) {
  Listener& l = *slots_[slot].listener;
  bool more = flags & IORING_CQE_F_MORE;
  if (res >= 0) {
    if (l.closing || l.pod->draining) {
      ::close(res);
    } else {
      Listener copy = l;  // startRelay works on its own copy of the listener's pod reference
      startRelay(copy, res);
    }
  } else if (res != -ECANCELED) {
    spdlog::warn("worker {}: accept on a listener of {}: {}", options_.index, l.pod->key(), std::strerror(-res));
  }
  Listener& now = *slots_[slot].listener;
  if (!more) {
    if (now.closing || res == -ECANCELED) {
      ::close(now.fd);
      freeSlot(slot);
    } else {
      armAccept(slot);  // the kernel ended the multishot (e.g. an error): re-arm
    }
  }
}

int Worker::upstreamSocket(const PodRuntime& pod, int family) {
  // The upstream socket is created inside the pod's network namespace, so the connection leaves
  // from the pod exactly as the app's own would. setns() changes only this thread.
  if (::setns(pod.netns.get(), CLONE_NEWNET) != 0) return -1;
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int saved = errno;
  SLUICE_CHECK(::setns(hostNetns_.get(), CLONE_NEWNET) == 0, "worker cannot return to the host network namespace");
  errno = saved;
  if (fd < 0) return -1;
  uint32_t mark = options_.mark;
  ::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

void Worker::fail(const std::shared_ptr<PodRuntime>& pod, FailReason reason) {
  pod->counters.failed[static_cast<size_t>(reason)]++;
}

void Worker::refuse(const std::shared_ptr<PodRuntime>& pod, int fd, FailReason reason) {
  fail(pod, reason);
  setReset(fd);  // the client learns at once, with a reset rather than an orderly end
  ::close(fd);
}

void Worker::startRelay(const Listener& listener, int fd) {
  const auto& pod = listener.pod;
  if (listener.kind == ListenerKind::kHbone) return startHboneServer(listener, fd);
  SocketAddress peer = socketAddress(fd, true);
  SocketAddress target;
  Direction direction = listener.kind == ListenerKind::kOutbound ? Direction::kOutbound : Direction::kInbound;
  auto config = config_.current();
  if (direction == Direction::kOutbound) {
    auto dst = origDst_ != nullptr ? origDst_->take(pod->netnsCookie, peer)
                                   : Result<SocketAddress>(sluice::fail("no original-destination table"));
    if (!dst) return refuse(pod, fd, FailReason::kNoOriginalDestination);
    OutboundDecision decision = decideOutbound(unmapped(*dst), *config, {random_(), sequence_++});
    if (decision.action == OutboundDecision::Action::kRefuse) {
      spdlog::debug("{}: refused {}: {}", pod->key(), dst->toString(), decision.reason);
      return refuse(pod, fd, FailReason::kPolicyRefused);
    }
    // A mesh workload is reached over HBONE whenever this node has identities.
    if (decision.workload && certificates_ != nullptr) {
      return startHboneOutbound(pod, fd, peer, decision.target, *decision.workload);
    }
    target = decision.target;
  } else {
    // sk_lookup kept the original destination as the accepted socket's local address.
    target = unmapped(socketAddress(fd, false));
    InboundDecision verdict =
        decideInbound({false, "", unmapped(peer).ip(), target.toString()}, {pod->ns, pod->addresses}, *config);
    if (verdict.verdict != InboundDecision::Verdict::kAllow) {
      spdlog::debug("{}: plaintext from {} refused: {}", pod->key(), peer.toString(), verdict.reason);
      FailReason reason = verdict.verdict == InboundDecision::Verdict::kPlaintextRefused ? FailReason::kPlaintextRefused
                          : verdict.verdict == InboundDecision::Verdict::kDenied         ? FailReason::kDenied
                                                                                         : FailReason::kPolicyRefused;
      return refuse(pod, fd, reason);
    }
    target = verdict.target;
  }
  int up = upstreamSocket(*pod, target.family());
  if (up < 0) return refuse(pod, fd, FailReason::kSocketError);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  uint32_t slot = newRelay(pod, direction, fd, up, peer, target);
  submitRelayConnect(slot);
}

uint32_t Worker::newRelay(const std::shared_ptr<PodRuntime>& pod, Direction direction, int down, int up,
                          const SocketAddress& peer, const SocketAddress& target) {
  uint32_t slot = allocSlot();
  Relay& r = slots_[slot].relay.emplace();
  r.pod = pod;
  r.direction = direction;
  r.down = down;
  r.up = up;
  r.peer = peer;
  r.target = target;
  r.lastActivity = std::chrono::steady_clock::now();
  ++live_;
  pod->counters.active++;
  return slot;
}

void Worker::submitRelayConnect(uint32_t slot) {
  Relay& r = *slots_[slot].relay;
  submitConnect(slot, r.up, r.target, &r.connectTimeout, Op::kConnect, Op::kConnectTimeout);
  r.inflight += 2;
}

void Worker::submitConnect(uint32_t slot, int fd, const SocketAddress& to, __kernel_timespec* timeout, Op connectOp,
                           Op timeoutOp) {
  auto ms = options_.connectTimeout.count();
  timeout->tv_sec = ms / 1000;
  timeout->tv_nsec = (ms % 1000) * 1000000;
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_connect(sqe, fd, to.sockaddrPtr(), to.length());
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe_set_data64(sqe, token(connectOp, slot));
  io_uring_sqe* t = ring_->sqe();
  io_uring_prep_link_timeout(t, timeout, 0);
  io_uring_sqe_set_data64(t, token(timeoutOp, slot));
}

void Worker::onConnect(uint32_t slot, int res) {
  Relay& r = *slots_[slot].relay;
  --r.inflight;
  if (r.aborting) return maybeFinish(slot);
  if (res < 0) {
    fail(r.pod, connectFailure(-res));
    spdlog::debug("{}: connect to {} failed: {}", r.pod->key(), r.target.toString(), std::strerror(-res));
    // HBONE: the client hears 503; plaintext: a reset, so it learns at once.
    if (r.isHbone()) respondStream(slot, 503);
    abortRelay(slot, true);
    return;
  }
  r.connected = true;
  r.counted = true;
  r.pod->counters.opened[static_cast<size_t>(r.direction)]++;
  if (r.isHbone()) {
    respondStream(slot, 200);
    armRecv(slot, r.hbone.isUp);  // the socket side
    deliverFromTunnel(slot);      // anything the client sent before our answer
    return;
  }
  armRecv(slot, true);
  armRecv(slot, false);
}

void Worker::armRecv(uint32_t slot, bool fromDown) {
  Relay& r = *slots_[slot].relay;
  DirectionState& d = fromDown ? r.toUp : r.toDown;
  if (d.recvArmed || d.eof || r.aborting || d.count == DirectionState::kDepth) return;
  // An HBONE relay reads only its socket side, and not while the stream's queue is full.
  if (r.isHbone() && (fromDown != r.hbone.isUp || r.hbone.blocked)) return;
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_recv(sqe, fromDown ? r.down : r.up, nullptr, buffers_->bufferSize(), 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_->group();
  io_uring_sqe_set_data64(sqe, token(fromDown ? Op::kRecvDown : Op::kRecvUp, slot));
  d.recvArmed = true;
  ++r.inflight;
}

void Worker::onRecv(uint32_t slot, bool fromDown, int res, uint32_t flags) {
  Relay& r = *slots_[slot].relay;
  DirectionState& d = fromDown ? r.toUp : r.toDown;
  d.recvArmed = false;
  --r.inflight;
  bool hasBuffer = flags & IORING_CQE_F_BUFFER;
  uint16_t buffer = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
  if (hasBuffer) buffers_->taken();
  if (r.aborting) {
    if (hasBuffer) buffers_->recycle(buffer);
    return maybeFinish(slot);
  }
  if (res > 0 && r.isHbone()) {
    r.lastActivity = std::chrono::steady_clock::now();
    d.bytes += static_cast<uint64_t>(res);
    auto& counter = fromDown ? r.pod->counters.bytesFromClient : r.pod->counters.bytesToClient;
    counter[static_cast<size_t>(r.direction)] += static_cast<uint64_t>(res);
    forwardToTunnel(slot, buffers_->data(buffer), static_cast<size_t>(res));
    buffers_->recycle(buffer);  // the stream copied it
    retryStarved();
    armRecv(slot, fromDown);
    return;
  }
  if (res > 0) {
    r.lastActivity = std::chrono::steady_clock::now();
    SLUICE_ASSERT(d.count < DirectionState::kDepth, "receive armed with a full queue");
    d.queue[(d.head + d.count) % DirectionState::kDepth] = {buffer, static_cast<uint32_t>(res)};
    ++d.count;
    d.bytes += static_cast<uint64_t>(res);
    auto& counter = fromDown ? r.pod->counters.bytesFromClient : r.pod->counters.bytesToClient;
    counter[static_cast<size_t>(r.direction)] += static_cast<uint64_t>(res);
    if (!d.sending) submitSend(slot, fromDown);
    armRecv(slot, fromDown);  // the next receive overlaps this send
    return;
  }
  if (hasBuffer) buffers_->recycle(buffer);
  if (res == 0) {
    // FIN from this side: once every queued byte is out, carry the half-close to the other
    // side; the other direction flows on.
    d.eof = true;
    if (r.isHbone()) return endTowardsTunnel(slot);
    if (d.count == 0) submitShutdown(slot, fromDown);
    return;
  }
  if (res == -ENOBUFS) {
    // Every buffer is in flight: wait for one to come back.
    d.starved = true;
    starved_.push_back(slot);
    return;
  }
  abortRelay(slot, true);  // reset or error: reset the other side too
}

void Worker::submitShutdown(uint32_t slot, bool toUp) {
  Relay& r = *slots_[slot].relay;
  DirectionState& d = toUp ? r.toUp : r.toDown;
  if (d.shutdownSent) return;
  d.shutdownSent = true;
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_shutdown(sqe, toUp ? r.up : r.down, SHUT_WR);
  io_uring_sqe_set_data64(sqe, token(toUp ? Op::kShutdownUp : Op::kShutdownDown, slot));
  ++r.inflight;
}

void Worker::submitSend(uint32_t slot, bool toUp) {
  Relay& r = *slots_[slot].relay;
  DirectionState& d = toUp ? r.toUp : r.toDown;
  const DirectionState::Chunk& chunk = d.front();
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_send(sqe, toUp ? r.up : r.down, buffers_->data(chunk.buffer) + d.offset, chunk.length - d.offset,
                     MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, token(toUp ? Op::kSendUp : Op::kSendDown, slot));
  d.sending = true;
  ++r.inflight;
}

void Worker::onSend(uint32_t slot, bool toUp, int res) {
  Relay& r = *slots_[slot].relay;
  if (r.isHbone()) return onSendFromTunnel(slot, res);  // an HBONE relay sends only stream bytes
  DirectionState& d = toUp ? r.toUp : r.toDown;
  --r.inflight;
  d.sending = false;
  if (r.aborting) return maybeFinish(slot);  // queued buffers are given back at the finish
  if (res <= 0) return abortRelay(slot, true);  // the receiver is gone: reset both sides
  d.offset += static_cast<uint32_t>(res);
  if (d.offset < d.front().length) return submitSend(slot, toUp);  // short send: the rest follows
  buffers_->recycle(d.front().buffer);
  d.head = (d.head + 1) % DirectionState::kDepth;
  --d.count;
  d.offset = 0;
  retryStarved();
  if (d.count > 0) submitSend(slot, toUp);
  if (d.eof && d.count == 0) submitShutdown(slot, toUp);
  armRecv(slot, /*fromDown=*/toUp);
}

void Worker::onShutdown(uint32_t slot, bool up, int res) {
  Relay& r = *slots_[slot].relay;
  --r.inflight;
  DirectionState& d = up ? r.toUp : r.toDown;
  d.shutdownDone = true;
  if (res < 0 && res != -ENOTCONN && !r.aborting) return abortRelay(slot, true);
  maybeFinish(slot);
}

void Worker::abortRelay(uint32_t slot, bool reset) {
  Relay& r = *slots_[slot].relay;
  if (r.aborting) return;
  r.aborting = true;
  if (r.isHbone()) {
    // The stream side: RST_STREAM (nothing to cancel; the tunnel carries on for others).
    // After a complete non-200 answer the stream ends with NO_ERROR (RFC 9113 8.1); otherwise
    // CANCEL tells the peer the flow broke.
    Tunnel& t = *slots_[r.hbone.tunnel].tunnel;
    bool answered = r.hbone.responded && r.hbone.status != 200;
    t.conn->session().reset(r.hbone.stream, answered ? 0x0 : 0x8);
    flushTunnel(r.hbone.tunnel);
  }
  for (int fd : {r.down, r.up}) {
    if (fd < 0) continue;
    if (reset) {
      // No FIN first: the peer must see a reset, not an orderly end followed by one.
      setReset(fd);
    } else {
      ::shutdown(fd, SHUT_RDWR);
    }
    // Completes every operation still in flight on the socket, so the slot can be released;
    // the descriptors are closed (sending the RST) once the last completion is in.
    io_uring_sqe* sqe = ring_->sqe();
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, OpToken{Op::kCancel, 0, 0}.encode());
  }
  maybeFinish(slot);
}

void Worker::maybeFinish(uint32_t slot) {
  Relay& r = *slots_[slot].relay;
  bool done = r.toUp.eof && r.toUp.shutdownDone && r.toDown.eof && r.toDown.shutdownDone;
  if (!(done || r.aborting) || r.inflight > 0) return;
  // Chunks still queued (an aborted relay) go back to the ring.
  for (DirectionState* d : {&r.toUp, &r.toDown}) {
    for (int i = 0; i < d->count; ++i) buffers_->recycle(d->queue[(d->head + i) % DirectionState::kDepth].buffer);
    d->count = 0;
  }
  if (r.down >= 0) ::close(r.down);
  if (r.up >= 0) ::close(r.up);
  if (r.isHbone()) detachStream(r);
  if (r.counted) r.pod->counters.closed[static_cast<size_t>(r.direction)]++;
  r.pod->counters.active--;
  --live_;
  freeSlot(slot);
}

void Worker::retryStarved() {
  while (!starved_.empty() && buffers_->inUse() < options_.bufferCount) {
    uint32_t slot = starved_.back();
    starved_.pop_back();
    if (slots_[slot].tunnel) {
      slots_[slot].tunnel->starved = false;
      armTunnelRecv(slot);
      continue;
    }
    if (!slots_[slot].relay) continue;
    Relay& r = *slots_[slot].relay;
    for (bool fromDown : {true, false}) {
      DirectionState& d = fromDown ? r.toUp : r.toDown;
      if (d.starved) {
        d.starved = false;
        armRecv(slot, fromDown);
      }
    }
    maybeFinish(slot);
  }
}

void Worker::onTick() {
  auto now = std::chrono::steady_clock::now();
  std::vector<std::shared_ptr<PodRuntime>> expired;
  for (auto it = draining_.begin(); it != draining_.end();) {
    auto pod = it->first.lock();
    if (!pod || now >= it->second) {
      if (pod) expired.push_back(pod);
      it = draining_.erase(it);
    } else {
      ++it;
    }
  }
  for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
    auto& r = slots_[slot].relay;
    if (!r || r->aborting) continue;
    bool idle = now - r->lastActivity > options_.idleTimeout;
    bool drained = std::find(expired.begin(), expired.end(), r->pod) != expired.end();
    if (idle || drained) abortRelay(slot, true);
  }
  for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
    auto& t = slots_[slot].tunnel;
    if (!t || t->aborting) continue;
    bool drained = std::find(expired.begin(), expired.end(), t->pod) != expired.end();
    if (!t->verified && now - t->lastActivity > options_.connectTimeout) {
      abortTunnel(slot, FailReason::kHandshake);  // connected but never proved who it is
    } else if (drained) {
      abortTunnel(slot, std::nullopt);
    } else if (!t->server && t->streams.empty() && now - t->lastActivity > options_.poolIdleTimeout) {
      abortTunnel(slot, std::nullopt);  // an idle pooled connection is let go
    }
  }
  retryStarved();
}

std::vector<ConnectionInfo> Worker::connections() {
  return ask([this] {
    std::vector<ConnectionInfo> out;
    for (const auto& slot : slots_) {
      if (!slot.relay) continue;
      const Relay& r = *slot.relay;
      out.push_back({r.pod->key(), r.direction == Direction::kOutbound ? "outbound" : "inbound", r.peer.toString(),
                     r.target.toString(), r.aborting ? "closing" : r.connected ? "relaying" : "connecting", r.toUp.bytes,
                     r.toDown.bytes, r.isHbone() ? "HBONE" : "TCP", r.peerIdentity});
    }
    return out;
  });
}

}  // namespace sluice::ztunnel
