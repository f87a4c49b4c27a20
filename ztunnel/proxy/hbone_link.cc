#include "proxy/hbone_link.h"

#include "proxy/hbone_request.h"

#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include "proxy/stream_endpoint.h"

namespace sluice::ztunnel {

HboneLink::HboneLink(WorkerContext& context, std::shared_ptr<PodRuntime> pod, UniqueFd fd,
                     std::unique_ptr<hbone::HboneConnection> connection, SocketAddress peer)
    : context_(context),
      pod_(std::move(pod)),
      connection_(std::move(connection)),
      socket_(context.loop, *this, *this, 0, std::move(fd), &pod_->buffers),
      peer_(std::move(peer)),
      createdAt_(context.loop.now()),
      lastUsed_(createdAt_) {}

HboneLink::~HboneLink() {
  // Destroyed with the loop (the worker is stopping): endpoints still attached must not call
  // into us later, and their relays, being torn down too, are not told anything.
  for (auto& [stream, endpoint] : streams_) endpoint->forgetLink();
}

void HboneLink::attach(int32_t stream, StreamEndpoint* endpoint) {
  streams_[stream] = endpoint;
  lastUsed_ = context_.loop.now();
}

void HboneLink::detach(int32_t stream) {
  session().release(stream);
  streams_.erase(stream);
  lastUsed_ = context_.loop.now();  // a pooled connection idles from now
  requestFlush();                   // window updates for what the stream never consumed
}

void HboneLink::requestFlush() {
  if (!aborting_) context_.loop.defer(*this);
}

void HboneLink::connected() {
  connected_ = true;
  // The handshake deadline runs from here: the accept, or the dial's TCP connect.
  createdAt_ = lastUsed_ = context_.loop.now();
  requestFlush();  // a client's ClientHello
  pump();
}

void HboneLink::onCompletion(uint8_t op, int res, uint32_t flags) { socket_.onCompletion(op, res, flags); }

void HboneLink::onEndpointConnected(Endpoint&, bool ok, FailReason reason) {
  if (aborting_) return;
  if (!ok) {
    spdlog::debug("{}: HBONE connect to {} failed ({})", pod_->key(), peer_.toString(), failReasonName(reason));
    return abort(reason);
  }
  connected();
}

void HboneLink::onEndpointProgress() { pump(); }

void HboneLink::onBuffersAvailable() {
  socket_.onBuffersAvailable();
  pump();
}

void HboneLink::pump() {
  if (finished_) return;
  if (!aborting_ && connected_) {
    // Read only while what we owe the peer fits under the cap.
    while (!aborting_ && out_.size() + (sending_.size() - sendingOffset_) < context_.options.maxQueuedCiphertext) {
      IoResult r = socket_.read();
      if (r.kind == IoResult::Kind::kPending) break;
      if (r.kind == IoResult::Kind::kDone) {
        if (!receive(r.chunk)) break;
        continue;
      }
      // The peer closed or broke the connection: an orderly end when no stream was open.
      bool orderly = r.kind == IoResult::Kind::kEof && streams_.empty();
      abort(orderly ? std::nullopt : std::optional(verified_ ? FailReason::kHboneProtocol : FailReason::kHandshake));
      break;
    }
    while (!aborting_) {
      if (sendingOffset_ == sending_.size()) {
        if (out_.empty()) break;
        sending_.clear();
        sending_.swap(out_);
        sendingOffset_ = 0;
      }
      IoResult w = socket_.write({reinterpret_cast<const uint8_t*>(sending_.data()) + sendingOffset_,
                                  sending_.size() - sendingOffset_});
      if (w.kind == IoResult::Kind::kPending) break;
      if (w.kind != IoResult::Kind::kDone) {
        abort(FailReason::kHboneProtocol);
        break;
      }
      sendingOffset_ += w.bytes;
      // The socket took some: frames held back by the cap may go now.
      requestFlush();
    }
  }
  maybeFinish();
}

bool HboneLink::receive(const Chunk& chunk) {
  lastUsed_ = context_.loop.now();
  Status received = connection_->receive({chunk.data, chunk.length});
  socket_.release(chunk);
  if (connection_->justEstablished()) {
    // Verified before any of the peer's requests or responses is looked at.
    std::string identity = connection_->peerIdentity();
    std::string why = checkPeer(identity);
    peerIssuance_ = connection_->peerIssuance();
    if (why.empty()) why = revokedIssuer();
    if (!why.empty()) {
      spdlog::warn("{}: HBONE peer {} refused: {}", pod_->key(), peer_.toString(), why);
      abort(FailReason::kHandshake);
      return false;
    }
    peerIdentity_ = identity;
    verified_ = true;
    connection_->peerVerified();
  }
  if (!received) {
    spdlog::debug("{}: HBONE with {}: {}", pod_->key(), peer_.toString(), received.error().message());
    if (!verified_) {
      // Best effort: let the peer read the TLS alert (e.g. "certificate required") before we close.
      std::string alert;
      connection_->takeCiphertext(alert);
      if (!alert.empty()) (void)::send(socket_.fd(), alert.data(), alert.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    abort(verified_ ? FailReason::kHboneProtocol : FailReason::kHandshake);
    return false;
  }
  if (connection_->peerClosed()) {
    abort(streams_.empty() ? std::nullopt : std::optional(FailReason::kHboneProtocol));
    return false;
  }
  requestFlush();
  return true;
}

void HboneLink::onDeferred() {
  if (aborting_ || !connected_) return;
  if (verified_) handleEvents();
  if (aborting_) return;
  // Produce frames only below the cap; what nghttp2 holds back goes out as the socket drains.
  size_t owed = out_.size() + (sending_.size() - sendingOffset_);
  size_t room = owed < context_.options.maxQueuedCiphertext ? context_.options.maxQueuedCiphertext - owed : 0;
  if (Status flushed = connection_->flush(out_, room); !flushed) {
    spdlog::debug("{}: HBONE: {}", pod_->key(), flushed.error().message());
    return abort(FailReason::kHboneProtocol);
  }
  // Producing frames can queue events (a stream's queue fell below its low water): handle
  // them in another round, after this batch's other deferred work.
  if (session().hasEvents()) requestFlush();
  pump();
}

void HboneLink::handleEvents() {
  using Kind = http2::SessionEvent::Kind;
  for (const auto& e : session().takeEvents()) {
    if (aborting_) return;
    if (e.kind == Kind::kRequest) {
      onRequest(e.stream);
      continue;
    }
    auto it = streams_.find(e.stream);
    if (it == streams_.end()) {
      if (e.kind == Kind::kClosed) session().release(e.stream);  // a stream answered without a relay
      continue;
    }
    it->second->onSessionEvent(e);
  }
}

void HboneLink::abort(std::optional<FailReason> reason) {
  if (aborting_ || finished_) return;
  aborting_ = true;
  onClosing();
  if (reason) count(*reason);
  // Every stream's relay learns first, and lets go of its pointer to us.
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [stream, endpoint] : streams) endpoint->connectionLost();
  // A reset on failure, except after a failed handshake: its alert must not be discarded.
  socket_.abort(reason && *reason != FailReason::kHandshake);
  maybeFinish();
}

void HboneLink::maybeFinish() {
  if (finished_ || !aborting_ || !socket_.quiescent()) return;
  finished_ = true;
  socket_.close();
  context_.loop.retire(*this);
}

std::string HboneLink::revokedIssuer() const {
  const auto& revoked = context_.config.current()->revokedNodes;
  if (revoked.empty()) return "";
  return revokedIssuerVerdict(revoked, peerIssuance_.node, peerIssuance_.issuedAt);
}

void HboneLink::onTick(std::chrono::steady_clock::time_point now) {
  if (aborting_) return;
  if (!verified_ && now - createdAt_ > context_.options.handshakeTimeout) {
    spdlog::debug("{}: HBONE peer {} did not complete its handshake in time", pod_->key(), peer_.toString());
    return abort(FailReason::kHandshake);
  }
  if (pod_->drainDeadline && now >= *pod_->drainDeadline) return abort(std::nullopt);
  // A peer whose node was revoked since the handshake: the link ends (streams and all).
  if (verified_) {
    if (std::string why = revokedIssuer(); !why.empty()) {
      spdlog::warn("{}: HBONE peer {} ({}) cut off: {}", pod_->key(), peer_.toString(), peerIdentity_, why);
      return abort(FailReason::kHandshake);
    }
  }
  // A removed pod's link closes as soon as it carries nothing: draining is for streams, and an
  // idle link would keep the pod's namespace alive (and its capture with it) until its idle
  // timeout. (A pod handed over to a newer tunnel is still there: its links wind down as usual.)
  if (pod_->draining && !pod_->handedOver && verified_ && streams_.empty() && session().openStreams() == 0) {
    return abort(std::nullopt);
  }
  if (verified_ && idleExpired(now)) abort(std::nullopt);
}

}  // namespace sluice::ztunnel
