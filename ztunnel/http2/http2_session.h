// One HTTP/2 connection as a sans-IO state machine over nghttp2: the caller feeds it the peer's
// plaintext bytes and takes the bytes to send; it never touches a socket, so the worker drives
// it from io_uring completions and tests and the fuzzer drive it from memory.
//
// Two users: HBONE (RFC 9113 CONNECT streams, one TCP flow per stream: connect(), respond(),
// request()) and the L7 proxy's HTTP/2 and gRPC (ordinary requests: submitRequest(),
// submitResponse(), the received header fields and trailers, finish() with trailers). Both get
// the same per-stream body queues and flow control.
//
// Flow control is end to end: received DATA is held per stream until the caller reports it
// delivered to the app (consumed()), and only then is the window reopened, so a slow app slows
// its sender instead of growing our buffers (at most the advertised windows, SessionLimits).
// Outgoing bytes queue per stream (write()); the caller stops reading its app socket while
// queued(stream) is above kHighWater and resumes on a kWritable event.
//
// Events are queued, not called back: after receive() the caller drains takeEvents() and may
// call anything on the session while handling them.
#pragma once

#include <cstdint>
#include <cstddef>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "l7/http_head.h"
#include "sluice/common/error.h"

struct nghttp2_session;

namespace sluice::ztunnel::http2 {

// Header fields as received or to send: pseudo-header fields (":method", ":status", ...) first,
// names in lowercase (HTTP/2 requires it; nghttp2 refuses uppercase from the peer).
using Fields = std::vector<l7::HttpHeader>;

struct SessionLimits {
  uint32_t maxConcurrentStreams = 100;
  // What a peer may have in flight to us, per stream and per connection: it is what one
  // connection can make us hold when our app side does not read (data waits in the stream's
  // inbox until delivered). The tunnel sets smaller ones (WorkerOptions::hboneLimits).
  int32_t streamWindow = 4 << 20;
  int32_t connectionWindow = 16 << 20;
  size_t maxHeaderBytes = 16 << 10;  // a request's header block; more is a malformed request
};

struct ConnectRequest {
  std::string authority;    // "ip:port" (server: as received, unvalidated)
  std::string forwarded;    // RFC 7239 Forwarded, e.g. "for=10.0.0.1"
  std::string traceparent;  // W3C trace context, passed through
};

struct SessionEvent {
  enum class Kind {
    kRequest,   // server: a request's header block arrived (fields(stream); HBONE: request(stream))
    kResponse,  // client: the final response's header block arrived (status(stream), fields(stream))
    kData,      // bytes are waiting in inbox(stream)
    kEnd,       // the peer half-closed the stream (after all its data; trailers(stream) if any)
    kClosed,    // the stream is gone (reset by the peer or the protocol); errorCode() says why
    kWritable,  // queued(stream) fell below kLowWater again
  };
  Kind kind;
  int32_t stream;
};

class Http2Session {
 public:
  static constexpr size_t kHighWater = 256 << 10;
  static constexpr size_t kLowWater = 64 << 10;
  enum class Role { kClient, kServer };

  static Result<std::unique_ptr<Http2Session>> create(Role role, SessionLimits limits = {});
  ~Http2Session();
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  // The peer's bytes. A protocol error fails (the connection must be closed; a GOAWAY may
  // already be queued for produce()).
  Status receive(std::span<const uint8_t> bytes);
  // Appends what is ready to send to `out`, frame by frame while `out` holds less than
  // `limit` bytes (what is left stays queued for the next call); returns the bytes appended.
  Result<size_t> produce(std::string& out, size_t limit = SIZE_MAX);
  bool wantsWrite() const;
  // Neither side wants anything more: the connection can be closed.
  bool finished() const;

  std::vector<SessionEvent> takeEvents();
  bool hasEvents() const { return !events_.empty(); }

  // Client: opens a CONNECT stream; its DATA follows through write(). Fails when the
  // connection can take no more streams.
  Result<int32_t> connect(const ConnectRequest& request);
  // Server (HBONE): answers a CONNECT. 200 opens the tunnel; any other status ends the stream
  // (and, once the answer is out, RST_STREAM NO_ERROR frees it), and whatever DATA the client
  // still sends on it is consumed and dropped (never held).
  void respond(int32_t stream, int status);

