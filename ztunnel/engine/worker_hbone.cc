// The worker's HBONE paths: server connections accepted on a pod's 15008, pooled client
// connections to peers' 15008, and relays whose one side is a CONNECT stream. The socket side
// of such a relay runs the plain relay code (worker.cc); this file moves bytes between the
// stream and that socket and drives the TLS+HTTP/2 connection with io_uring.
//
// Lifetime rules: a Tunnel slot is freed only when it is aborting, has no operation in flight,
// no relay still attached (a relay detaches its stream when it finishes), and no flush or abort
// is walking it (busy). Slots never move (a deque); what can change under a caller is that a
// slot is freed, so code re-checks a slot after a call that may finish its tunnel or relay.
#include <netinet/tcp.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>


#include "engine/socket_ops.h"
#include "engine/worker.h"
#include "proxy/inbound_decision.h"
#include "sluice/common/pki.h"

namespace sluice::ztunnel {
namespace {

constexpr uint16_t kHbonePort = 15008;
constexpr uint32_t kNoError = 0x0;

// RFC 7239: an IPv6 node is quoted and bracketed.
std::string forwardedFor(const SocketAddress& peer) {
  SocketAddress a = unmapped(peer);
  return a.family() == AF_INET6 ? fmt::format("for=\"[{}]\"", a.ip()) : fmt::format("for={}", a.ip());
}

void noDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

std::string Worker::identityVerdict(const Tunnel& t, const std::string& identity) const {
  if (identity.empty()) return "its certificate names no single SPIFFE identity";
  if (!t.server) {
    return identity == t.expectedPeer ? "" : fmt::format("it proved {}, but {} was expected", identity, t.expectedPeer);
  }
  std::string prefix = "spiffe://" + options_.trustDomain + "/";
  return identity.rfind(prefix, 0) == 0 ? "" : fmt::format("{} is not of trust domain {}", identity, options_.trustDomain);
}

void Worker::startHboneServer(const Listener& listener, int fd) {
  const auto& pod = listener.pod;
  auto certificate = certificates_ != nullptr ? certificates_->get(pod->identity) : nullptr;
  if (!certificate) return refuse(pod, fd, FailReason::kNoCertificate);
  auto conn = hbone::HboneConnection::create(hbone::HboneConnection::Role::kServer, certificate->serverContext.get(),
                                             options_.hboneLimits);
  if (!conn) {
    spdlog::warn("{}: HBONE server connection: {}", pod->key(), conn.error().message());
    return refuse(pod, fd, FailReason::kHandshake);
  }
  noDelay(fd);
  uint32_t slot = allocSlot();
  Tunnel& t = slots_[slot].tunnel.emplace();
  t.pod = pod;
  t.server = true;
  t.fd = fd;
  t.conn = std::move(*conn);
  t.peer = unmapped(socketAddress(fd, true));
  t.connected = true;
  t.lastActivity = std::chrono::steady_clock::now();
  armTunnelRecv(slot);
}

void Worker::startHboneOutbound(const std::shared_ptr<PodRuntime>& pod, int fd, const SocketAddress& peer,
                                const SocketAddress& target, const WorkloadEntry& workload) {
  auto certificate = certificates_->get(pod->identity);
  if (!certificate) return refuse(pod, fd, FailReason::kNoCertificate);
  std::string expected = pki::spiffeIdFor(options_.trustDomain, workload.ns, workload.serviceAccount);
  auto hboneAddress = SocketAddress::fromIp(target.ip(), kHbonePort);
  if (!hboneAddress) return refuse(pod, fd, FailReason::kPolicyRefused);
  // Pooled by (source identity, destination identity, destination address).
  std::string key = fmt::format("{}|{}|{}", pod->identity, expected, hboneAddress->toString());
  uint32_t tunnel = kNoTunnel;
  for (uint32_t candidate : pool_[key]) {
    const Tunnel& t = *slots_[candidate].tunnel;
    if (!t.aborting && t.conn->session().acceptsStreams()) {
      tunnel = candidate;
      break;
    }
  }
  if (tunnel == kNoTunnel) tunnel = dialTunnel(pod, *certificate, *hboneAddress, expected, key);
  if (tunnel == kNoTunnel) return refuse(pod, fd, FailReason::kSocketError);
  // W3C trace context: a new trace per connection (version 00, sampled).
  std::string traceparent = fmt::format("00-{:016x}{:016x}-{:016x}-01", random_(), random_(), random_() | 1);
  auto stream = slots_[tunnel].tunnel->conn->session().connect({target.toString(), forwardedFor(peer), traceparent});
  if (!stream) {
    spdlog::warn("{}: HBONE CONNECT to {}: {}", pod->key(), target.toString(), stream.error().message());
    return refuse(pod, fd, FailReason::kHboneProtocol);
  }
  noDelay(fd);
  uint32_t slot = newRelay(pod, Direction::kOutbound, fd, -1, peer, target);
  Relay& r = *slots_[slot].relay;
  r.hbone.tunnel = tunnel;
  r.hbone.stream = *stream;
  r.hbone.isUp = true;
  r.peerIdentity = expected;
  slots_[tunnel].tunnel->streams[*stream] = slot;
  flushTunnel(tunnel);
}

uint32_t Worker::dialTunnel(const std::shared_ptr<PodRuntime>& pod, const WorkloadCertificate& certificate,
                            const SocketAddress& target, const std::string& expectedPeer, const std::string& poolKey) {
  int fd = upstreamSocket(*pod, target.family());
  if (fd < 0) return kNoTunnel;
  auto conn = hbone::HboneConnection::create(hbone::HboneConnection::Role::kClient, certificate.clientContext.get(),
                                             options_.hboneLimits);
  if (!conn) {
    spdlog::warn("{}: HBONE client connection: {}", pod->key(), conn.error().message());
    ::close(fd);
    return kNoTunnel;
  }
  uint32_t slot = allocSlot();
  Tunnel& t = slots_[slot].tunnel.emplace();
  t.pod = pod;
  t.fd = fd;
  t.conn = std::move(*conn);
  t.expectedPeer = expectedPeer;
  t.poolKey = poolKey;
  t.peer = target;
  t.lastActivity = std::chrono::steady_clock::now();
  pool_[poolKey].push_back(slot);
  submitConnect(slot, fd, t.peer, &t.connectTimeout, Op::kTunnelConnect, Op::kTunnelConnectTimeout);
  t.inflight += 2;
  return slot;
}

void Worker::onTunnelConnect(uint32_t slot, int res) {
  Tunnel& t = *slots_[slot].tunnel;
  --t.inflight;
  if (t.aborting) return maybeFinishTunnel(slot);
  if (res < 0) {
    spdlog::debug("{}: HBONE connect to {} failed: {}", t.pod->key(), t.peer.toString(), std::strerror(-res));
    return abortTunnel(slot, connectFailure(-res));
  }
  noDelay(t.fd);
  t.connected = true;
  armTunnelRecv(slot);
  flushTunnel(slot);  // the ClientHello
}

void Worker::armTunnelRecv(uint32_t slot) {
  Tunnel& t = *slots_[slot].tunnel;
  if (t.recvArmed || t.aborting || !t.connected) return;
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_recv(sqe, t.fd, nullptr, buffers_->bufferSize(), 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_->group();
  io_uring_sqe_set_data64(sqe, token(Op::kTunnelRecv, slot));
  t.recvArmed = true;
  ++t.inflight;
}

void Worker::onTunnelRecv(uint32_t slot, int res, uint32_t flags) {
  Tunnel& t = *slots_[slot].tunnel;
  t.recvArmed = false;
  --t.inflight;
  bool hasBuffer = flags & IORING_CQE_F_BUFFER;
  uint16_t buffer = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
  if (hasBuffer) buffers_->taken();
  if (t.aborting || res <= 0) {
    if (hasBuffer) buffers_->recycle(buffer);
    if (t.aborting) return maybeFinishTunnel(slot);
    if (res == -ENOBUFS) {
      t.starved = true;
      starved_.push_back(slot);
      return;
    }
    // The peer closed or broke the connection: an orderly end when no stream was open.
    return abortTunnel(slot, t.streams.empty() && res == 0 ? std::nullopt : std::optional(FailReason::kHboneProtocol));
  }
  t.lastActivity = std::chrono::steady_clock::now();
  Status received = t.conn->receive({buffers_->data(buffer), static_cast<size_t>(res)});
  buffers_->recycle(buffer);
  if (t.conn->justEstablished()) {
    // Verified before any of the peer's requests or responses is looked at.
    std::string identity = t.conn->peerIdentity();
    std::string why = identityVerdict(t, identity);
    if (!why.empty()) {
      spdlog::warn("{}: HBONE peer {} refused: {}", t.pod->key(), t.peer.toString(), why);
      return abortTunnel(slot, FailReason::kHandshake);
    }
    t.peerIdentity = identity;
    t.verified = true;
    t.conn->peerVerified();
  }
  if (!received) {
    spdlog::debug("{}: HBONE with {}: {}", t.pod->key(), t.peer.toString(), received.error().message());
    if (!t.verified) {
      // Best effort: let the peer read the TLS alert (e.g. "certificate required") before we close.
      std::string alert;
      t.conn->takeCiphertext(alert);
      if (!alert.empty()) (void)::send(t.fd, alert.data(), alert.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    return abortTunnel(slot, t.verified ? FailReason::kHboneProtocol : FailReason::kHandshake);
  }
  flushTunnel(slot);
  // The flush may have ended the connection (and, with nothing in flight, freed the slot).
  if (!slots_[slot].tunnel || slots_[slot].tunnel->aborting) return;
  Tunnel& now = *slots_[slot].tunnel;
  if (now.conn->peerClosed()) return abortTunnel(slot, now.streams.empty() ? std::nullopt : std::optional(FailReason::kHboneProtocol));
  retryStarved();
  armTunnelRecv(slot);
}

void Worker::flushTunnel(uint32_t slot) {
  Tunnel* t = &*slots_[slot].tunnel;
  if (t->busy > 0) {
    t->flushAgain = true;  // the running flush goes round once more
    return;
  }
  ++t->busy;
  do {
    t->flushAgain = false;
    if (!t->aborting && t->connected) {
      if (Status flushed = t->conn->flush(t->out); !flushed) {
        spdlog::debug("{}: HBONE: {}", t->pod->key(), flushed.error().message());
        --t->busy;
        return abortTunnel(slot, FailReason::kHboneProtocol);
      }
    }
    // Handling events queues frames (answers, window updates): go round again until a flush
    // brings no new event, so nothing queued waits for the next socket event.
    bool handled = t->verified && handleTunnelEvents(slot);
    t = &*slots_[slot].tunnel;
    if (handled) t->flushAgain = true;
  } while (t->flushAgain && !t->aborting);
  --t->busy;
  if (t->aborting) return maybeFinishTunnel(slot);
  if (t->sending || t->out.empty()) return;
  t->sendBuf.swap(t->out);
  t->out.clear();
  t->sendOffset = 0;
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_send(sqe, t->fd, t->sendBuf.data(), t->sendBuf.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, token(Op::kTunnelSend, slot));
  t->sending = true;
  ++t->inflight;
}

void Worker::onTunnelSend(uint32_t slot, int res) {
  Tunnel& t = *slots_[slot].tunnel;
  --t.inflight;
  t.sending = false;
  if (t.aborting) return maybeFinishTunnel(slot);
  if (res <= 0) return abortTunnel(slot, FailReason::kHboneProtocol);
  t.sendOffset += static_cast<size_t>(res);
  if (t.sendOffset < t.sendBuf.size()) {
    io_uring_sqe* sqe = ring_->sqe();
    io_uring_prep_send(sqe, t.fd, t.sendBuf.data() + t.sendOffset, t.sendBuf.size() - t.sendOffset, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, token(Op::kTunnelSend, slot));
    t.sending = true;
    ++t.inflight;
    return;
  }
  t.sendBuf.clear();
  flushTunnel(slot);  // what queued meanwhile, and more DATA now that the socket took this
}

bool Worker::handleTunnelEvents(uint32_t slot) {
  using Kind = hbone::SessionEvent::Kind;
  auto events = slots_[slot].tunnel->conn->session().takeEvents();
  for (const auto& e : events) {
    Tunnel& t = *slots_[slot].tunnel;
    if (t.aborting) return true;
    auto& session = t.conn->session();
    if (e.kind == Kind::kRequest) {
      onHboneRequest(slot, e.stream);
      continue;
    }
    auto it = t.streams.find(e.stream);
    if (it == t.streams.end()) {
      if (e.kind == Kind::kClosed) session.release(e.stream);  // a stream we answered without a relay
      continue;
    }
    uint32_t relaySlot = it->second;
    Relay& r = *slots_[relaySlot].relay;
    DirectionState& toSocket = r.hbone.isUp ? r.toDown : r.toUp;
    DirectionState& fromSocket = r.hbone.isUp ? r.toUp : r.toDown;
    switch (e.kind) {
      case Kind::kResponse: {
        int status = session.status(e.stream);
        if (status != 200) {
          spdlog::debug("{}: HBONE CONNECT {} answered {}", r.pod->key(), r.target.toString(), status);
          fail(r.pod, FailReason::kHboneRefused);
          abortRelay(relaySlot, true);
          break;
        }
        r.connected = true;
        r.counted = true;
        r.pod->counters.opened[static_cast<size_t>(r.direction)]++;
        armRecv(relaySlot, r.hbone.isUp);
        break;
      }
      case Kind::kData: deliverFromTunnel(relaySlot); break;
      case Kind::kEnd:
        toSocket.eof = true;
        deliverFromTunnel(relaySlot);
        break;
      case Kind::kClosed:
        if (session.errorCode(e.stream) != kNoError || !toSocket.eof) {
          if (!r.aborting) {
            fail(r.pod, r.connected ? FailReason::kHboneProtocol : FailReason::kHboneRefused);
            abortRelay(relaySlot, true);
          }
        } else if (!fromSocket.eof) {
          // The peer finished and stopped reading (NO_ERROR): nothing more goes its way.
          fromSocket.eof = fromSocket.shutdownSent = fromSocket.shutdownDone = true;
          maybeFinish(relaySlot);
        }
        break;
      case Kind::kWritable:
        r.hbone.blocked = false;
        armRecv(relaySlot, r.hbone.isUp);
        break;
      case Kind::kRequest: break;
    }
  }
  return !events.empty();
}

void Worker::onHboneRequest(uint32_t tunnelSlot, int32_t stream) {
  Tunnel& t = *slots_[tunnelSlot].tunnel;
  auto& session = t.conn->session();
  // Answers without a relay: a complete response (END_STREAM); the stream is released when
  // the peer ends its side (kClosed for a stream no relay holds).
  auto answer = [&](int status, FailReason reason, const std::string& why) {
    spdlog::debug("{}: HBONE CONNECT from {} ({}) answered {}: {}", t.pod->key(), t.peer.toString(), t.peerIdentity,
                  status, why);
    fail(t.pod, reason);
    session.respond(stream, status);
  };
  if (session.status(stream) == 400) return answer(400, FailReason::kMalformed, "not a CONNECT with an authority");
  auto config = config_.current();
  InboundDecision verdict = decideInbound({true, t.peerIdentity, t.peer.ip(), session.request(stream)->authority},
                                          {t.pod->ns, t.pod->addresses}, *config);
  if (verdict.verdict != InboundDecision::Verdict::kAllow) {
    return answer(verdict.httpStatus(),
                  verdict.verdict == InboundDecision::Verdict::kDenied ? FailReason::kDenied : FailReason::kMalformed,
                  verdict.reason);
  }
  if (t.pod->draining) return answer(503, FailReason::kConnectRefused, "the pod is leaving");
  int up = upstreamSocket(*t.pod, verdict.target.family());
  if (up < 0) return answer(503, FailReason::kSocketError, "no socket");
  std::shared_ptr<PodRuntime> pod = t.pod;
  SocketAddress peer = t.peer;
  std::string identity = t.peerIdentity;
  uint32_t slot = newRelay(pod, Direction::kInbound, -1, up, peer, verdict.target);
  Relay& r = *slots_[slot].relay;
  r.hbone.tunnel = tunnelSlot;
  r.hbone.stream = stream;
  r.hbone.isUp = false;
  r.peerIdentity = identity;
  slots_[tunnelSlot].tunnel->streams[stream] = slot;
  submitRelayConnect(slot);
}

void Worker::respondStream(uint32_t relaySlot, int status) {
  Relay& r = *slots_[relaySlot].relay;
  if (r.hbone.responded) return;
  r.hbone.responded = true;
  r.hbone.status = status;
  slots_[r.hbone.tunnel].tunnel->conn->session().respond(r.hbone.stream, status);
  flushTunnel(r.hbone.tunnel);
}

void Worker::deliverFromTunnel(uint32_t relaySlot) {
  Relay& r = *slots_[relaySlot].relay;
  if (r.aborting || r.hbone.sendingFromTunnel || !r.connected) return;  // before connect: it waits in the inbox
  HboneStreamSide& h = r.hbone;
  std::string& inbox = slots_[h.tunnel].tunnel->conn->session().inbox(h.stream);
  if (h.fromTunnelOffset == h.fromTunnel.size()) {
    h.fromTunnel.clear();
    h.fromTunnelOffset = 0;
    h.fromTunnel.swap(inbox);  // no copy: the inbox takes our empty buffer's capacity
  }
  if (h.fromTunnelOffset < h.fromTunnel.size()) {
    io_uring_sqe* sqe = ring_->sqe();
    io_uring_prep_send(sqe, r.socket(), h.fromTunnel.data() + h.fromTunnelOffset, h.fromTunnel.size() - h.fromTunnelOffset,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, token(h.isUp ? Op::kSendDown : Op::kSendUp, relaySlot));
    h.sendingFromTunnel = true;
    ++r.inflight;
    return;
  }
  DirectionState& toSocket = h.isUp ? r.toDown : r.toUp;
  if (toSocket.eof) submitShutdown(relaySlot, /*toUp=*/!h.isUp);
}

void Worker::onSendFromTunnel(uint32_t relaySlot, int res) {
  Relay& r = *slots_[relaySlot].relay;
  --r.inflight;
  r.hbone.sendingFromTunnel = false;
  if (r.aborting) return maybeFinish(relaySlot);
  if (res <= 0) return abortRelay(relaySlot, true);
  r.lastActivity = std::chrono::steady_clock::now();
  DirectionState& toSocket = r.hbone.isUp ? r.toDown : r.toUp;
  toSocket.bytes += static_cast<uint64_t>(res);
  auto& counter = r.hbone.isUp ? r.pod->counters.bytesToClient : r.pod->counters.bytesFromClient;
  counter[static_cast<size_t>(r.direction)] += static_cast<uint64_t>(res);
  r.hbone.fromTunnelOffset += static_cast<size_t>(res);
  uint32_t tunnel = r.hbone.tunnel;
  // Delivered to the app: only now may the peer send that much more.
  slots_[tunnel].tunnel->conn->session().consumed(r.hbone.stream, static_cast<size_t>(res));
  deliverFromTunnel(relaySlot);
  flushTunnel(tunnel);
}

void Worker::forwardToTunnel(uint32_t relaySlot, const uint8_t* data, size_t length) {
  Relay& r = *slots_[relaySlot].relay;
  auto& session = slots_[r.hbone.tunnel].tunnel->conn->session();
  session.write(r.hbone.stream, {data, length});
  // Backpressure: stop reading the app while the stream holds more than its high water.
  if (session.queued(r.hbone.stream) >= hbone::ConnectSession::kHighWater) r.hbone.blocked = true;
  flushTunnel(r.hbone.tunnel);
}

void Worker::endTowardsTunnel(uint32_t relaySlot) {
  Relay& r = *slots_[relaySlot].relay;
  DirectionState& fromSocket = r.hbone.isUp ? r.toUp : r.toDown;
  fromSocket.shutdownSent = fromSocket.shutdownDone = true;
  slots_[r.hbone.tunnel].tunnel->conn->session().finish(r.hbone.stream);  // END_STREAM after the queued bytes
  flushTunnel(r.hbone.tunnel);
  maybeFinish(relaySlot);
}

void Worker::abortTunnel(uint32_t slot, std::optional<FailReason> reason) {
  Tunnel& t = *slots_[slot].tunnel;
  if (t.aborting) return;
  t.aborting = true;
  ++t.busy;
  if (reason) fail(t.pod, *reason);
  if (!t.poolKey.empty()) {
    auto& entries = pool_[t.poolKey];
    std::erase(entries, slot);
    if (entries.empty()) pool_.erase(t.poolKey);
  }
  auto streams = t.streams;  // relays detach themselves as they finish
  for (const auto& [stream, relaySlot] : streams) {
    if (slots_[relaySlot].relay && !slots_[relaySlot].relay->aborting) abortRelay(relaySlot, true);
  }
  Tunnel& now = *slots_[slot].tunnel;
  // A reset on failure, except after a failed handshake: its alert must not be discarded.
  if (reason && *reason != FailReason::kHandshake) setReset(now.fd);
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_cancel_fd(sqe, now.fd, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(sqe, OpToken{Op::kCancel, 0, 0}.encode());
  --now.busy;
  maybeFinishTunnel(slot);
}

void Worker::maybeFinishTunnel(uint32_t slot) {
  Tunnel& t = *slots_[slot].tunnel;
  if (!t.aborting || t.inflight > 0 || !t.streams.empty() || t.busy > 0) return;
  ::close(t.fd);
  freeSlot(slot);
}

void Worker::detachStream(Relay& r) {
  uint32_t tunnel = r.hbone.tunnel;
  Tunnel& t = *slots_[tunnel].tunnel;
  t.conn->session().release(r.hbone.stream);
  t.streams.erase(r.hbone.stream);
  r.hbone.tunnel = kNoTunnel;
  t.lastActivity = std::chrono::steady_clock::now();  // a pooled connection idles from now
  if (t.aborting) return maybeFinishTunnel(tunnel);
  flushTunnel(tunnel);  // window updates for what the stream never consumed
}

std::vector<PoolInfo> Worker::hboneConnections() {
  return ask([this] {
    std::vector<PoolInfo> out;
    for (const auto& slot : slots_) {
      if (!slot.tunnel) continue;
      const Tunnel& t = *slot.tunnel;
      out.push_back({t.pod->key(), t.peer.toString(), t.server ? t.peerIdentity : t.expectedPeer, t.server ? "server" : "client",
                     t.streams.size(), t.verified});
    }
    return out;
  });
}

}  // namespace sluice::ztunnel
