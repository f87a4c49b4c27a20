// One HTTP/2 connection carrying HBONE streams (RFC 9113 CONNECT, one TCP flow per stream), as
// a sans-IO state machine over nghttp2: the caller feeds it the peer's plaintext bytes and
// takes the bytes to send; it never touches a socket, so the worker drives it from io_uring
// completions and tests and the fuzzer drive it from memory.
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

#include "sluice/common/error.h"

struct nghttp2_session;

namespace sluice::ztunnel::hbone {

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
    kRequest,   // server: a CONNECT arrived (request(stream)); answer with respond()
    kResponse,  // client: the response status arrived (status(stream))
    kData,      // bytes are waiting in inbox(stream)
    kEnd,       // the peer half-closed the stream (after all its data)
    kClosed,    // the stream is gone (reset by the peer or the protocol); errorCode() says why
    kWritable,  // queued(stream) fell below kLowWater again
  };
  Kind kind;
  int32_t stream;
};

class ConnectSession {
 public:
  static constexpr size_t kHighWater = 256 << 10;
  static constexpr size_t kLowWater = 64 << 10;
  enum class Role { kClient, kServer };

  static Result<std::unique_ptr<ConnectSession>> create(Role role, SessionLimits limits = {});
  ~ConnectSession();
  ConnectSession(const ConnectSession&) = delete;
  ConnectSession& operator=(const ConnectSession&) = delete;

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
  // Server: answers a request. 200 opens the tunnel; any other status ends the stream (and,
  // once the answer is out, RST_STREAM NO_ERROR frees it), and whatever DATA the client
  // still sends on it is consumed and dropped (never held).
  void respond(int32_t stream, int status);

  const ConnectRequest* request(int32_t stream) const;
  int status(int32_t stream) const;
  uint32_t errorCode(int32_t stream) const;
  // The peer's bytes for `stream`, not yet taken; take them by swapping in an empty string.
  std::string& inbox(int32_t stream);
  // Bytes of `stream` delivered to the app: reopens the peer's window by that much.
  void consumed(int32_t stream, size_t bytes);
  void write(int32_t stream, std::span<const uint8_t> bytes);
  size_t queued(int32_t stream) const;
  // Half-close: END_STREAM after the queued bytes.
  void finish(int32_t stream);
  // Abandons `stream` with RST_STREAM (default CANCEL); no event follows for it.
  void reset(int32_t stream, uint32_t errorCode = 0x8);
  // The caller is done with a stream: forgets it, returning the window of bytes it never
  // consumed. A stream whose last bytes or END_STREAM are still queued stays until they are
  // out (no event follows for it).
  void release(int32_t stream);
  // No new streams; open ones finish (GOAWAY).
  void shutdown();
  size_t openStreams() const { return open_; }
  bool acceptsStreams() const;

 private:
  struct Stream {
    ConnectRequest request;
    size_t headerBytes = 0;
    bool isConnect = false, hasScheme = false, hasPath = false;
    int status = 0;
    std::string inbox;
    size_t unconsumed = 0;  // received and not yet reported consumed
    std::string outbox;
    size_t outboxOffset = 0;
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
  explicit ConnectSession(Role role, SessionLimits limits) : role_(role), limits_(limits) {}
  Stream* find(int32_t stream);
  const Stream* find(int32_t stream) const;
  void attachData(int32_t stream, Stream& s);
  void resume(int32_t stream, Stream& s);

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
};

}  // namespace sluice::ztunnel::hbone