  // Client: sends a request's header block (pseudo-header fields first); unless `endStream`,
  // its body follows through write() and finish(). Fails when no more streams fit.
  Result<int32_t> submitRequest(const Fields& fields, bool endStream);
  // Server: sends a response's header block; unless `endStream`, the body follows through
  // write() and finish(). A stream already gone is ignored.
  void submitResponse(int32_t stream, const Fields& fields, bool endStream);
  // The header block of the request (server) or the final response (client); 1xx interim
  // responses are skipped. Empty until kRequest / kResponse.
  const Fields& fields(int32_t stream) const;
  // The peer's trailers (a header block after the body), complete at kEnd.
  const Fields& trailers(int32_t stream) const;
  // The peer's END_STREAM has been received (its last event may still be queued).
  bool peerEnded(int32_t stream) const;

  const ConnectRequest* request(int32_t stream) const;
  int status(int32_t stream) const;
  uint32_t errorCode(int32_t stream) const;
  // The peer's bytes for `stream`, not yet taken; take them by swapping in an empty string.
  std::string& inbox(int32_t stream);
  // Bytes of `stream` delivered to the app: reopens the peer's window by that much.
  void consumed(int32_t stream, size_t bytes);
  void write(int32_t stream, std::span<const uint8_t> bytes);
  // Queues `bytes` after what write() queued without copying them: DATA frames are made
  // straight from them. The caller keeps them alive and unchanged until it ends the loan
  // (endLoan), which it may do once lentTaken() reaches their size (a kWritable event says so)
  // or sooner, giving up the rest (the stream is being reset). One loan per stream at a time.
  void lend(int32_t stream, std::span<const uint8_t> bytes);
  // Bytes of the loan already framed (in a produce() output).
  size_t lentTaken(int32_t stream) const;
  // Ends the loan; returns the bytes framed. The session never looks at the loan again.
  size_t endLoan(int32_t stream);
  // Bytes queued and not yet framed, lent ones included.
  size_t queued(int32_t stream) const;
  // Half-close: END_STREAM after the queued bytes, carried by `trailers` when there are any.
  void finish(int32_t stream, const Fields& trailers = {});
  // Abandons `stream` with RST_STREAM (default CANCEL); no event follows for it.
  void reset(int32_t stream, uint32_t errorCode = 0x8);
  // The caller is done with a stream: forgets it, returning the window of bytes it never
  // consumed. A stream whose last bytes or END_STREAM are still queued stays until they are
  // out (no event follows for it).
  void release(int32_t stream);
  // No new streams; open ones finish (GOAWAY).
  void shutdown();
  // Server: tells the client to open no more streams here (GOAWAY with the highest stream id,
  // RFC 9113 §6.8) while streams it opens meanwhile are still served.
  void shutdownNotice();
  size_t openStreams() const { return open_; }
  bool acceptsStreams() const;

 private:
  struct Stream {
    ConnectRequest request;
    Fields fields, trailers;
    Fields trailersToSend;
    bool finalHead = false;  // client: the final (non-1xx) response head is complete
    bool peerEnded = false;
    size_t headerBytes = 0;
    bool isConnect = false, hasScheme = false, hasPath = false;
    int status = 0;
    std::string inbox;
    size_t unconsumed = 0;  // received and not yet reported consumed
    std::string outbox;
    size_t outboxOffset = 0;
    std::span<const uint8_t> loan;  // lent bytes, framed after the outbox
    size_t loanTaken = 0;
    size_t unframed() const { return outbox.size() - outboxOffset + (loan.size() - loanTaken); }
    void dropLoan() {  // the session never looks at the lent bytes again
      loan = {};
      loanTaken = 0;
    }
    bool finishRequested = false;
    bool dataAttached = false;  // the data provider is submitted
    bool deferred = false;      // the provider returned DEFERRED: resume on write
    bool wasAboveHighWater = false;
    uint32_t errorCode = 0;
    bool closed = false;  // nghttp2 is done with it; kept until release()
    bool discard = false;   // answered non-200 or released: incoming DATA is dropped at once
    bool released = false;  // the caller is done; kept only until its queued bytes are out
    bool resetAfterAnswer = false;  // answered non-200: RST_STREAM NO_ERROR once the answer is out
  };
  explicit Http2Session(Role role, SessionLimits limits) : role_(role), limits_(limits) {}
  Stream* find(int32_t stream);
  const Stream* find(int32_t stream) const;
  void attachData(int32_t stream, Stream& s);
  void resume(int32_t stream, Stream& s);
  int32_t submit(int32_t stream, const Fields& fields, bool endStream);

  struct Callbacks;
  friend struct Callbacks;
  Role role_;
  SessionLimits limits_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, Stream> streams_;
  std::vector<SessionEvent> events_;
  size_t open_ = 0;  // streams not closed
  bool shutdown_ = false;
  bool peerWentAway_ = false;
  std::string* produceOut_ = nullptr;  // the output of the produce() call under way
  size_t produceLimit_ = 0;
};

}  // namespace sluice::ztunnel::http2
