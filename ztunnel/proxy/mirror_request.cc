#include "proxy/mirror_request.h"

#include <spdlog/spdlog.h>

#include "sluice/common/assert.h"

namespace sluice::ztunnel {

namespace {

std::span<const uint8_t> bytesOf(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

void countMirror(WorkerContext& context, const std::string& destination, MirrorStats::Outcome outcome) {
  if (context.mirrorStats != nullptr) context.mirrorStats->count(destination, outcome);
}

void launchMirror(WorkerContext& context, const std::shared_ptr<PodRuntime>& pod, MirrorCopy copy) {
  if (context.mirrorsInFlight >= MirrorRequest::kMaxInFlight || pod->draining) {
    countMirror(context, copy.destination, MirrorStats::Outcome::kDropped);
    return;
  }
  context.loop.add<MirrorRequest>(context, pod, std::move(copy)).start();
}

MirrorRequest::MirrorRequest(WorkerContext& context, std::shared_ptr<PodRuntime> pod, MirrorCopy copy)
    : context_(context), pod_(std::move(pod)), copy_(std::move(copy)) {
  ++context_.mirrorsInFlight;
  if (context_.mirrorStats != nullptr) context_.mirrorStats->active(copy_.destination, 1);
}

MirrorRequest::~MirrorRequest() {
  --context_.mirrorsInFlight;
  if (context_.mirrorStats != nullptr) context_.mirrorStats->active(copy_.destination, -1);
}

void MirrorRequest::start() {
  auto opened = openUpstream(context_, pod_, copy_.upstream, *this, *this, 0);
  if (!opened) {
    spdlog::debug("{}: mirror to {}: {}", pod_->key(), copy_.upstream.target.toString(), opened.error().message);
    countMirror(context_, copy_.destination, MirrorStats::Outcome::kFailed);
    finishing_ = true;
    maybeRetire();
    return;
  }
  endpoint_ = std::move(opened->endpoint);
  countMirror(context_, copy_.destination, MirrorStats::Outcome::kSent);
  if (!copy_.http2) {
    sending_ = std::move(copy_.http1);
    return;
  }
  if (auto session = http2::Http2Session::create(http2::Http2Session::Role::kClient)) session_ = std::move(*session);
  std::optional<int32_t> stream;
  if (session_) {
    if (auto submitted = session_->submitRequest(copy_.fields, copy_.body.empty())) stream = *submitted;
  }
  if (!stream) {
    finish(false, true);
    return maybeRetire();
  }
  stream_ = *stream;
  if (!copy_.body.empty()) {
    session_->write(stream_, bytesOf(copy_.body));
    session_->finish(stream_);
  }
}

void MirrorRequest::onCompletion(uint8_t op, int res, uint32_t flags) {
  SLUICE_ASSERT(endpoint_ != nullptr, "completion for a mirror without an endpoint");
  endpoint_->onCompletion(op, res, flags);
  maybeRetire();
}

void MirrorRequest::onTick(std::chrono::steady_clock::time_point now) {
  if (finishing_) return;
  // A mirror that never answers is given up at its deadline (it holds nothing of the primary's).
  if (now >= copy_.deadline || pod_->draining) {
    finish(false, true);
    maybeRetire();
  }
}

void MirrorRequest::onBuffersAvailable() {
  if (endpoint_) endpoint_->onBuffersAvailable();
  pump();
}

void MirrorRequest::onEndpointConnected(Endpoint& /*endpoint*/, bool ok, FailReason /*reason*/) {
  if (finishing_) return;
  if (!ok) {
    finish(false, true);
    maybeRetire();
    return;
  }
  connected_ = true;
  pump();
}

void MirrorRequest::pump() {
  if (finishing_ || pumping_ || !connected_) return maybeRetire();
  pumping_ = true;
  while (!finishing_) {
    bool wrote = flush();
    bool read = !finishing_ && readResponse();
    if (!wrote && !read) break;
  }
  pumping_ = false;
  maybeRetire();
}

bool MirrorRequest::flush() {
  bool progress = false;
  while (!finishing_) {
    if (offset_ == sending_.size()) {
      sending_.clear();
      offset_ = 0;
      if (session_ == nullptr || !session_->wantsWrite()) return progress;
      if (!session_->produce(sending_, 64 << 10)) {
        finish(false, true);
        return true;
      }
      if (sending_.empty()) return progress;
    }
    IoResult r = endpoint_->write(bytesOf(sending_).subspan(offset_));
    if (r.kind == IoResult::Kind::kPending) return progress;
    if (r.kind != IoResult::Kind::kDone) {
      finish(false, true);
      return true;
    }
    offset_ += r.bytes;
    progress = true;
  }
  return progress;
}

bool MirrorRequest::readResponse() {
  IoResult r = endpoint_->read();
  switch (r.kind) {
    case IoResult::Kind::kPending:
      return false;
    case IoResult::Kind::kDone: {
      // The mirror's answer is dropped; HTTP/2 frames go through the session (its window must
      // reopen, and its end is the exchange's).
      Status received = session_ ? session_->receive({r.chunk.data, r.chunk.length}) : Status{};
      endpoint_->release(r.chunk);
      if (!received) {
        finish(false, true);
        return true;
      }
      if (session_) handleSessionEvents();
      return true;
    }
    case IoResult::Kind::kEof:
      // HTTP/1.1 (Connection: close): the server's close ends the answer; an HTTP/2 stream
      // should have ended before.
      finish(session_ == nullptr, false);
      return true;
    case IoResult::Kind::kClosed:
    case IoResult::Kind::kError:
      finish(false, true);
      return true;
  }
  return false;
}

void MirrorRequest::handleSessionEvents() {
  for (const auto& e : session_->takeEvents()) {
    if (e.stream != stream_) continue;
    switch (e.kind) {
      case http2::SessionEvent::Kind::kData: {
        std::string& inbox = session_->inbox(stream_);
        session_->consumed(stream_, inbox.size());
        inbox.clear();
        break;
      }
      case http2::SessionEvent::Kind::kEnd:
        return finish(true, false);
      case http2::SessionEvent::Kind::kClosed:
        return finish(session_->status(stream_) != 0, true);
      default:
        break;
    }
  }
}

void MirrorRequest::finish(bool answered, bool reset) {
  if (finishing_) return;
  finishing_ = true;
  if (!answered) countMirror(context_, copy_.destination, MirrorStats::Outcome::kFailed);
  if (endpoint_) endpoint_->abort(reset);
}

void MirrorRequest::maybeRetire() {
  if (!finishing_ || retired_ || pumping_) return;
  if (endpoint_ && !endpoint_->quiescent()) return;
  if (endpoint_) endpoint_->close();
  endpoint_.reset();
  retired_ = true;
  context_.loop.retire(*this);
}

}  // namespace sluice::ztunnel
