// A CONNECT stream of an HBONE connection as a relay endpoint: reads take the bytes the peer
// sent on the stream (the session's inbox, swapped out without a copy), writes lend the relay's
// bytes to the stream (Http2Session::lend: its DATA frames are made straight from the relay's
// receive buffer, no copy in between), a half-close is END_STREAM, an abort RST_STREAM.
//
// A write is pending until every lent byte is framed (the session's kWritable): the relay keeps
// the chunk meanwhile, as it does for a socket's send in flight, and offers the same bytes again;
// then the write is done and the loan ends. Abort and close end a loan first, so the session
// never holds a pointer into a chunk the relay gave back.
//
// Flow control is end to end: a chunk lent to the relay reopens the peer's window only when
// the relay gives it back (it reached the other socket), and writes are refused (kPending)
// while the stream's queue is above its high water, until the session reports it writable.
//
// The endpoint holds a pointer to its link while attached; the link calls connectionLost()
// before it goes, after which every call fails as a reset would.
//
// Early data: a client stream takes writes before its CONNECT is answered (up to kEarlyLimit
// bytes; END_STREAM waits for the 200), so the app's first bytes follow the request headers
// without a round trip (the server holds them until its upstream connects; a refusal drops
// them, and the relay resets the app as it would have anyway). It keeps a copy of those bytes
// until the 200 (so those are copied: Http2Session::write).
//
// A client stream refused before the server processed it (REFUSED_STREAM, RFC 9113 §8.7: nghttp2
// also refuses locally the streams it had not sent yet when a GOAWAY arrives, as during a
// tunnel upgrade) is opened once more on another connection of its pool (reopenStream), its
// early bytes written again there; the relay only sees a slower connect.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "engine/endpoint.h"
#include "http2/http2_session.h"
#include "proxy/pod_runtime.h"

namespace sluice::ztunnel {

class HboneLink;

class StreamEndpoint final : public Endpoint {
 public:
  enum class Side { kClient, kServer };
  // Bytes a client stream takes before its CONNECT is answered: the first message of most
  // protocols (a request, a TLS ClientHello) fits.
  static constexpr size_t kEarlyLimit = 16 * 1024;
  StreamEndpoint(HboneLink& link, int32_t stream, Side side, EndpointOwner& owner, PodCounters& counters);
  ~StreamEndpoint() override;

  // From the link.
  void onSessionEvent(const http2::SessionEvent& event);
  void connectionLost();
  // The link is being destroyed with the loop: drop the pointer, tell nobody.
  void forgetLink() { link_ = nullptr; }

  IoResult read() override;
  void release(const Chunk& chunk) override;
  IoResult write(std::span<const uint8_t> bytes) override;
  bool writeClosed() const override { return closedByPeer_ && !peerFailed_; }
  IoResult shutdownWrite() override;
  bool takesEarlyWrites() const override { return link_ != nullptr && earlyRoom() > 0; }
  void upstreamReady() override { respond(200); }
  void upstreamFailed() override { respond(503); }
  void abort(bool reset) override;
  bool quiescent() const override { return true; }  // no io_uring operation of its own
  void close() override;

 private:
  // Bytes a client stream may still take before its 200 (0 once established, or on a server).
  size_t earlyRoom() const {
    return side_ == Side::kClient && !established_ ? kEarlyLimit - std::min(early_.size(), kEarlyLimit) : 0;
  }
  void respond(int status);
  // Ends the session's loan of the relay's bytes, if any; returns how many were framed.
  size_t endLoan();
  // The stream was refused unprocessed: true when it was opened again elsewhere.
  bool reopened();

  HboneLink* link_;  // null once the connection is gone or the endpoint closed
  int32_t stream_;
  Side side_;
  EndpointOwner& owner_;
  PodCounters& counters_;
  std::string lent_;  // the bytes lent to the relay (one chunk at a time)
  bool lentOut_ = false;
  bool established_ = false;   // client: answered 200; server: we answered 200
  bool peerEnded_ = false;     // END_STREAM from the peer
  bool closedByPeer_ = false;  // the stream is gone on the peer's side
  bool peerFailed_ = false;    // ... with an error, or before its END_STREAM
  int responded_ = 0;          // server: the status we answered
  bool reopenedOnce_ = false;  // client: a refused stream is opened again once, not more
  std::string early_;          // client: bytes written before the 200, kept to write them again
  size_t loanSize_ = 0;        // bytes of the relay's lent to the session (0: no loan)
};

}  // namespace sluice::ztunnel
