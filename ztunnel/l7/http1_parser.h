// Incremental HTTP/1.1 message framing over llhttp, for a proxy that forwards bodies untouched:
// the head is parsed into an HttpHead (to be routed, edited and serialized again), and the
// body is reported as the raw bytes that carry it, framing included (chunk sizes, trailers),
// so it can be written on from the receive buffer without a copy or re-encoding.
//
// Strict where RFC 9112 asks a proxy to be (request smuggling): conflicting or repeated
// Content-Length, Transfer-Encoding with Content-Length or without chunked last (on a request:
// anything but one field saying chunked), obs-fold, bare CR or LF, whitespace before a field's
// colon, and control characters are errors (400); a head above Limits (bytes or fields) is
// 431; a version other than HTTP/1.0 or 1.1 is 505. Errors are values; nothing throws.
//
// One message at a time: after kEnd the caller handles the message and calls next() before
// feeding the bytes that follow (a pipelined request or an unexpected byte from a server).
#pragma once

#include <llhttp.h>

#include <cstdint>
#include <span>
#include <string>

#include "l7/http_head.h"

namespace sluice::ztunnel::l7 {

struct HeadLimits {
  size_t maxHeadBytes = 60 * 1024;  // Envoy's max_request_headers_kb default
  size_t maxHeaders = 100;          // Envoy's max_headers_count default
};

class Http1Parser {
 public:
  enum class Kind { kRequest, kResponse };
  struct Step {
    enum class Event {
      kNeedMore,  // every byte consumed (head bytes are kept; `body` may hold body bytes)
      kHead,      // head() is complete; `consumed` bytes were the head's
      kEnd,       // the message ended; `body` holds its last raw body bytes (may be empty)
      kError,     // `status` and `error` say why; the connection cannot be used further
    } event = Event::kNeedMore;
    size_t consumed = 0;
    std::span<const uint8_t> body;  // raw body bytes within the input (framing included)
    int status = 0;                 // kError: 400, 431, or 505 (HTTP/2 preface on an HTTP/1 port,
                                    // or a version other than HTTP/1.0 and 1.1)
    const char* error = "";
  };

  Http1Parser(Kind kind, HeadLimits limits = {});
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;

  Step feed(std::span<const uint8_t> input);
  // The peer half-closed: ends a message delimited by the close (a response without length),
  // or reports a truncated one as kError. kNeedMore: nothing was in progress.
  Step finish();
  // Before feeding the next message. Responses: `noBody` for the answer to a HEAD request.
  void next(bool noBody = false);
  // Starts over for a message on another connection, whatever state this one was left in
  // (a response abandoned for a retry, its body unread).
  void restart(bool noBody = false);

  const HttpHead& head() const { return head_; }
  HttpHead& head() { return head_; }
  // After kHead: the connection stays open after this message (keep-alive and no close).
  bool keepAlive() const { return llhttp_should_keep_alive(&parser_) != 0; }
  // After kHead: the request asks to switch protocols (Upgrade) or is CONNECT.
  bool upgrade() const { return llhttp_get_upgrade(const_cast<llhttp_t*>(&parser_)) != 0; }
  // Whether the message so far has had any byte (a head in progress or a body).
  bool inMessage() const { return state_ != State::kIdle; }
  bool inBody() const { return state_ == State::kBody; }

 private:
  enum class State { kIdle, kHead, kBody, kEnded, kFailed };
  static int onMethod(llhttp_t*, const char*, size_t);
  static int onUrl(llhttp_t*, const char*, size_t);
  static int onStatus(llhttp_t*, const char*, size_t);
  static int onHeaderField(llhttp_t*, const char*, size_t);
  static int onHeaderValue(llhttp_t*, const char*, size_t);
  static int onHeaderValueComplete(llhttp_t*);
  static int onHeadersComplete(llhttp_t*);
  static int onMessageComplete(llhttp_t*);
  Step fail(int status, const char* why);
  bool grow(size_t n);
  bool scanHeadBytes(std::span<const uint8_t> bytes);

  Kind kind_;
  HeadLimits limits_;
  llhttp_settings_t settings_;
  llhttp_t parser_;
  State state_ = State::kIdle;
  HttpHead head_;
  size_t headBytes_ = 0;
  bool fieldOpen_ = false;  // the last header callback was a name (a value comes next)
  bool noBody_ = false;
  bool tooLarge_ = false;
  bool badVersion_ = false;  // the request line's version is not 1.0 or 1.1 (505)
  bool lastWasLf_ = false;  // raw head scan state across feeds
  bool folded_ = false;
  bool headEndsMessage_ = false, pendingEnd_ = false;
  const char* badReason_ = nullptr;  // set by a callback that refused the head
};

}  // namespace sluice::ztunnel::l7
