#include "engine/relay.h"

#include "sluice/common/assert.h"

namespace sluice::ztunnel {

Relay::Relay(EventLoop& loop, RelayInfo info, std::chrono::milliseconds idleTimeout, std::atomic<size_t>* live)
    : loop_(loop), info_(std::move(info)), idleTimeout_(info_.idleTimeout.value_or(idleTimeout)), live_(live),
      lastActivity_(loop.now()), started_(loop.now()) {
  if (live_ != nullptr) ++*live_;
  info_.pod->counters.active++;
}

Relay::~Relay() {
  if (!finished_) {
    // Destroyed with the loop (the worker stopped): count it closed all the same.
    if (counted_) countClosed();
    info_.pod->counters.active--;
    if (live_ != nullptr) --*live_;
  }
}

void Relay::countClosed() {
  info_.pod->counters.closed[static_cast<size_t>(info_.direction)]++;
  if (info_.series) info_.series->closed++;
}

void Relay::attach(std::unique_ptr<Endpoint> down, std::unique_ptr<Endpoint> up) {
  down_ = std::move(down);
  up_ = std::move(up);
  toUp_.from = down_.get();
  toUp_.to = up_.get();
  toDown_.from = up_.get();
  toDown_.to = down_.get();
  // An upstream that takes early writes (an HBONE stream, its CONNECT just queued): start
  // reading the client now, so its first bytes leave with the CONNECT, not a round trip later.
  if (up_->takesEarlyWrites()) pump();
}

void Relay::onCompletion(uint8_t op, int res, uint32_t flags) {
  Endpoint* side = op >= kUpOps ? up_.get() : down_.get();
  SLUICE_ASSERT(side != nullptr, "completion for a relay without endpoints");
  side->onCompletion(op, res, flags);
}

void Relay::onEndpointConnected(Endpoint&, bool ok, FailReason reason) {
  if (aborting_ || finished_) return;
  if (info_.connectOutcome) std::exchange(info_.connectOutcome, nullptr)(ok);
  if (!ok) {
    if (reason != FailReason::kCount) info_.pod->counters.failed[static_cast<size_t>(reason)]++;  // kCount: counted already
    down_->upstreamFailed();  // HBONE: the client hears 503; a socket learns by the reset
    return abort(true);
  }
  connected_ = true;
  counted_ = true;
  info_.pod->counters.opened[static_cast<size_t>(info_.direction)]++;
  if (info_.series) info_.series->opened++;
  down_->upstreamReady();
  pump();
}

void Relay::onEndpointProgress() { pump(); }

void Relay::onBuffersAvailable() {
  if (down_) down_->onBuffersAvailable();
  if (up_) up_->onBuffersAvailable();
  pump();
}

void Relay::pump() {
  if (finished_ || pumping_) return;
  pumping_ = true;
  if (connected_ && !aborting_) {
    while (pumpFlow(toUp_, true) | pumpFlow(toDown_, false)) {
      if (aborting_) break;
    }
  } else if (!aborting_ && up_ && up_->takesEarlyWrites()) {
    // Early writes: only towards the upstream, and only while it takes them.
    while (pumpFlow(toUp_, true)) {
      if (aborting_ || !up_->takesEarlyWrites()) break;
    }
  }
  pumping_ = false;
  maybeFinish();
}

bool Relay::pumpFlow(Flow& f, bool fromClient) {
  if (aborting_ || f.done()) return false;
  if (f.to->writeClosed()) {
    endFlow(f);
    return true;
  }
  bool progress = false;
  for (bool step = true; step && !aborting_;) {
    step = false;
    // Write first: what is queued goes out before the next read is armed, so the send reaches
    // the kernel ahead of the receive that may wait (lower latency per message).
    while (f.count > 0) {
      const Chunk& head = f.queue[f.head];
      IoResult w = f.to->write({head.data + f.offset, head.length - f.offset});
      if (w.kind == IoResult::Kind::kPending) break;
      step = progress = true;
      if (w.kind == IoResult::Kind::kClosed) {
        endFlow(f);
        return true;
      }
      if (w.kind != IoResult::Kind::kDone) {
        abort(true);
        return true;
      }
      f.offset += w.bytes;
      lastActivity_ = loop_.now();
      if (f.offset < head.length) continue;  // a short write: the rest is offered again
      f.from->release(head);
      f.head = (f.head + 1) % kDepth;
      --f.count;
      f.offset = 0;
    }
    // Then one read while there is room; the next read overlaps the writes of what is queued.
    if (f.eof || f.count == kDepth) break;
    IoResult r = f.from->read();
    if (r.kind == IoResult::Kind::kPending) break;
    step = progress = true;
    if (r.kind == IoResult::Kind::kEof) {
      f.eof = true;
      break;
    }
    if (r.kind != IoResult::Kind::kDone) {
      abort(true);
      return true;
    }
    f.queue[(f.head + f.count) % kDepth] = r.chunk;
    ++f.count;
    f.bytes += r.chunk.length;
    auto& counter = fromClient ? info_.pod->counters.bytesFromClient : info_.pod->counters.bytesToClient;
    counter[static_cast<size_t>(info_.direction)] += r.chunk.length;
    if (info_.series) (fromClient ? info_.series->received : info_.series->sent) += r.chunk.length;
    lastActivity_ = loop_.now();
  }
  if (f.eof && f.count == 0 && !f.shutdownDone) {
    IoResult s = f.to->shutdownWrite();
    if (s.kind == IoResult::Kind::kDone || s.kind == IoResult::Kind::kClosed) {
      f.shutdownDone = true;
      progress = true;
    } else if (s.kind == IoResult::Kind::kError) {
      abort(true);
      return true;
    }
  }
  return progress;
}

void Relay::releaseQueued(Flow& f) {
  for (; f.count > 0; --f.count, f.head = (f.head + 1) % kDepth) f.from->release(f.queue[f.head]);
  f.offset = 0;
}

void Relay::endFlow(Flow& f) {
  // The receiver finished without error and takes nothing more: this direction is over.
  releaseQueued(f);
  f.eof = f.shutdownDone = true;
}

void Relay::abort(bool reset) {
  if (aborting_ || finished_) return;
  aborting_ = true;
  if (down_) down_->abort(reset);
  if (up_) up_->abort(reset);
  maybeFinish();
}

void Relay::maybeFinish() {
  if (finished_ || pumping_) return;
  if (!aborting_ && !(toUp_.done() && toDown_.done())) return;
  if ((down_ && !down_->quiescent()) || (up_ && !up_->quiescent())) {
    // Both directions are over but a read is still armed (the receiver closed its stream while
    // the sender had said nothing more): cancel it, without a reset.
    if (!aborting_) {
      aborting_ = true;
      down_->abort(false);
      up_->abort(false);
    }
    return;
  }
  finished_ = true;
  // Chunks still queued (an aborted relay) go back to their sources.
  releaseQueued(toUp_);
  releaseQueued(toDown_);
  if (down_) down_->close();
  if (up_) up_->close();
  if (counted_) countClosed();
  info_.pod->counters.active--;
  if (live_ != nullptr) --*live_;
  loop_.retire(*this);
}

void Relay::onTick(std::chrono::steady_clock::time_point now) {
  if (aborting_ || finished_) return;
  if (!connected_ && up_ && info_.connectTimeout.count() > 0 && now - started_ >= info_.connectTimeout) {
    return onEndpointConnected(*up_, false, FailReason::kConnectTimeout);
  }
  bool idle = idleTimeout_.count() > 0 && now - lastActivity_ > idleTimeout_;
  bool drained = info_.pod->drainDeadline && now >= *info_.pod->drainDeadline;
  if (idle || drained) return abort(true);
  // Its maximum duration over: closed as a finished connection is (FIN both ways, as Envoy's
  // max_connection_duration closes it), not reset.
  if (info_.maxDuration.count() > 0 && now - started_ >= info_.maxDuration) abort(false);
}

ConnectionInfo Relay::describe() const {
  return {info_.pod->key(),
          info_.direction == Direction::kOutbound ? "outbound" : "inbound",
          info_.peer.toString(),
          info_.target.toString(),
          aborting_ ? "closing" : connected_ ? "relaying" : "connecting",
          toUp_.bytes,
          toDown_.bytes,
          info_.protocol,
          info_.peerIdentity};
}

}  // namespace sluice::ztunnel
