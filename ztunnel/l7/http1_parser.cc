#include "l7/http1_parser.h"

#include "sluice/common/assert.h"

namespace sluice::ztunnel::l7 {

namespace {

Http1Parser* self(llhttp_t* p) { return static_cast<Http1Parser*>(p->data); }

// RFC 9110 §5.6.2 tchar: what a field name may contain (so "Host :" is refused, not read as
// a field named "Host " that one hop ignores and the next honours).
bool isTokenChar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
    case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

// A request's Transfer-Encoding, if any, is one field whose value is exactly "chunked" (Envoy
// accepts no other coding on requests either). llhttp tells codings apart by its own reading
// of the value (it took "chunked<TAB>" then a second "chunked" field as chunked once, and the
// same two fields re-serialized as an error), so the head that is forwarded is held to the one
// shape every parser frames alike.
bool singleChunkedCoding(const HttpHead& head) {
  int fields = 0;
  for (const auto& h : head.headers) {
    if (!equalsIgnoreCase(h.name, "transfer-encoding")) continue;
    if (++fields > 1 || !equalsIgnoreCase(h.value, "chunked")) return false;
  }
  return true;
}

}  // namespace

Http1Parser::Http1Parser(Kind kind, HeadLimits limits) : kind_(kind), limits_(limits) {
  llhttp_settings_init(&settings_);
  settings_.on_method = &Http1Parser::onMethod;
  settings_.on_url = &Http1Parser::onUrl;
  settings_.on_status = &Http1Parser::onStatus;
  settings_.on_header_field = &Http1Parser::onHeaderField;
  settings_.on_header_value = &Http1Parser::onHeaderValue;
  settings_.on_header_value_complete = &Http1Parser::onHeaderValueComplete;
  settings_.on_headers_complete = &Http1Parser::onHeadersComplete;
  settings_.on_message_complete = &Http1Parser::onMessageComplete;
  llhttp_init(&parser_, kind == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
}

bool Http1Parser::grow(size_t n) {
  // Counts what the head keeps; the raw byte count is checked in feed().
  if (headBytes_ + n > limits_.maxHeadBytes) {
    tooLarge_ = true;
    badReason_ = "request head larger than the limit";
    return false;
  }
  return true;
}

int Http1Parser::onMethod(llhttp_t* p, const char* at, size_t n) {
  self(p)->head_.method.append(at, n);
  return 0;
}

int Http1Parser::onUrl(llhttp_t* p, const char* at, size_t n) {
  Http1Parser& s = *self(p);
  if (!s.grow(s.head_.target.size() + n)) return HPE_USER;
  s.head_.target.append(at, n);
  return 0;
}

int Http1Parser::onStatus(llhttp_t* p, const char* at, size_t n) {
  self(p)->head_.reason.append(at, n);
  return 0;
}

int Http1Parser::onHeaderField(llhttp_t* p, const char* at, size_t n) {
  Http1Parser& s = *self(p);
  if (s.state_ == State::kBody) return 0;  // a trailer: forwarded raw with the body
  for (size_t i = 0; i < n; ++i) {
    if (!isTokenChar(static_cast<unsigned char>(at[i]))) {
      s.badReason_ = "invalid character in a header field name";
      return HPE_USER;
    }
  }
  if (!s.fieldOpen_) {
    if (s.head_.headers.size() >= s.limits_.maxHeaders) {
      s.tooLarge_ = true;
      s.badReason_ = "too many header fields";
      return HPE_USER;
    }
    s.head_.headers.emplace_back();
    s.fieldOpen_ = true;
  }
  s.head_.headers.back().name.append(at, n);
  return 0;
}

int Http1Parser::onHeaderValue(llhttp_t* p, const char* at, size_t n) {
  Http1Parser& s = *self(p);
  if (s.state_ == State::kBody) return 0;
  s.fieldOpen_ = false;
  s.head_.headers.back().value.append(at, n);
  return 0;
}

int Http1Parser::onHeaderValueComplete(llhttp_t* p) {
  Http1Parser& s = *self(p);
  s.fieldOpen_ = false;
  if (s.state_ == State::kBody || s.head_.headers.empty()) return 0;
  // Trailing whitespace is not part of the value (RFC 9110 §5.5: OWS around it).
  std::string& v = s.head_.headers.back().value;
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
  return 0;
}

int Http1Parser::onHeadersComplete(llhttp_t* p) {
  Http1Parser& s = *self(p);
  s.head_.versionMajor = p->http_major;
  s.head_.versionMinor = p->http_minor;
  // HTTP/1.0 and 1.1 only: llhttp also reads a request line without a version as HTTP/0.9
  // (and then parses fields after it) and a line saying HTTP/2.0; forwarding either would put
  // a head on the wire that the next hop reads differently (PRI becomes the HTTP/2 preface).
  if (p->http_major != 1 || p->http_minor > 1) {
    s.badVersion_ = true;
    s.badReason_ = "HTTP version not supported (HTTP/1.0 and HTTP/1.1 only)";
    return HPE_USER;
  }
  if (s.kind_ == Kind::kRequest && !singleChunkedCoding(s.head_)) {
    s.badReason_ = "Transfer-Encoding other than one field saying chunked";
    return HPE_USER;
  }
  if (s.kind_ == Kind::kResponse) s.head_.status = p->status_code;
  if (s.noBody_) {
    // The answer to HEAD: no body whatever its length says. llhttp ends the message at once
    // and the pause comes from onMessageComplete (feed reports the head, then the end).
    s.headEndsMessage_ = true;
    return 1;
  }
  return HPE_PAUSED;
}

int Http1Parser::onMessageComplete(llhttp_t* p) {
  (void)p;
  return HPE_PAUSED;
}

Http1Parser::Step Http1Parser::fail(int status, const char* why) {
  state_ = State::kFailed;
  Step step;
  step.event = Step::Event::kError;
  step.status = status;
  step.error = why;
  return step;
}

bool Http1Parser::scanHeadBytes(std::span<const uint8_t> bytes) {
  // obs-fold (a line starting with SP or HTAB inside the head) is refused, as RFC 9112 §5.2
  // allows a proxy to; llhttp would join the lines.
  for (uint8_t c : bytes) {
    if (lastWasLf_ && (c == ' ' || c == '\t')) folded_ = true;
    lastWasLf_ = c == '\n';
  }
  return !folded_;
}

Http1Parser::Step Http1Parser::feed(std::span<const uint8_t> input) {
  if (state_ == State::kFailed) return fail(400, "the connection already failed");
  SLUICE_ASSERT(state_ != State::kEnded, "Http1Parser::feed after the end of a message without next()");
  if (pendingEnd_) {
    pendingEnd_ = false;
    state_ = State::kEnded;
    return {Step::Event::kEnd, 0, {}};
  }
  if (state_ == State::kIdle) {
    if (input.empty()) return {};
    state_ = State::kHead;
  }
  const bool inHead = state_ == State::kHead;
  const char* data = reinterpret_cast<const char*>(input.data());
  llhttp_errno_t rc = llhttp_execute(&parser_, data, input.size());
  size_t used = rc == HPE_OK ? input.size() : static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
  if (rc != HPE_OK && rc != HPE_PAUSED) {
    if (rc == HPE_PAUSED_H2_UPGRADE) return fail(505, "HTTP/2 connection preface on an HTTP/1.1 listener");
    // badReason_ is set only by this class's callbacks (their refusal is rc HPE_USER, or
    // HPE_CB_HEADERS_COMPLETE from onHeadersComplete).
    if (badReason_ != nullptr) return fail(tooLarge_ ? 431 : badVersion_ ? 505 : 400, badReason_);
    return fail(400, llhttp_get_error_reason(&parser_));
  }
  if (inHead) {
    bool headDone = rc == HPE_PAUSED;  // paused by onHeadersComplete (or onMessageComplete after HEAD)
    if (!scanHeadBytes(input.first(used))) return fail(400, "obsolete line folding in a header field");
    headBytes_ += used;
    if (headBytes_ > limits_.maxHeadBytes) {
      return fail(kind_ == Kind::kRequest ? 431 : 502, "message head larger than the limit");
    }
    if (!headDone) return {Step::Event::kNeedMore, used, {}};
    llhttp_resume(&parser_);
    if (headEndsMessage_) {
      headEndsMessage_ = false;
      pendingEnd_ = true;  // the next feed() reports the end
    }
    state_ = State::kBody;
    return {Step::Event::kHead, used, {}};
  }
  // In the body: everything consumed is raw body (framing and trailers included).
  if (rc == HPE_OK) return {Step::Event::kNeedMore, used, input.first(used)};
  state_ = State::kEnded;
  return {Step::Event::kEnd, used, input.first(used)};
}

Http1Parser::Step Http1Parser::finish() {
  if (state_ == State::kIdle || state_ == State::kEnded) return {};
  if (state_ == State::kBody && pendingEnd_) {
    pendingEnd_ = false;
    state_ = State::kEnded;
    return {Step::Event::kEnd, 0, {}};
  }
  if (state_ == State::kBody && llhttp_message_needs_eof(&parser_) != 0) {
    llhttp_errno_t rc = llhttp_finish(&parser_);
    if (rc == HPE_OK || rc == HPE_PAUSED) {
      state_ = State::kEnded;
      return {Step::Event::kEnd, 0, {}};
    }
  }
  return fail(state_ == State::kHead ? 400 : 502, "the connection closed in the middle of a message");
}

void Http1Parser::restart(bool noBody) {
  llhttp_reset(&parser_);
  state_ = State::kIdle;
  next(noBody);
}

void Http1Parser::next(bool noBody) {
  SLUICE_ASSERT(state_ == State::kEnded || state_ == State::kIdle, "Http1Parser::next in the middle of a message");
  if (state_ == State::kEnded) llhttp_resume(&parser_);
  head_ = HttpHead{};
  state_ = State::kIdle;
  headBytes_ = 0;
  fieldOpen_ = false;
  noBody_ = noBody;
  lastWasLf_ = false;
  folded_ = false;
  tooLarge_ = false;
  badVersion_ = false;
  badReason_ = nullptr;
}

}  // namespace sluice::ztunnel::l7
