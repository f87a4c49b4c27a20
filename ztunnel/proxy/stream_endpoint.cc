#include "proxy/stream_endpoint.h"

#include <spdlog/spdlog.h>

#include "proxy/hbone_client.h"
#include "proxy/hbone_link.h"
#include "proxy/upstream.h"

namespace sluice::ztunnel {
namespace {
constexpr uint32_t kNoError = 0x0;
constexpr uint32_t kRefusedStream = 0x7;
constexpr uint32_t kCancel = 0x8;
}  // namespace

StreamEndpoint::StreamEndpoint(HboneLink& link, int32_t stream, Side side, EndpointOwner& owner, PodCounters& counters)
    : link_(&link), stream_(stream), side_(side), owner_(owner), counters_(counters) {
  link.attach(stream, this);
}

StreamEndpoint::~StreamEndpoint() { close(); }

void StreamEndpoint::connectionLost() {
  if (link_ == nullptr) return;
  link_ = nullptr;
  loanSize_ = 0;  // the session, and its loan, are gone
  // The link counted why it closed; the stream's relay is reset without another count.
  closedByPeer_ = peerFailed_ = true;
  if (side_ == Side::kClient && !established_) {
    owner_.onEndpointConnected(*this, false, FailReason::kCount);
  } else {
    owner_.onEndpointProgress();
  }
}

void StreamEndpoint::onSessionEvent(const http2::SessionEvent& e) {
  using Kind = http2::SessionEvent::Kind;
  if (link_ == nullptr) return;
  auto& session = link_->session();
  switch (e.kind) {
    case Kind::kResponse: {
      int status = session.status(stream_);
      if (status != 200) {
        spdlog::debug("HBONE CONNECT answered {}", status);
        return owner_.onEndpointConnected(*this, false, FailReason::kHboneRefused);
      }
      established_ = true;
      std::string().swap(early_);  // delivered for good: no copy to keep
      return owner_.onEndpointConnected(*this, true, FailReason::kCount);
    }
    case Kind::kEnd:
      peerEnded_ = true;
      break;
    case Kind::kClosed:
      closedByPeer_ = true;
      endLoan();  // nothing more is framed on a closed stream; the relay may drop the bytes
      if (side_ == Side::kClient && !established_ && session.errorCode(stream_) == kRefusedStream && reopened()) return;
      if (session.errorCode(stream_) != kNoError || !peerEnded_) {
        peerFailed_ = true;
        if (side_ == Side::kClient && !established_) {
          return owner_.onEndpointConnected(*this, false, FailReason::kHboneRefused);
        }
        counters_.failed[static_cast<size_t>(established_ ? FailReason::kHboneProtocol : FailReason::kHboneRefused)]++;
      }
      break;
    case Kind::kData:
    case Kind::kWritable:
    case Kind::kRequest:
      break;
  }
  owner_.onEndpointProgress();
}

IoResult StreamEndpoint::read() {
  if (link_ == nullptr) return IoResult::error();
  if (lentOut_) return IoResult::pending();
  std::string& inbox = link_->session().inbox(stream_);
  if (!inbox.empty()) {
    // No copy: the inbox takes our empty buffer's capacity, we take its bytes.
    lent_.clear();
    lent_.swap(inbox);
    lentOut_ = true;
    return IoResult::data({reinterpret_cast<const uint8_t*>(lent_.data()), static_cast<uint32_t>(lent_.size()), 0});
  }
  if (peerFailed_) return IoResult::error();
  if (peerEnded_) return IoResult::eof();
  return IoResult::pending();
}

void StreamEndpoint::release(const Chunk& chunk) {
  lentOut_ = false;
  if (link_ == nullptr) return;
  // Delivered: only now may the peer send that much more.
  link_->session().consumed(stream_, chunk.length);
  link_->requestFlush();
}

IoResult StreamEndpoint::write(std::span<const uint8_t> bytes) {
  // (No loan is out here then: kClosed and connectionLost, which set these, ended it.)
  if (link_ == nullptr || peerFailed_) return IoResult::error();
  if (closedByPeer_) return IoResult::closed();
  auto& session = link_->session();
  if (loanSize_ > 0) {
    // The relay offers the bytes it lent again: done once they are all framed.
    if (session.lentTaken(stream_) < loanSize_) return IoResult::pending();
    return IoResult::done(endLoan());
  }
  // Backpressure: refuse while the stream holds more than its high water (kWritable resumes).
  if (session.queued(stream_) >= http2::Http2Session::kHighWater) return IoResult::pending();
  if (side_ == Side::kClient && !established_) {
    // Early data: up to the limit, copied and kept until the answer; the rest waits for the 200.
    size_t room = earlyRoom();
    if (room == 0) return IoResult::pending();
    bytes = bytes.first(std::min(bytes.size(), room));
    early_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    session.write(stream_, bytes);
    link_->requestFlush();
    return IoResult::done(bytes.size());
  }
  if (bytes.empty()) return IoResult::done(0);
  session.lend(stream_, bytes);
  loanSize_ = bytes.size();
  link_->requestFlush();
  return IoResult::pending();
}

size_t StreamEndpoint::endLoan() {
  if (loanSize_ == 0) return 0;
  loanSize_ = 0;
  return link_ == nullptr ? 0 : link_->session().endLoan(stream_);
}

IoResult StreamEndpoint::shutdownWrite() {
  if (link_ == nullptr) return IoResult::error();
  if (closedByPeer_) return IoResult::done();
  // A half-close waits for the 200: some CONNECT servers (nghttpx) reset a stream the client
  // ends before they answered. The relay offers it again once the stream is established.
  if (side_ == Side::kClient && !established_) return IoResult::pending();
  link_->session().finish(stream_);  // END_STREAM after the queued bytes
  link_->requestFlush();
  return IoResult::done();
}

void StreamEndpoint::respond(int status) {
  if (side_ != Side::kServer || link_ == nullptr || responded_ != 0) return;
  responded_ = status;
  established_ = status == 200;
  link_->session().respond(stream_, status);
  link_->requestFlush();
}

void StreamEndpoint::abort(bool) {
  endLoan();  // the relay gives its chunks back after an abort
  if (link_ == nullptr) return;
  // After a complete non-200 answer the session itself ends the stream with NO_ERROR once the
  // answer is out (RFC 9113 8.1); otherwise CANCEL tells the peer the flow broke.
  if (responded_ == 0 || responded_ == 200) link_->session().reset(stream_, kCancel);
  link_->requestFlush();
}

bool StreamEndpoint::reopened() {
  if (side_ != Side::kClient || reopenedOnce_) return false;
  reopenedOnce_ = true;
  // A client stream's link is the pooled HboneClient (upstream.cc opens them nowhere else).
  auto next = reopenStream(static_cast<HboneClient&>(*link_), stream_);
  if (!next) {
    spdlog::debug("HBONE stream refused unprocessed; opening it again failed: {}", next.error().message());
    return false;
  }
  close();  // forget the refused stream (the session already closed it)
  closedByPeer_ = peerEnded_ = false;
  link_ = next->first;
  stream_ = next->second;
  link_->attach(stream_, this);
  // What the refused stream had taken goes on the new one, in the same order.
  if (!early_.empty()) {
    link_->session().write(stream_, {reinterpret_cast<const uint8_t*>(early_.data()), early_.size()});
  }
  link_->requestFlush();
  return true;
}

void StreamEndpoint::close() {
  endLoan();
  if (link_ == nullptr) return;
  HboneLink* link = link_;
  link_ = nullptr;
  link->detach(stream_);
}

}  // namespace sluice::ztunnel
